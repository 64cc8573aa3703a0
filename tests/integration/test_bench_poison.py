"""`mandat bench poison`, small: each injected bug isolates exactly its record, and the rest of
the batch is decided."""

from __future__ import annotations

import pytest

from services.adapters.runtime.settings import ServiceSettings
from services.tools.bench.poison import format_report, measure

pytestmark = pytest.mark.integration


async def test_the_poison_benchmark_isolates_one_record_per_bug(settings: ServiceSettings) -> None:
    report = await measure(settings.database_url.get_secret_value(), events=3000, batch=40)
    phases = report["phases"]
    assert phases["clean"] == phases["clean"] | {
        "attempts": 1,
        "decided": 40,
        "rejected_processing_error": 0,
    }
    for name in ("rules bug", "commit refused"):
        assert phases[name]["decided"] == 39 and phases[name]["rejected_processing_error"] == 1
        assert phases[name]["attempts"] > 1
    assert report["store_events"] >= 3000
    assert "commit refused" in format_report(report)
