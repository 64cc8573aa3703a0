"""Faults: a service killed mid-stream, an instance lost from its group, PostgreSQL down.

Each test checks what a user relies on: every input gets its decision exactly once in the
store and exactly once on the settlement topic, and nothing valid is rejected.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from support import (
    SHARDS,
    Feed,
    Received,
    affiliation,
    assert_decided_exactly_once,
    convention,
    cotisation,
    create_topics,
    kill,
    nir,
    organisme,
    publish_many,
    read_topics,
    spawn_service,
    store_events,
    wait_for_store,
)

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.shards import Layout
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION

if TYPE_CHECKING:
    # the fixtures' types: pytest imports the conftest itself, a test module does not
    from conftest import LocalKafka, LocalPostgres

pytestmark = pytest.mark.integration

FINAL = COLLECTION.final_types  # a revision settles no input
N = 1500


def contributions(count: int, offset: int = 0) -> list[tuple[str, dict[str, object]]]:
    """Half delegated (2017, affiliated), half URSSAF (2018)."""
    out = []
    for i in range(count):
        debut = "2017-01-01" if i % 2 else "2018-01-01"
        out.append(cotisation(f"COT-{offset + i}", nir(offset + i), debut=debut))
    return out


async def seed_registry(feed: Feed, s: ServiceSettings, count: int) -> None:
    await create_topics(s)
    await publish_many(feed, s.topic_referentiel, [organisme("OC-K"), convention("CNV-K", "OC-K")])
    await publish_many(
        feed, s.topic_referentiel, [affiliation(nir(i), "OC-K") for i in range(count)]
    )


async def assert_exactly_once(s: ServiceSettings, ids: list[str]) -> None:
    await assert_decided_exactly_once(
        s, s.collection_schema, s.topic_reglements_cotisations, FINAL, ids
    )


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
async def test_a_service_stopped_mid_stream_and_restarted_loses_and_duplicates_nothing(
    store_settings: ServiceSettings,
    tmp_path: Path,
    how: signal.Signals,
) -> None:
    """SIGKILL: nothing is finished; SIGTERM: the graceful stop finishes or abandons the
    batch in hand. Either way the restarted service completes the work exactly once."""
    s, log = store_settings, tmp_path / "collection.log"
    async with Feed(s.kafka_bootstrap_servers) as feed:
        await seed_registry(feed, s, N)
        first = spawn_service("collection", s, log)
        try:
            ids = await publish_many(feed, s.topic_cotisations, contributions(N))
            await wait_for_store(
                s.database_url.get_secret_value(), s.collection_schema, FINAL, N // 4
            )
        finally:
            kill(first, how)
        second = spawn_service("collection", s, log)
        try:
            await assert_exactly_once(s, ids)
        finally:
            second.terminate()
            second.wait(30)


async def test_two_instances_one_killed_still_give_every_decision_exactly_once(
    store_settings: ServiceSettings,
    tmp_path: Path,
) -> None:
    s = store_settings
    async with Feed(s.kafka_bootstrap_servers) as feed:
        await seed_registry(feed, s, N)
        a = spawn_service("collection", s, tmp_path / "a.log")
        b = spawn_service("collection", s, tmp_path / "b.log")
        try:
            await asyncio.sleep(6)  # both join the group and share the partitions
            ids = await publish_many(feed, s.topic_cotisations, contributions(N))
            await wait_for_store(
                s.database_url.get_secret_value(), s.collection_schema, FINAL, N // 5
            )
            kill(a)
            await assert_exactly_once(s, ids)
        finally:
            if a.poll() is None:
                kill(a)
            b.terminate()
            b.wait(30)


async def test_postgresql_down_for_seconds_mid_stream_loses_nothing_and_rejects_nothing(
    store_settings: ServiceSettings,
    local_postgres: LocalPostgres,
) -> None:
    s = store_settings.model_copy(update={"stall_after_seconds": 1.0})
    runtime = build_runtime("collection", s)
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        await seed_registry(feed, s, N)
        ids = await publish_many(feed, s.topic_cotisations, contributions(N // 2))
        local_postgres.stop()
        try:
            ids += await publish_many(feed, s.topic_cotisations, contributions(N // 2, N // 2))
            await asyncio.sleep(4)
            # work in hand and no progress: readiness says so, with the reason
            during = await runtime.probe()
        finally:
            local_postgres.start()
        await assert_exactly_once(s, ids)
        after = await runtime.probe()
    consumers = [k for k in during["stalled"] if k.startswith("consumer")]  # one a shard
    assert not during["ready"] and max(during["stalled"][k] for k in consumers) > 1.0
    assert any(r.startswith("consumer") for r in during["reasons"]), during
    assert after["ready"] and after["reasons"] == []
    assert all(after["stalled"][k] == 0.0 for k in consumers)
    rejected = await read_topics(
        s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: False, timeout=2
    )
    assert rejected == []


async def test_kafka_down_for_seconds_mid_stream_loses_nothing_and_rejects_nothing(
    store_settings: ServiceSettings,
    local_kafka: LocalKafka,
) -> None:
    """The broker stops and comes back on the same address: the consumer and the relay
    reconnect; every decision is recorded and published once."""
    s = store_settings
    async with build_runtime("collection", s).running():
        async with Feed(s.kafka_bootstrap_servers) as feed:
            await seed_registry(feed, s, N)
            ids = await publish_many(feed, s.topic_cotisations, contributions(N // 2))
        local_kafka.stop()
        try:
            await asyncio.sleep(4)
        finally:
            local_kafka.start()
        async with Feed(s.kafka_bootstrap_servers) as feed:
            ids += await publish_many(feed, s.topic_cotisations, contributions(N // 2, N // 2))
        await assert_exactly_once(s, ids)
    rejected = await read_topics(
        s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: False, timeout=2
    )
    assert rejected == []


async def test_a_service_killed_while_a_fact_revises_many_decisions_revises_each_once(
    store_settings: ServiceSettings, tmp_path: Path
) -> None:
    """A termination revises the N/2 delegated contributions, in steps; the service is
    SIGKILLed as soon as the store holds its first step (during the revision, or just
    after). The restarted service records and publishes each revision exactly once."""
    s, log = store_settings, tmp_path / "collection.log"
    dsn = s.database_url.get_secret_value()
    async with Feed(s.kafka_bootstrap_servers) as feed:
        await seed_registry(feed, s, N)
        first = spawn_service("collection", s, log)
        try:
            # the registry's partitions may be read in any order against the contributions':
            # every fact recorded first, so that only the termination revises anything
            known = frozenset({"ConventionConclue", "AffiliationEnregistree"})
            assert await wait_for_store(dsn, s.collection_schema, known, N + 1) == N + 1
            await publish_many(feed, s.topic_cotisations, contributions(N))
            assert await wait_for_store(dsn, s.collection_schema, FINAL, N) == N
            termination = (
                "ConventionResiliee",
                {"convention_id": "CNV-K", "effet_au": "2016-12-31"},
            )
            await publish_many(feed, s.topic_referentiel, [termination])
            step = frozenset({"EtapeDeRevision"})
            assert await wait_for_store(dsn, s.collection_schema, step, 1) >= 1
        finally:
            kill(first, signal.SIGKILL)
        second = spawn_service("collection", s, log)
        try:
            revised = N // 2  # the 2017 ones; 2018's went to the URSSAF: never revised
            revision = frozenset({"EncaissementRevise"})
            assert await wait_for_store(dsn, s.collection_schema, revision, revised) == revised
            rows = await store_events(dsn, s.collection_schema)
            subjects = Counter(
                json.loads(r["payload"])["cotisation_id"]
                for r in rows
                if r["event_type"] == "EncaissementRevise"
            )
            assert len(subjects) == revised and set(subjects.values()) == {1}

            def complete(messages: list[Received]) -> bool:
                return sum(m.event_type == "EncaissementRevise" for m in messages) >= revised

            got = await read_topics(
                s.kafka_bootstrap_servers, [s.topic_reglements_cotisations], complete, timeout=60
            )
            published = Counter(
                m.headers["event_id"] for m in got if m.event_type == "EncaissementRevise"
            )
            assert len(published) == revised and set(published.values()) == {1}
        finally:
            second.terminate()
            second.wait(30)


async def test_two_instances_commit_appends_to_their_shards_at_the_same_time(
    sharded_settings: ServiceSettings,
    tmp_path: Path,
) -> None:
    """A store in shards has no lock every append takes: while two instances decide, the
    database shows both holding a shard's lock at the same moment, each its own shards."""
    s = sharded_settings
    dsn = s.database_url.get_secret_value()
    keys = [
        EventStore.lock_key_of(schema) for schema in Layout(s.collection_schema, SHARDS).schemas
    ]
    samples: list[set[tuple[str, int]]] = []

    async def sample(stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while not stop.is_set():
                rows = await conn.fetch(
                    "SELECT a.application_name AS name, l.objid::bigint AS key"
                    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.granted"
                    " AND l.objid::bigint = ANY($1::bigint[])",
                    keys,
                )
                # the process that holds it: the last part of its connection's name
                samples.append({(r["name"].rsplit("-", 1)[-1], r["key"]) for r in rows})
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    async with Feed(s.kafka_bootstrap_servers) as feed:
        await seed_registry(feed, s, 2 * N)
        a = spawn_service("collection", s, tmp_path / "a.log")
        b = spawn_service("collection", s, tmp_path / "b.log")
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample(stop))
        try:
            await asyncio.sleep(6)  # both join the group and share the partitions
            ids = await publish_many(feed, s.topic_cotisations, contributions(2 * N))
            await assert_exactly_once(s, ids)
        finally:
            stop.set()
            await sampler
            for process in (a, b):
                process.terminate()
                process.wait(30)
    both = [x for x in samples if len({holder for holder, _ in x}) == 2]
    assert both, f"no moment with both instances in a shard's transaction ({len(samples)} looks)"
    held: dict[str, set[int]] = {}
    for x in samples:
        for holder, key in x:
            held.setdefault(holder, set()).add(key)
    assert len(held) == 2 and all(held.values())  # each instance appended to shards
