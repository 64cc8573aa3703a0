"""Smoke test of the load benchmark (`mandat bench load`): on a small store, at low rates for
a few seconds, every input is decided by the service and copied by the raw passthrough, the
report has its parts, and the run's schema and topics are gone; no timing asserted."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from test_bench_pipeline import leftovers, run_bench

from services.tools.bench import load

pytestmark = pytest.mark.integration

EVENTS, RATES, SECONDS = 1500, (40, 80), 2


def test_the_load_benchmark_decides_every_input_at_each_rate_and_cleans_up(
    kafka_bootstrap: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_bench(
        capsys,
        kafka_bootstrap,
        database_url,
        "load",
        "--events",
        str(EVENTS),
        "--rates",
        ",".join(map(str, RATES)),
        "--seconds",
        str(SECONDS),
        "--write-batch",
        "500",
        "--timeout",
        "120",
    )
    assert report["service"] == "collection" and not report["kept"]
    assert report["generator"] == "process"
    assert report["all_decided"] is True
    assert report["target"]["met"] is None  # no run at 2,000/s
    fill, start = report["fill"], report["start"]
    assert fill["stored_events"] >= EVENTS and fill["events_per_second"] > 0
    assert start["store_head"] == fill["stored_events"]  # nothing recorded at start
    assert 0 < start["folded_seconds"] <= start["ready_seconds"]
    assert start["ready_seconds"] <= start["relay_caught_up_seconds"]
    assert start["relay_caught_up_seconds"] <= start["projector_caught_up_seconds"]
    assert start["memory"]["rss_kib"] > 0
    for path in ("service_runs", "raw_runs"):
        assert [r["target_rate"] for r in report[path]] == list(RATES)
        for run in report[path]:
            assert run["sent"] == run["decided"] == run["target_rate"] * SECONDS, path
            assert run["duplicates_read"] == 0
            assert 0 < run["median_ms"] <= run["p90_ms"] <= run["p99_ms"] <= run["max_ms"]
            assert run["from_planned_send_ms"]["max"] >= run["max_ms"]
            assert run["loop_lag_ms"]["max"] >= 0 and run["wall_seconds"] >= SECONDS / 2
            assert run["loop_thread_cpu_seconds"] > 0 and run["gc_pause_total_ms"] >= 0
    for run in report["service_runs"]:
        assert run["unexpected_read"] == 0 and run["not_final_read"] == 0
        assert set(run["decision_types"]) <= {"EncaissementDelegue", "EncaissementNonDelegue"}
        assert sum(run["decision_types"].values()) == run["sent"]
        assert run["service"]["batches"] >= 1 and run["service"]["rejected"] == 0
        for part in ("send_to_recorded_ms", "recorded_to_read_back_ms"):
            assert run[part]["median"] <= run[part]["p99"] <= run[part]["max"]

    table = load.format_report(report)
    for text in ("store:", "start:", "service", "raw", "p99*", "RSS", "load average"):
        assert text in table
    assert asyncio.run(leftovers(kafka_bootstrap, database_url, report["suffix"])) == (0, [])


def test_the_load_benchmark_measures_the_benefits_service_with_the_sender_in_its_loop(
    kafka_bootstrap: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_bench(
        capsys,
        kafka_bootstrap,
        database_url,
        "load",
        "--service",
        "benefits",
        "--generator",
        "loop",
        "--events",
        "600",
        "--rates",
        "30",
        "--seconds",
        "1",
        "--timeout",
        "120",
    )
    assert report["input_type"] == "PrestationEspecesDue" and report["all_decided"] is True
    assert report["generator"] == "loop"
    (service,), (raw,) = report["service_runs"], report["raw_runs"]
    assert service["sent"] == service["decided"] == raw["sent"] == raw["decided"] == 30
    assert set(service["decision_types"]) <= {"VersementDelegue", "VersementDirect"}
    assert asyncio.run(leftovers(kafka_bootstrap, database_url, report["suffix"])) == (0, [])


def test_rates_are_a_comma_separated_list_of_positive_numbers() -> None:
    assert load._rates("500,2000") == (500.0, 2000.0)
    for wrong in ("", "fast", "500,-1", "0"):
        with pytest.raises(argparse.ArgumentTypeError):
            load._rates(wrong)
