"""A restarted service decides as if it never stopped (parked inputs included): its decision
state is in PostgreSQL, current at start, read by key; nothing it loads at start comes from a
saved image of its memory."""

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


@pytest.mark.parametrize("state", ["kept", "forgotten"])
async def test_a_restarted_service_resumes_with_its_parked_inputs(
    settings: ServiceSettings, state: str
) -> None:
    """`forgotten`: the decision state is emptied while the service is down, as in a store
    from before the state tables: it folds the events into it at start, then decides."""
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
        if state == "forgotten":
            await conn.execute(f'DELETE FROM "{s.collection_schema}".decision_state')
            await conn.execute(
                f'UPDATE "{s.collection_schema}".decision_state_position SET position = 0'
            )
    finally:
        await conn.close()
    assert tables == 0

    runtime = build_runtime("collection", s)
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        assert runtime.handler is not None
        assert runtime.handler.position == head  # its decision state is current at start
        assert (await runtime.probe())["parked"] == 25  # as the state tables say
        await publish_many(feed, s.topic_referentiel, [affiliation(n, "OC-S") for n in people])
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations],
            lambda m: sum(x.event_type == "EncaissementDelegue" for x in m) >= 25,
        )
    assert sum(m.event_type == "EncaissementDelegue" for m in got) == 25
