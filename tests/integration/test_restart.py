"""A restarted service folds its store again and decides as if it never stopped (parked
inputs included); nothing it loads at start comes from a saved image of its memory."""

from __future__ import annotations

import asyncpg
import pytest
from support import (
    Feed,
    affiliation,
    convention,
    cotisation,
    nir,
    organisme,
    publish_many,
    read_topics,
    wait_for_store,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def test_a_restarted_service_resumes_with_its_parked_inputs(
    settings: ServiceSettings,
) -> None:
    s = settings
    dsn = s.database_url.get_secret_value()
    people = [nir(500 + i) for i in range(25)]
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await publish_many(
            feed, s.topic_referentiel, [organisme("OC-S"), convention("CNV-S", "OC-S")]
        )
        await publish_many(
            feed, s.topic_cotisations, [cotisation(f"COT-S{i}", n) for i, n in enumerate(people)]
        )
        assert (
            await wait_for_store(dsn, s.collection_schema, frozenset({"DecisionEnAttente"}), 25)
            == 25
        )

    conn = await asyncpg.connect(dsn)
    try:
        head = await conn.fetchval(f'SELECT max(position) FROM "{s.collection_schema}".events')
        # no pickled view to load (it could run code): the table that held them is gone
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'snapshots'",
            s.collection_schema,
        )
    finally:
        await conn.close()
    assert tables == 0

    runtime = build_runtime("collection", s)
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        assert runtime.handler is not None
        assert runtime.handler.processor.view.position == head  # folded at start
        await publish_many(feed, s.topic_referentiel, [affiliation(n, "OC-S") for n in people])
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations],
            lambda m: sum(x.event_type == "EncaissementDelegue" for x in m) >= 25,
        )
    assert sum(m.event_type == "EncaissementDelegue" for m in got) == 25
