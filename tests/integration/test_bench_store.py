"""Smoke test of the store benchmark (`mandat bench store`): it runs and reports; no timing."""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg
import pytest

from services.tools.bench import cli as bench_cli

pytestmark = pytest.mark.integration


def bench_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mandat")
    bench_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


async def schema_exists(database_url: str, schema: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return bool(
            await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
        )
    finally:
        await conn.close()


def test_the_store_benchmark_reports_a_positive_rate_for_every_mode_and_drops_its_schema(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = bench_parser().parse_args(
        [
            "bench",
            "store",
            "--events",
            "5",
            "--batched-events",
            "150",
            "--json",
            "--database-url",
            database_url,
        ]
    )

    assert args.func(args) == 0

    report = json.loads(capsys.readouterr().out)
    modes = report["modes"]
    assert {name: (m["events"], m["transactions"]) for name, m in modes.items()} == {
        "single": (5, 5),
        "batch_100": (150, 2),
        "batch_1000": (150, 1),
        "copy_1000": (150, 1),
    }
    assert all(m["seconds"] > 0 and m["events_per_second"] > 0 for m in modes.values())
    assert set(report["ratios"]) == {
        "batch_100_over_copy",
        "batch_1000_over_copy",
        "batch_1000_over_single",
    }
    assert all(r > 0 for r in report["ratios"].values())
    assert report["payload_bytes"] > 300 and report["server"]["fsync"] in ("on", "off")
    assert report["schema"].startswith("bench_")
    assert not asyncio.run(schema_exists(database_url, report["schema"]))


def test_the_store_benchmark_prints_a_table_and_takes_the_database_from_the_environment(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    args = bench_parser().parse_args(["bench", "store", "--events", "3", "--batched-events", "20"])

    assert args.func(args) == 0

    table = capsys.readouterr().out
    assert "events/s" in table
    for label in ("single append", "batch of 100", "batch of 1000", "raw COPY"):
        assert label in table
    assert "batched / COPY" in table


def test_bench_offers_the_benchmarks_present_and_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bench_cli, "BENCHMARKS", ("store", "not_written_yet"))
    parser = bench_parser()

    assert parser.parse_args(["bench", "all"]).func is bench_cli._run_all
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "not_written_yet"])
    capsys.readouterr()
    assert parser.parse_args(["bench", "store", "--events", "7"]).events == 7
