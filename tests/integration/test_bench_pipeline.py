"""Smoke test of the pipeline benchmark (`mandat bench pipeline`): with tiny counts, it runs
both services and the passthrough, decides every input, and cleans up; no timing asserted."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from services.tools.bench import cli as bench_cli
from services.tools.bench import pipeline

pytestmark = pytest.mark.integration

EVENTS, RATE, SECONDS = 200, 100, 3


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mandat")
    bench_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def run_bench(
    capsys: pytest.CaptureFixture[str], bootstrap: str, database_url: str, *options: str
) -> dict[str, Any]:
    """`mandat bench <options> --json` against this suite's broker and database: its
    report (the command must succeed)."""
    args = bench_parser().parse_args(
        ["bench", *options, "--json", "--bootstrap", bootstrap, "--database-url", database_url]
    )
    assert args.func(args) == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


async def leftovers(bootstrap: str, database_url: str, suffix: str) -> tuple[int, list[str]]:
    """Schemas (and the services' login roles) and topics of the run still present."""
    conn = await asyncpg.connect(database_url)
    try:
        schemas = int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1", f"{suffix}%"
            )
        )
        schemas += int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_roles WHERE rolname LIKE $1", f"svc_{suffix}%"
            )
        )
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(suffix)]
    finally:
        await admin.close()
    return schemas, names


def test_the_pipeline_benchmark_decides_every_input_of_both_services_and_cleans_up(
    kafka_bootstrap: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_bench(
        capsys,
        kafka_bootstrap,
        database_url,
        "pipeline",
        "--events",
        str(EVENTS),
        "--rate",
        str(RATE),
        "--latency-seconds",
        str(SECONDS),
        "--timeout",
        "60",
    )
    assert set(report["services"]) == {"collection", "benefits"}
    assert report["events"] == EVENTS and not report["kept"]
    assert report["postgres"]["fsync"] in ("on", "off")
    for name, result in report["services"].items():
        service, through, latency = result["service"], result["passthrough"], result["latency"]
        assert result["registry"]["facts"] > EVENTS
        assert service["events"] == service["decided"] == EVENTS, name
        assert service["duplicates_read"] == 0 and service["parked"] == 0
        assert service["rejected"] == 0 and service["batches"] >= 1
        assert sum(service["decisions"].values()) == EVENTS
        assert through["copied"] == through["read_back"] == EVENTS
        assert latency["sent"] == latency["decided"] == RATE * SECONDS
        assert latency["achieved_rate"] > 0
        assert 0 < latency["median_ms"] <= latency["p99_ms"] <= latency["max_ms"]
        for part in ("send_to_recorded_ms", "recorded_to_read_back_ms"):
            assert latency[part]["median"] <= latency[part]["p99"] <= latency[part]["max"]
        for rate in (
            service["events_per_second"],
            through["events_per_second"],
            result["publish"]["events_per_second"],
            result["ratio"],
        ):
            assert rate > 0
    collection, benefits = (
        report["services"][n]["service"]["decisions"] for n in ("collection", "benefits")
    )
    assert set(collection) == {"EncaissementDelegue", "EncaissementNonDelegue"}
    assert set(benefits) == {"VersementDelegue", "VersementDirect"}

    table = pipeline.format_report(report)
    for text in ("events/s", "raw aiokafka", "ratio service / passthrough", "median ms"):
        assert text in table
    assert asyncio.run(leftovers(kafka_bootstrap, database_url, report["suffix"])) == (0, [])


def test_the_pipeline_benchmark_needs_a_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setattr("services.tools.devstack.stack.read_endpoints", lambda: {})

    with pytest.raises(SystemExit, match="no broker"):
        pipeline.resolve_bootstrap(None)
    assert pipeline.resolve_bootstrap("h:1") == "h:1"


def test_the_pipeline_benchmark_refuses_a_broker_that_wants_logins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MANDAT_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(SystemExit, match="do not make"):
        pipeline.resolve_bootstrap("h:1")
    monkeypatch.setenv("MANDAT_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert pipeline.resolve_bootstrap("h:1") == "h:1"
