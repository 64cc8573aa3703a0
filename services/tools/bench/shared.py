"""What several benchmarks do alike: find the stack, take the same options, run quietly and
print their report, build the same Kafka clients, state latencies the same way.

One place for each, so that two benchmarks that claim to measure the same way do.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import statistics
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.adapters.eventstore.roles import drop_store
from services.adapters.kafka.topics import ensure_topics
from services.adapters.runtime.settings import ServiceSettings

Report = dict[str, Any]


def from_environment(explicit: str | None, variable: str, missing: str) -> str:
    """`explicit`, else `$variable`, else that name in `.run/endpoints.env`; else exit with
    `missing` (what to do about it)."""
    if explicit:
        return explicit
    if os.environ.get(variable):
        return os.environ[variable]
    from services.tools.devstack.stack import read_endpoints

    found = read_endpoints().get(variable)
    if found:
        return found
    raise SystemExit(missing)


def add_run_options(parser: argparse.ArgumentParser, *, timeout: float, keep: str) -> None:
    """`--bootstrap`, `--timeout`, `--keep` (`keep`: its help) and `--json`, as the benchmarks
    with a broker and topics of their own take them."""
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS, else .run/endpoints.env)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help="give up waiting for a phase after this many seconds",
    )
    parser.add_argument("--keep", action="store_true", help=keep)
    parser.add_argument("--json", action="store_true", help="print the results as JSON")


def warnings_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING


def run_and_print(
    measure: Coroutine[Any, Any, Report], as_json: bool, format_report: Callable[[Report], str]
) -> Report:
    """Run `measure` with FastStream's access lines filtered out (it writes them per batch
    to stdout, which --json needs clean; its loggers are set up at broker start, so filter
    rather than set a level), then print its report as JSON or as text."""
    quiet = [logging.getLogger(n) for n in ("faststream", "faststream.access.kafka")]
    for logger in quiet:
        logger.addFilter(warnings_only)
    try:
        report = asyncio.run(measure)
    finally:
        for logger in quiet:
            logger.removeFilter(warnings_only)
    if as_json:
        from services.tools.cli import print_json

        print_json(report)
    else:
        print(format_report(report))
    return report


async def ensure_run_topics(bootstrap: str, names: Iterable[str], s: ServiceSettings) -> None:
    """The run's topics, partitioned, replicated and retained as the settings say."""
    await ensure_topics(
        bootstrap,
        names,
        partitions=s.topic_partitions,
        replication_factor=s.topic_replication_factor,
        retention_ms=s.topic_retention_ms,
    )


async def drop_and_close(conn: asyncpg.Connection, *schemas: str) -> None:
    """Drop the run's store schemas (each with its login role), then close `conn`, whatever
    happened."""
    try:
        for schema in schemas:
            await drop_store(conn, schema)
    finally:
        await conn.close()


async def drop_schemas(dsn: str, *schemas: str) -> None:
    """`drop_and_close` on a connection of its own."""
    await drop_and_close(await asyncpg.connect(dsn), *schemas)


def committed_reader(topic: str, bootstrap: str) -> AIOKafkaConsumer:
    """A reader of a whole topic, from its start, without a group, of committed records only
    (the relay publishes in transactions)."""
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )


def passthrough_clients(
    bootstrap: str, source: str, group: str, **fetch: Any
) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    """The raw passthrough's consumer (in `group`, offsets committed by hand; `fetch`: more
    consumer settings) and producer (acks=all, idempotent, as the relay)."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **fetch,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=512 * 1024,
    )
    return consumer, producer


def latency_figures(
    latencies: list[float], *, rate: float, sent: int, decided: int, span: float
) -> Report:
    """A paced run's figures: its rate as meant and as achieved, and the spread of its
    (sorted) latencies, in ms."""
    return {
        "target_rate": rate,
        "sent": sent,
        "decided": decided,
        "achieved_rate": round((sent - 1) / span, 1) if span > 0 else float(sent),
        "seconds": round(span, 3),
        "median_ms": ms(statistics.median(latencies)) if latencies else None,
        "p90_ms": ms(percentile(latencies, 0.90)) if latencies else None,
        "p99_ms": ms(percentile(latencies, 0.99)) if latencies else None,
        "max_ms": ms(latencies[-1]) if latencies else None,
        "min_ms": ms(latencies[0]) if latencies else None,
    }


def spread(ordered: list[float]) -> dict[str, float] | None:
    """Median, p99 and max of sorted durations, in ms (None when there are none)."""
    if not ordered:
        return None
    return {
        "median": ms(statistics.median(ordered)),
        "p99": ms(percentile(ordered, 0.99)),
        "max": ms(ordered[-1]),
    }


def percentile(ordered: list[float], q: float) -> float:
    """Nearest rank."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def closing_lines(report: Report, leftovers: str) -> list[str]:
    """The last lines of a report: the machine's load around the run, and whether the run's
    `leftovers` (its topics and schemas) were kept."""
    machine = report["machine"]
    state = "kept" if report["kept"] else "dropped"
    return [
        f"load average (1, 5, 15 min) before {machine['load_average_before']}, after "
        f"{machine.get('load_average_after')}",
        f"{leftovers} of {report['suffix']}: {state}",
    ]
