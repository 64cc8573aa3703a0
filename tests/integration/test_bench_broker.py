"""`mandat bench broker` measures a real broker's start and memory (structure, not timing)."""

from __future__ import annotations

import pytest

from services.tools.bench.broker import measure

pytestmark = pytest.mark.integration


def test_the_broker_benchmark_reports_start_times_and_memory() -> None:
    result = measure(messages=200)
    assert result["first_start_s"] > 0 and result["restart_s"] > 0
    assert result["rss_after_start_kib"] > 50_000  # a JVM with its heap, not a dead pid
    assert result["rss_after_burst_kib"] > 0 and result["burst_messages"] == 200
