"""The balance projections: kept live by the Projector, rebuilt from position 0 by
`mandat projections rebuild`, which must find the same rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.projections import Projector
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS, COLLECTION
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.sample import MUTUELLE, NIR_A, benefit, payment, record_sample
from services.tools.cli import main

pytestmark = pytest.mark.integration

HELD = {(MUTUELLE, "PL-IDF"): (75000, 2), (MUTUELLE, "PL-PACA"): (30000, 1)}
PAID = {(MUTUELLE, "PL-IDF"): (326900 + 236456, 2)}


@dataclass
class Stores:
    collection: EventStore
    benefits: EventStore
    feeders: tuple[Feeder, Feeder]
    argv: list[str]


@pytest.fixture
async def stores(settings: ServiceSettings, database_url: str) -> AsyncIterator[Stores]:
    collection = await prepare_store(database_url, settings.collection_schema)
    benefits = await prepare_store(database_url, settings.benefits_schema)
    try:
        feeders = (Feeder(collection, COLLECTION, settings), Feeder(benefits, BENEFITS, settings))
        await record_sample(*feeders)
        yield Stores(
            collection,
            benefits,
            feeders,
            [
                "--database-url",
                database_url,
                "--collection-schema",
                settings.collection_schema,
                "--benefits-schema",
                settings.benefits_schema,
            ],
        )
    finally:
        await collection.pool.close()
        await benefits.pool.close()


async def mandat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


async def live(store: EventStore, table: str, count: str) -> dict[tuple[str, str], tuple[int, int]]:
    rows = await store.pool.fetch(
        f"SELECT organisme_id, caisse_de_base, montant_cents, {count} FROM {table}"
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


async def test_the_projector_keeps_the_balances_and_a_rebuild_finds_the_same(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    for store in (stores.collection, stores.benefits):
        assert await Projector(store, batch=7).catch_up() == await store.head()
    assert await live(stores.collection, "projection_sommes_detenues", "paiements") == HELD
    assert await live(stores.benefits, "projection_versements_delegues", "versements") == PAID

    code, out = await mandat(capsys, "projections", "rebuild", *stores.argv, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    by_name = {p["projection"]: p for p in report["projections"]}
    assert by_name["sommes_detenues"]["position"] == await stores.collection.head()
    assert [
        (r["organisme_id"], r["caisse_de_base"], r["montant_cents"], r["count"])
        for r in by_name["sommes_detenues"]["rows"]
    ] == [(MUTUELLE, "PL-IDF", 75000, 2), (MUTUELLE, "PL-PACA", 30000, 1)]
    code, out = await mandat(capsys, "projections", "rebuild", *stores.argv)
    assert code == 0 and "equal to live" in out and "projections rebuild: OK" in out


async def test_a_live_projection_that_drifted_is_reported_and_can_be_repaired(
    stores: Stores, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    await Projector(stores.collection).catch_up()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f'UPDATE "{stores.collection.schema}".projection_sommes_detenues'
            " SET montant_cents = montant_cents + 1 WHERE caisse_de_base ="
            " 'PL-PACA'"
        )
    finally:
        await conn.close()
    code, out = await mandat(
        capsys, "projections", "rebuild", *stores.argv, "--service", "collection", "--json"
    )
    [check] = json.loads(out)["projections"]
    assert code == 1 and check["differences"] == [
        {
            "organisme_id": MUTUELLE,
            "caisse_de_base": "PL-PACA",
            "live": [30001, 1],
            "rebuilt": [30000, 1],
        }
    ]
    code, out = await mandat(
        capsys, "projections", "rebuild", *stores.argv, "--service", "collection", "--repair"
    )
    assert code == 1 and "live rows replaced" in out
    code, _ = await mandat(capsys, "projections", "rebuild", *stores.argv)
    assert code == 0
    assert await live(stores.collection, "projection_sommes_detenues", "paiements") == HELD


async def test_the_projector_follows_new_decisions_and_concurrent_projectors_count_once(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    running = asyncio.create_task(Projector(stores.collection, idle_poll=0.05).run())
    try:
        collection, benefits = stores.feeders
        collection.message(*payment("PAY-A-3", "COT-A-2017", NIR_A, 1000))
        await collection.flush()
        head = await stores.collection.head()
        async with asyncio.timeout(10):
            while (
                await stores.collection.pool.fetchval(
                    "SELECT position FROM projection_checkpoints"
                    " WHERE projection = 'sommes_detenues'"
                )
                < head
            ):
                await asyncio.sleep(0.05)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    held = await live(stores.collection, "projection_sommes_detenues", "paiements")
    assert held[(MUTUELLE, "PL-IDF")] == (76000, 3)

    benefits.message(*benefit("PRE-A-3", NIR_A, "2017-10-01", 5000))
    await benefits.flush()
    done = await asyncio.gather(*(Projector(stores.benefits, batch=3).catch_up() for _ in range(3)))
    assert sum(done) == await stores.benefits.head()  # each event folded by one of them
    paid = await live(stores.benefits, "projection_versements_delegues", "versements")
    assert paid == {(MUTUELLE, "PL-IDF"): (326900 + 236456 + 5000, 3)}
    code, _ = await mandat(capsys, "projections", "rebuild", *stores.argv)
    assert code == 0


async def test_a_projection_behind_the_store_is_compared_at_its_own_position(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    collection, _ = stores.feeders
    await Projector(stores.collection).catch_up()
    position = await stores.collection.head()
    collection.message(*payment("PAY-A-4", "COT-A-2017", NIR_A, 500))
    await collection.flush()
    code, out = await mandat(
        capsys, "projections", "rebuild", *stores.argv, "--service", "collection", "--json"
    )
    [check] = json.loads(out)["projections"]
    assert code == 0 and check["position"] == position < check["head"]
