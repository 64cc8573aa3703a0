"""Smoke test of the proofs benchmark (`mandat bench proofs`): it fills, proves, checks and
drops its schema; no timing asserted."""

from __future__ import annotations

import argparse
import asyncio
import json

import asyncpg
import pytest

from services.tools.bench import cli as bench_cli

pytestmark = pytest.mark.integration


def test_the_proofs_benchmark_proves_every_subject_event_and_drops_its_schema(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="mandat")
    bench_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(
        [
            "bench",
            "proofs",
            "--rows",
            "3001",
            "--subject-events",
            "20",
            "--json",
            "--database-url",
            database_url,
        ]
    )
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 3001 and report["subject_events"] == 20
    assert report["path_hashes_per_event"] == 12  # ceil(log2(3001))
    assert report["proof_bytes"] > 20 * 12 * 64
    assert report["check_seconds_best"] > 0

    async def exists() -> bool:
        conn = await asyncpg.connect(database_url)
        try:
            return bool(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_namespace WHERE nspname = $1", report["schema"]
                )
            )
        finally:
            await conn.close()

    assert not asyncio.run(exists())
