"""Smoke test of the revisions benchmark (`mandat bench revisions`): a tiny run revises every
contribution of its organism, decides every unrelated input, reports each figure, and leaves
no schema, role or topic behind; no timing asserted (the figures are the benchmark's)."""

from __future__ import annotations

import asyncio

import pytest
from test_bench_pipeline import leftovers, run_bench

pytestmark = pytest.mark.integration

SUBJECTS, RATE, SECONDS = 60, 10, 2


def test_the_revisions_benchmark_revises_every_subject_and_cleans_up(
    kafka_bootstrap: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_bench(
        capsys,
        kafka_bootstrap,
        database_url,
        "revisions",
        "--subjects",
        str(SUBJECTS),
        "--rate",
        str(RATE),
        "--latency-seconds",
        str(SECONDS),
        "--timeout",
        "90",
    )
    assert report["all_decided"] is True
    assert report["revisions"] == SUBJECTS and report["revisions_seconds"] > 0
    assert report["stored_events"] > 3 * SUBJECTS  # affiliation, contribution, decision each
    unrelated = report["unrelated"]
    assert unrelated["sent"] == unrelated["decided"] == RATE * SECONDS
    assert 0 < unrelated["median_ms"] <= unrelated["p99_ms"] <= unrelated["max_ms"]
    assert 10_000 < report["rss_ready_kib"] <= report["peak_rss_kib"]
    assert asyncio.run(leftovers(kafka_bootstrap, database_url, report["suffix"])) == (0, [])
