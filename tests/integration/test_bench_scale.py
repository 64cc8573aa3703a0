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
from services.adapters.eventstore.shards import Layout
from services.adapters.runtime.provision import provision_services
from services.tools.audit.replay import replay
from services.tools.bench import scale
from services.tools.bench.pipeline import run_settings
from services.tools.bench.shared import drop_schemas

pytestmark = pytest.mark.integration

SIZE, NIRS, EVENTS, RATE, SECONDS = 2000, 500, 400, 50, 2


async def _filled_store_replays(bootstrap: str, dsn: str, shards: int) -> None:
    s = run_settings(bootstrap, dsn, f"benchscaletest{secrets.token_hex(3)}")
    s = await provision_services(s.model_copy(update={"store_shards": shards}), ("collection",))
    schema = s.collection_schema
    try:
        template = await scale.template()
        filled = await scale.fill(s, dsn, template, size=SIZE, nirs=NIRS)
        assert filled["shards"] == shards
        copies = (shards - 1) * len(template.prefix)  # facts about organisms: in every shard
        assert SIZE + copies <= filled["stored_events"] <= SIZE + copies + 4
        assert filled["disk_bytes"] > 0
        assert filled["state_disk_bytes"] > 0
        heads, affiliations, payments, recorded = 0, 0, 0, 0
        for shard in Layout(schema, shards).schemas:
            pool = await create_pool(dsn, shard, max_size=1, as_service_role=False)
            try:
                store = EventStore(pool, shard)
                head = await store.head()
                async with store.transaction() as tx:  # its decision state is the fold of it
                    assert await tx.state_position() == head > 0
                assert (await store.verify_chain()).ok
                summary = await replay(store, scale.KIND.service)
                assert summary.ok, summary
                async with pool.acquire() as conn:
                    assert await RelayCheckpoints(shard).read(conn, "collection") == head
                    affiliations += await conn.fetchval(
                        "SELECT count(*) FROM events WHERE event_type = 'AffiliationEnregistree'"
                    )
                    payments += await conn.fetchval(
                        "SELECT coalesce(sum(paiements), 0) FROM projection_sommes_detenues"
                    )
                    recorded += await conn.fetchval(
                        "SELECT count(*) FROM events"
                        " WHERE event_type = 'PaiementEncaissePourCompte'"
                    )
                heads += head
            finally:
                await pool.close()
        assert heads == filled["stored_events"]
        assert affiliations == NIRS and payments == recorded > 0
    finally:
        await drop_schemas(dsn, schema)
        conn = await asyncpg.connect(dsn)
        try:
            assert not await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE $1", f"{schema}%"
            )
        finally:
            await conn.close()


@pytest.mark.parametrize("shards", [1, 3], ids=["one-store", "shards"])
def test_the_bulk_loaded_store_chains_and_replays_as_the_service_decided(
    kafka_bootstrap: str, database_url: str, shards: int
) -> None:
    asyncio.run(_filled_store_replays(kafka_bootstrap, database_url, shards))


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
        "--shards",
        "3",
        "--timeout",
        "60",
    )
    assert report["all_decided"] is True and report["run_nirs"] == NIRS
    empty, sized, sharded = report["rows"]
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

    # one instance against two, on the first row and on the last, in shards
    assert "pair" not in sized
    assert empty["fill"]["shards"] == sized["fill"]["shards"] == 1
    assert sharded["size"] == 0 and sharded["fill"]["shards"] == sharded["service"]["shards"] == 3
    # the registry in three shards: facts about organisms in each, an affiliation in one
    facts = empty["fill"]["stored_events"] - NIRS
    assert sharded["fill"]["stored_events"] == NIRS + 3 * facts
    for row in (empty, sharded):
        pair = row["pair"]
        assert pair["instances"] == 2 and pair["events"] == pair["decided"] == EVENTS
        assert pair["ratio"] == pytest.approx(
            pair["events_per_second"] / row["service"]["events_per_second"], 0.01
        )
        for locks in (row["service"]["locks"], pair["locks"]):
            assert locks["looks"] > 0 and 0 <= locks["waiting"] <= 1
        assert row["service"]["locks"]["two_appending"] == 0  # one instance: never two

    table = scale.format_report(report)
    for text in ("stored", "disk MiB", "ready s", "RSS", "ratio", "p99", "dropped", "in 3 shards"):
        assert text in table
    assert f"{sized['fill']['stored_events']:>10,}" in table
    assert asyncio.run(leftovers(kafka_bootstrap, database_url, report["suffix"])) == (0, [])
