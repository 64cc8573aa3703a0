"""Faults of the benefits service: killed mid-stream, PostgreSQL down for a few seconds.

Each test checks what a user relies on: every benefit gets its decision exactly once in the
store and exactly once on the settlement topic, and nothing valid is rejected.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import pytest
from support import (
    Feed,
    affiliation,
    assert_decided_exactly_once,
    convention,
    create_topics,
    kill,
    nir,
    organisme,
    prestation,
    publish_many,
    read_topics,
    spawn_service,
    store_schemas,
    wait_for_store,
)

from contracts.topics import BENEFITS_DECISION_TYPES
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS

if TYPE_CHECKING:
    # the fixtures' types: pytest imports the conftest itself, a test module does not
    from conftest import LocalPostgres

pytestmark = pytest.mark.integration

FINAL = BENEFITS.final_types  # a revision settles no input
N = 1500
REGISTRY = frozenset({"OrganismeDeclare", "ConventionConclue", "AffiliationEnregistree"})


def benefits(count: int, offset: int = 0) -> list[tuple[str, dict[str, object]]]:
    """Two thirds paid by the organism (2017, affiliated), one third before 2017."""
    out = []
    for k in range(offset, offset + count):
        jour = "2016-06-01" if k % 3 == 0 else "2017-05-02"
        out.append(prestation(f"PRE-{k}", nir(k), jour=jour))
    return out


async def seed_registry(feed: Feed, s: ServiceSettings, count: int) -> None:
    await create_topics(s)
    await publish_many(
        feed,
        s.topic_referentiel,
        [organisme("OC-K"), convention("CNV-K", "OC-K", objet="VERSEMENT_PRESTATIONS_ESPECES")],
    )
    await publish_many(
        feed, s.topic_referentiel, [affiliation(nir(i), "OC-K") for i in range(count)]
    )


async def registry_recorded(s: ServiceSettings, count: int) -> None:
    """The registry topic has several partitions and the service assumes no order between
    them: wait until it recorded the whole registry, so every outcome is known in advance."""
    found = await wait_for_store(
        s.database_url.get_secret_value(), s.benefits_schema, REGISTRY, count, timeout=30
    )
    assert found == count, f"{found} registry facts recorded for {count}"


async def assert_exactly_once(s: ServiceSettings, ids: list[str]) -> None:
    """One final decision per input in the store and on the topic; no message twice (a
    benefit read before its affiliation may also have a DecisionEnAttente: once, too)."""
    rows, got = await assert_decided_exactly_once(
        s, s.benefits_schema, s.topic_reglements_prestations, FINAL, ids
    )
    expected = Counter(r["event_type"] for r in rows if r["event_type"] in BENEFITS_DECISION_TYPES)
    assert Counter(m.event_type for m in got) == expected
    final = [m for m in got if m.event_type in FINAL]
    before_2017 = sum(1 for k in range(len(ids)) if k % 3 == 0)
    assert Counter(m.event_type for m in final) == {
        "VersementDelegue": len(ids) - before_2017,
        "PrestationNonTraitee": before_2017,
    }


async def decided_at_least(dsn: str, schema: str, count: int, timeout: float = 40) -> int:
    """Poll the store closely (one connection, every 20 ms) until `count` final decisions,
    so the caller can kill the service while it is still deciding."""
    conn = await asyncpg.connect(dsn)
    try:
        deadline, found = time.monotonic() + timeout, 0
        while time.monotonic() < deadline:
            try:
                union = " UNION ALL ".join(
                    f'SELECT 1 FROM "{name}".events WHERE event_type = ANY($1)'
                    for name in await store_schemas(conn, schema)
                )
                found = int(await conn.fetchval(f"SELECT count(*) FROM ({union}) e", list(FINAL)))
            except asyncpg.UndefinedTableError:
                found = 0  # the service has not created its store yet
            if found >= count:
                break
            await asyncio.sleep(0.02)
        return found
    finally:
        await conn.close()


async def test_a_benefits_service_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(
    store_settings: ServiceSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s, log = store_settings, tmp_path / "benefits.log"
    monkeypatch.setenv("MANDAT_BATCH_MAX_RECORDS", "50")  # many commits: killed between two
    dsn = s.database_url.get_secret_value()
    async with Feed(s.kafka_bootstrap_servers) as feed:
        await seed_registry(feed, s, N)
        first = spawn_service("benefits", s, log)
        try:
            await registry_recorded(s, N + 2)
            ids = await publish_many(feed, s.topic_prestations, benefits(N))
            decided = await decided_at_least(dsn, s.benefits_schema, N // 10)
            assert decided >= N // 10, f"the first instance decided {decided} benefits"
        finally:
            kill(first)
        when_killed = await wait_for_store(dsn, s.benefits_schema, FINAL, N, timeout=0.01)
        assert when_killed < N, "killed after it decided everything: nothing was tested"
        second = spawn_service("benefits", s, log)
        try:
            await assert_exactly_once(s, ids)
        finally:
            second.terminate()
            second.wait(30)
    rejected = await read_topics(
        s.kafka_bootstrap_servers, [s.topic_rejets_benefits], lambda m: False, timeout=2
    )
    assert rejected == []


async def test_postgresql_down_for_seconds_mid_stream_loses_no_benefit_and_rejects_nothing(
    store_settings: ServiceSettings,
    local_postgres: LocalPostgres,
) -> None:
    s = store_settings
    failures: list[BaseException] = []
    runtime_of = build_runtime("benefits", s)
    async with runtime_of.running() as runtime, Feed(s.kafka_bootstrap_servers) as feed:
        for part in runtime.parts:  # each shard's (one store: its own)
            part.handler.on_retry = failures.append
        await seed_registry(feed, s, N)
        await registry_recorded(s, N + 2)
        ids = await publish_many(feed, s.topic_prestations, benefits(N // 2))
        local_postgres.stop()
        try:
            ids += await publish_many(feed, s.topic_prestations, benefits(N // 2, N // 2))
            await asyncio.sleep(4)
        finally:
            local_postgres.start()
        await assert_exactly_once(s, ids)
    assert failures, "the outage was not felt by the service: nothing was tested"
    rejected = await read_topics(
        s.kafka_bootstrap_servers, [s.topic_rejets_benefits], lambda m: False, timeout=2
    )
    assert rejected == []
