"""Smoke tests of the scale benchmark (`mandat bench scale`): its bulk-loaded store is one the
service itself would have written (the chain verifies, replay re-decides every input the
same), and a tiny run reports every figure of each row, plausible and consistent, and
leaves no schema, role or topic behind; no timing asserted."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest
from test_bench_pipeline import leftovers, run_bench

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.leases import RelayCheckpoints
from services.adapters.eventstore.pool import create_pool
from services.tools.audit.replay import replay
from services.tools.bench import scale
from services.tools.bench.pipeline import run_settings
from services.tools.bench.shared import drop_schemas

pytestmark = pytest.mark.integration

SIZE, NIRS, EVENTS, RATE, SECONDS = 2000, 500, 400, 50, 2


async def _filled_store_replays(bootstrap: str, dsn: str) -> None:
    s = run_settings(bootstrap, dsn, f"benchscaletest{secrets.token_hex(3)}")
    schema = s.collection_schema
    try:
        filled = await scale.fill(s, dsn, await scale.template(), size=SIZE, nirs=NIRS)
        assert SIZE <= filled["stored_events"] <= SIZE + 4 and filled["disk_bytes"] > 0
        assert filled["state_disk_bytes"] > 0
        pool = await create_pool(dsn, schema, max_size=1, as_service_role=False)
        try:
            store = EventStore(pool, schema)
            assert await store.head() == filled["stored_events"]
            async with store.transaction() as tx:  # its decision state is the fold of it all
                assert await tx.state_position() == filled["stored_events"]
            assert (await store.verify_chain()).ok
            summary = await replay(store, scale.KIND.service)
            assert summary.ok, summary
            async with pool.acquire() as conn:
                relayed = await RelayCheckpoints(schema).read(conn, "collection")
                affiliations = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE event_type = 'AffiliationEnregistree'"
                )
                payments = await conn.fetchval(
                    "SELECT coalesce(sum(paiements), 0) FROM projection_sommes_detenues"
                )
                recorded = await conn.fetchval(
                    "SELECT count(*) FROM events WHERE event_type = 'PaiementEncaissePourCompte'"
                )
            assert relayed == filled["stored_events"]
            assert affiliations == NIRS and payments == recorded > 0
        finally:
            await pool.close()
    finally:
        await drop_schemas(dsn, schema)
        conn = await asyncpg.connect(dsn)
        try:
            assert not await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema
            )
        finally:
            await conn.close()


def test_the_bulk_loaded_store_chains_and_replays_as_the_service_decided(
    kafka_bootstrap: str, database_url: str
) -> None:
    asyncio.run(_filled_store_replays(kafka_bootstrap, database_url))


def test_the_scale_benchmark_reports_each_size_and_cleans_up(
    kafka_bootstrap: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_bench(
        capsys,
        kafka_bootstrap,
        database_url,
        "scale",
        "--sizes",
        str(SIZE),
        "--nirs",
        str(NIRS),
        "--events",
        str(EVENTS),
        "--rate",
        str(RATE),
        "--latency-seconds",
        str(SECONDS),
        "--timeout",
        "60",
    )
    assert report["all_decided"] is True and report["run_nirs"] == NIRS
    empty, sized = report["rows"]
    assert empty["size"] == 0 and sized["size"] == SIZE
    # the empty row holds the runs' registry only: organisms, conventions, NIRS affiliations
    assert NIRS < empty["fill"]["stored_events"] < NIRS + 200
    assert SIZE <= sized["fill"]["stored_events"] <= SIZE + 4
    assert sized["fill"]["disk_bytes"] > empty["fill"]["disk_bytes"] > 0
    for row in report["rows"]:
        sv, lt, pt = row["service"], row["latency"], row["passthrough"]
        assert sv["events"] == sv["decided"] == EVENTS
        assert sum(sv["decisions"].values()) >= EVENTS
        assert 0 < sv["events_per_second"] == pytest.approx(EVENTS / sv["seconds"], rel=0.01)
        assert sv["cpu_ms_per_input"] > 0
        assert pt["copied"] == pt["read_back"] == EVENTS and pt["events_per_second"] > 0
        assert row["ratio"] == pytest.approx(  # (rounded to 3 decimals)
            sv["events_per_second"] / pt["events_per_second"], rel=0.01, abs=0.0005
        )
        assert lt["sent"] == lt["decided"] == RATE * SECONDS
        assert 0 < lt["median_ms"] <= lt["p99_ms"] <= lt["max_ms"]
        assert 0 < row["ready_seconds"] < 60
        assert 10_000 < row["rss_ready_kib"] <= row["peak_rss_kib"]
        assert 10_000 < row["rss_after_kib"] <= row["peak_rss_kib"]
    assert empty["ratios"] == {"rss": 1.0, "throughput": 1.0, "p99": 1.0}
    ratios = sized["ratios"]
    assert ratios["rss"] == pytest.approx(sized["rss_after_kib"] / empty["rss_after_kib"], 0.01)
    assert ratios["p99"] == pytest.approx(
        sized["latency"]["p99_ms"] / empty["latency"]["p99_ms"], 0.01
    )

    pair = empty["pair"]  # one instance against two, on the first row only
    assert "pair" not in sized
    assert pair["instances"] == 2 and pair["events"] == pair["decided"] == EVENTS
    assert pair["ratio"] == pytest.approx(
        pair["events_per_second"] / empty["service"]["events_per_second"], 0.01
    )

    table = scale.format_report(report)
    for text in ("stored", "disk MiB", "ready s", "RSS", "ratio", "p99", "dropped", "two inst"):
        assert text in table
    assert f"{sized['fill']['stored_events']:>10,}" in table
    assert asyncio.run(leftovers(kafka_bootstrap, database_url, report["suffix"])) == (0, [])
