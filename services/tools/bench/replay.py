"""Replay throughput: `mandat replay verify` over ≥ 200,000 stored events, next to the raw
read of the same rows in the same run.

In a fresh schema (`bench_replay_<random>`, dropped at the end unless --keep), the
collection service's real write path (`BatchHandler`, in-memory records, big batches)
records the demo scenario (`services.tools.demo.scenario`: registry, contributions, payments,
unpaid notices, parked inputs, breaches, duplicates) until the store holds --events. Then,
on the same rows:

  read (iter_all)    `EventStore.iter_all`: every row decoded into a StoredEvent;
  read (SELECT)      a plain `SELECT … ORDER BY position` in batches, rows left as records;
  replay verify      `services.tools.audit.replay`: every input re-decided, every recorded
                     decision compared on its canonical JSON (reading overlapped).

The ratio replay/read is what re-deciding and comparing costs over reading.
"""

from __future__ import annotations

import argparse
import os
import secrets
import time
from typing import Any

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.server import server_settings
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.replay import replay
from services.tools.bench.shared import drop_schemas, run_and_print
from services.tools.options import JSON, Option, add_options, option_values

OPTIONS = (
    Option("--events", 200_000, "stored events to replay, at least (default 200000)"),
    Option("--seed", 42, "scenario seed (default 42)"),
    Option("--write-batch", 5000, "records per write transaction while filling (default 5000)"),
    Option("--read-batch", 5000, "rows per read, for every reader (default 5000)"),
    Option("--repeat", 1, "measure each phase N times, keep the best (default 1)"),
    Option("--keep", False, "keep the schema (to inspect it)"),
)
"""The options of the run, named as `measure` takes them."""


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, (*OPTIONS, JSON))


def run(args: argparse.Namespace) -> int:
    from services.tools.bench.cli import resolve_database_url

    dsn = resolve_database_url(getattr(args, "database_url", None))
    report = run_and_print(measure(dsn, **option_values(args, OPTIONS)), args.json, format_report)
    return 0 if report["replay"]["mismatches"] == 0 else 1


async def fill(
    feeder: Feeder, store: EventStore, *, events: int, seed: int, write_batch: int
) -> int:
    """Record demo scenarios (one run tag each) until the store holds `events` rows."""
    from services.tools.demo.scenario import COTISATIONS, REFERENTIEL, generate

    topics = {
        REFERENTIEL: feeder.topic_of("OrganismeDeclare"),
        COTISATIONS: feeder.topic_of("CotisationDue"),
    }
    round_ = 0
    while (head := await store.head()) < events:
        # about two stored events per collection message: size what is still missing
        size = max(1000, int((events - head) * 0.6))
        scenario = generate(size, seed + round_, f"B{seed}R{round_}")
        for message in scenario.messages:
            if message.topic in topics:
                feeder.raw(topics[message.topic], message.value, message.key)
                if len(feeder.pending) >= write_batch:
                    await feeder.flush()
        if feeder.pending:
            await feeder.flush()
        round_ += 1
    return head


async def _read_iter_all(store: EventStore, batch: int) -> tuple[int, float]:
    started, count = time.perf_counter(), 0
    async for _ in store.iter_all(0, batch=batch):
        count += 1
    return count, time.perf_counter() - started


async def _read_select(store: EventStore, batch: int) -> tuple[int, float]:
    started, count, after = time.perf_counter(), 0, 0
    while rows := await store.read_records(after, batch):
        count += len(rows)
        after = rows[-1]["position"]
    return count, time.perf_counter() - started


def _slowness(measure: tuple[int, float]) -> float:
    count, seconds = measure
    return seconds / count if count else float("inf")


def _rate(count: int, seconds: float) -> dict[str, Any]:
    return {
        "events": count,
        "seconds": round(seconds, 3),
        "events_per_second": round(count / seconds, 1) if seconds else None,
    }


async def measure(
    dsn: str,
    *,
    events: int,  # the defaults are the options' (OPTIONS)
    seed: int,
    write_batch: int,
    read_batch: int,
    repeat: int,
    keep: bool = False,
) -> dict[str, Any]:
    """Fill a fresh schema, then time the raw reads and the replay of the same rows (each
    `repeat` times, in turn, keeping the fastest of each: the machine may be shared)."""
    schema = f"bench_replay_{secrets.token_hex(4)}"
    settings = ServiceSettings(collection_schema=schema)
    store = await prepare_store(dsn, schema)
    try:
        feeder = Feeder(store, COLLECTION, settings)
        started = time.perf_counter()
        head = await fill(feeder, store, events=events, seed=seed, write_batch=write_batch)
        write_seconds = time.perf_counter() - started
        await _read_iter_all(store, read_batch)  # warm the cache: every phase reads hot rows
        iter_all, select, summary = (0, float("inf")), (0, float("inf")), None
        for _ in range(max(1, repeat)):
            iter_all = min(iter_all, await _read_iter_all(store, read_batch), key=_slowness)
            select = min(select, await _read_select(store, read_batch), key=_slowness)
            again = await replay(store, COLLECTION, batch=read_batch)
            if summary is None or again.seconds < summary.seconds:
                summary = again
        assert summary is not None
        server = (await server_settings(store.pool, ["server_version"]))["server_version"]
    finally:
        await store.pool.close()
        if not keep:
            await drop_schemas(dsn, schema)
    replayed = _rate(summary.events_read, summary.seconds)
    replayed |= {
        "inputs": summary.inputs,
        "decisions_checked": summary.decisions_checked,
        "matched": summary.matched,
        "mismatches": len(summary.mismatches),
    }
    reads = {"iter_all": _rate(*iter_all), "select": _rate(*select)}
    ratio = {
        name: round(summary.events_per_second / (r["events_per_second"] or 1), 3)
        for name, r in reads.items()
    }
    return {
        "schema": schema,
        "kept": keep,
        "server_version": server,
        "stored_events": head,
        "repeat": max(1, repeat),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "write_path": _rate(head, write_seconds),
        "read": reads,
        "replay": replayed,
        "replay_over_read": ratio,
    }


def format_report(r: dict[str, Any]) -> str:
    """The report for a person."""

    def line(label: str, m: dict[str, Any]) -> str:
        return (
            f"  {label:<28} {m['events']:>9,} events {m['seconds']:>8.2f} s "
            f"{m['events_per_second']:>12,.0f} events/s"
        )

    rp = r["replay"]
    return "\n".join(
        [
            f"replay bench: {r['stored_events']:,} stored events in {r['schema']} "
            f"(PostgreSQL {r['server_version']}; best of {r['repeat']}; {r['cpus']} CPUs, load "
            f"{' '.join(f'{x:.1f}' for x in r['load_average'])})",
            line("fill (BatchHandler)", r["write_path"]),
            line("read (iter_all)", r["read"]["iter_all"]),
            line("read (plain SELECT)", r["read"]["select"]),
            line("replay verify", rp),
            f"  replay verify: {rp['inputs']:,} inputs, {rp['decisions_checked']:,} decisions "
            f"checked, {rp['matched']:,} matched, {rp['mismatches']} mismatches",
            f"  replay / read: {r['replay_over_read']['iter_all']:.2f} of iter_all, "
            f"{r['replay_over_read']['select']:.2f} of a plain SELECT",
        ]
    )
