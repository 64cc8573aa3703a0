"""`mandat bench replay` at a small size: the same rows read raw and replayed, no mismatch,
and the schema it filled is dropped."""

from __future__ import annotations

import asyncpg
import pytest

from services.tools.bench.replay import format_report, measure

pytestmark = pytest.mark.integration


async def test_the_replay_bench_replays_what_it_recorded_and_cleans_up(database_url: str) -> None:
    report = await measure(
        database_url, events=3000, seed=7, write_batch=700, read_batch=400, repeat=2
    )
    assert report["stored_events"] >= 3000
    assert (
        report["replay"]["events"]
        == report["read"]["iter_all"]["events"]
        == report["read"]["select"]["events"]
        == report["stored_events"]
    )
    assert report["replay"]["mismatches"] == 0 and report["replay"]["matched"] > 1000
    assert report["replay_over_read"]["iter_all"] > 0
    assert "replay verify" in format_report(report)
    conn = await asyncpg.connect(database_url)
    try:
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1", report["schema"]
            )
            == 0
        )
    finally:
        await conn.close()
