"""A service whose store is split into shards, end to end through a real Kafka broker and a
real PostgreSQL: each person's history in the shard of their NIR, facts about organisms in
every shard, each decision recorded and published once, ids unique across the shards."""

from __future__ import annotations

import json
from collections import Counter

import asyncpg
import pytest
from support import (
    SHARDS,
    Feed,
    affiliation,
    assert_decided_exactly_once,
    convention,
    cotisation,
    nir,
    organisme,
    paiement,
    read_topics,
    send_registry,
    store_events,
    wait_for_store,
)

from services.adapters.eventstore.shards import read_layout
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.shards import shard_of
from services.domain.catalog import COLLECTION

pytestmark = pytest.mark.integration

FINAL = COLLECTION.final_types
PEOPLE = 48


async def test_each_person_in_the_shard_of_their_nir_and_each_decision_once(
    sharded_settings: ServiceSettings,
) -> None:
    s = sharded_settings
    people = [nir(100 + k) for k in range(PEOPLE)]
    assert len({shard_of(n, SHARDS) for n in people}) == SHARDS  # the sample spans them all
    async with (
        build_runtime("collection", s).running() as runtime,
        Feed(s.kafka_bootstrap_servers) as feed,
    ):
        assert runtime.layout.shards == SHARDS and len(runtime.parts) == SHARDS
        await send_registry(
            feed,
            s,
            s.collection_schema,
            organisme("OC-1"),
            convention("CNV-1", "OC-1"),
            *(affiliation(n, "OC-1") for n in people),
        )
        ids = [await feed.send(s.topic_cotisations, cotisation(f"COT-{n}", n)) for n in people]
        rows, got = await assert_decided_exactly_once(
            s, s.collection_schema, s.topic_reglements_cotisations, FINAL, ids
        )
        state = await runtime.probe()
    assert state["ready"] and state["shards"] == SHARDS
    by_type: Counter[tuple[str, int]] = Counter((r["event_type"], r["shard"]) for r in rows)
    for shard in range(SHARDS):  # facts about organisms: in every shard, once
        assert by_type[("OrganismeDeclare", shard)] == 1
        assert by_type[("ConventionConclue", shard)] == 1
    for row in rows:  # about a person: in their shard only
        person = json.loads(row["payload"]).get("nir")
        if person is not None:
            assert row["shard"] == shard_of(person, SHARDS), row["event_type"]
    assert {m.headers["store_shard"] for m in got} <= {str(k).encode() for k in range(SHARDS)}
    assert len({m.headers["store_shard"] for m in got}) == SHARDS
    # each shard's positions are its own: 1, 2, 3 ... and its chain its own
    for shard in range(SHARDS):
        positions = [r["position"] for r in rows if r["shard"] == shard]
        assert positions == list(range(1, len(positions) + 1))


async def test_ids_stay_unique_across_shards(sharded_settings: ServiceSettings) -> None:
    """A business id or an event id taken in one shard is refused in another, with the reason
    one store gives."""
    s = sharded_settings
    a = nir(1)
    b = next(nir(k) for k in range(2, 200) if shard_of(nir(k), SHARDS) != shard_of(a, SHARDS))
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await send_registry(
            feed,
            s,
            s.collection_schema,
            organisme("OC-1"),
            convention("CNV-1", "OC-1"),
            affiliation(a, "OC-1"),
            affiliation(b, "OC-1"),
        )
        first = await feed.send(s.topic_cotisations, cotisation("COT-1", a))
        await wait_for_store(s.database_url.get_secret_value(), s.collection_schema, FINAL, 1)
        await feed.send(s.topic_cotisations, cotisation("COT-1", b))  # another person's id
        await feed.send(s.topic_cotisations, paiement("PAY-1", "COT-1", b, 100))  # not b's
        await feed.send(s.topic_cotisations, cotisation("COT-2", b), event_id=first)  # a's id
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_rejets_collection],
            lambda m: len(m) >= 3,
        )
    fields = sorted(m.headers["reject_field"].decode() for m in got)
    assert fields == ["event_id", "payload.cotisation_id", "payload.nir"]
    rows = await store_events(s.database_url.get_secret_value(), s.collection_schema)
    assert sum(r["event_type"] in FINAL for r in rows) == 1  # only a's contribution decided
    conn = await asyncpg.connect(s.database_url.get_secret_value())
    try:
        layout = await read_layout(conn, s.collection_schema)
        claims = await conn.fetch(f'SELECT key, shard FROM "{layout.hub}".claims')
    finally:
        await conn.close()
    held = {r["key"]: r["shard"] for r in claims}
    assert held["c:COT-1"] == shard_of(a, SHARDS)
    assert held[f"e:{first}"] == shard_of(a, SHARDS)
