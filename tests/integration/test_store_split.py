"""`mandat store split`: a store of one sequence, with a real history (parked inputs, payments,
rejections, a convention terminated and its revisions in steps), moved into shards; each
shard's replay verifies; the sharded service then decides on the histories it was given."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg
import pytest
from support import (
    Feed,
    affiliation,
    convention,
    cotisation,
    nir,
    organisme,
    paiement,
    prestation,
    read_topics,
    store_events,
    wait_for_store,
)

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.eventstore.shards import read_layout
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.shards import ABOUT_ORGANISMS, shard_of
from services.domain.catalog import BENEFITS, COLLECTION
from services.domain.kernel.tasks import REVISION_STEP, REVISIONS_OPENED
from services.tools.audit import replay as replay_module
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.split import SplitError, split_store
from services.tools.cli import main

pytestmark = pytest.mark.integration

VERSEMENT = "VERSEMENT_PRESTATIONS_ESPECES"
SHARDS = 3
PEOPLE = 24
TASKS = frozenset({REVISIONS_OPENED, REVISION_STEP})


async def _history(settings: ServiceSettings, database_url: str) -> list[asyncpg.Record]:
    """A store of one sequence filled through the collection service's write path."""
    people = [nir(300 + k) for k in range(PEOPLE)]
    assert len({shard_of(n, SHARDS) for n in people}) == SHARDS
    late = nir(399)  # a contribution parked until its person's affiliation comes
    store: EventStore = await prepare_store(database_url, settings.collection_schema)
    try:
        feeder = Feeder(store, COLLECTION, settings)
        for fact in (organisme("OC-1"), convention("CNV-1", "OC-1")):
            feeder.message(*fact)
        for person in people:
            feeder.message(*affiliation(person, "OC-1"))
        await feeder.flush()
        feeder.message(*cotisation("COT-LATE", late, debut="2017-07-01"))
        for k, person in enumerate(people):
            feeder.message(*cotisation(f"COT-{k}", person, debut="2017-07-01"))
        await feeder.flush()
        for k, person in enumerate(people[::3]):
            feeder.message(*paiement(f"PAY-{k}", f"COT-{3 * k}", person, 50000))
        feeder.raw(feeder.topic_of("CotisationDue"), b"{not json", people[1].encode())
        feeder.raw(feeder.topic_of("CotisationDue"), b"\x00\xff")  # no key
        await feeder.flush()
        await feeder.send(*affiliation(late, "OC-1"))  # unblocks COT-LATE
        # the termination revises everyone's contributions, in steps (a task)
        await feeder.send(
            "ConventionResiliee", {"convention_id": "CNV-1", "effet_au": "2017-06-30"}
        )
        feeder.message(*cotisation("COT-AFTER", people[2], debut="2018-01-01"))
        await feeder.flush()
        # organisms with people in one shard only: their tasks are not opened everywhere
        solo, alone = nir(398), nir(397)
        for fact in (
            organisme("OC-2"),
            convention("CNV-2", "OC-2"),
            affiliation(solo, "OC-2"),
            cotisation("COT-SOLO", solo, debut="2017-07-01"),
            organisme("OC-3"),
            convention("CNV-3", "OC-3"),
            affiliation(alone, "OC-3"),
            cotisation("COT-ALONE", alone, debut="2017-07-01"),
        ):
            await feeder.send(*fact)
        # CNV-2 moved to OC-1: a task about OC-1 and OC-2; CNV-3 terminated: about OC-3
        await feeder.send(*convention("CNV-2", "OC-1"))
        await feeder.send(
            "ConventionResiliee", {"convention_id": "CNV-3", "effet_au": "2017-06-30"}
        )
    finally:
        await store.pool.close()
    return await store_events(database_url, settings.collection_schema)


async def test_a_store_split_into_shards_replays_and_runs_on(
    settings: ServiceSettings, database_url: str
) -> None:
    hub = settings.collection_schema
    before = await _history(settings, database_url)
    kinds = Counter(r["event_type"] for r in before)
    assert kinds["EncaissementRevise"] >= PEOPLE // 2 and kinds[REVISION_STEP] >= 1
    assert kinds["MessageRejete"] == 2 and kinds["DecisionEnAttente"] >= 1

    conn = await asyncpg.connect(database_url)
    try:  # as a relay that published the whole store would have left it
        await conn.execute(
            f'INSERT INTO "{hub}".relay_checkpoints (relay, position) VALUES ($1, $2)',
            COLLECTION.name,
            len(before),
        )
    finally:
        await conn.close()
    report = await split_store(database_url, COLLECTION, hub, SHARDS)
    assert report.ok and report.recorded, report
    assert report.hub_head == len(before)
    for shard in report.reports:
        assert shard.chain_ok and shard.mismatches == 0
        assert shard.matched == shard.decisions_checked > 0
    # outcomes about people of several shards (a step, a fact unblocking parked inputs):
    # each shard holds its part, under the ids the store gave
    assert sum(shard.renamed for shard in report.reports) > 0
    # and so does `mandat replay verify` of a shard, later, from what the split kept
    shard_store = EventStore(await create_pool(database_url, f"{hub}_s0", max_size=2), f"{hub}_s0")
    try:
        again = await replay_module.replay(shard_store, COLLECTION)
    finally:
        await shard_store.pool.close()
    assert again.ok and again.matched == report.reports[0].matched

    conn = await asyncpg.connect(database_url)
    try:
        layout = await read_layout(conn, hub)
        assert layout.shards == SHARDS
        kept = await conn.fetchval(f'SELECT count(*) FROM "{hub}".events')
        split = await conn.fetchrow(f'SELECT * FROM "{hub}".store_split')
        claims = {r["key"]: r["shard"] for r in await conn.fetch(f'SELECT * FROM "{hub}".claims')}
        relayed = [
            await conn.fetchval(f'SELECT position FROM "{schema}".relay_checkpoints')
            for schema in layout.schemas
        ]
        rows = []
        for k, schema in enumerate(layout.schemas):
            rows += [
                (k, r)
                for r in await conn.fetch(f'SELECT * FROM "{schema}".events ORDER BY position')
            ]
    finally:
        await conn.close()
    assert kept == len(before) and split["head_position"] == len(before)
    assert relayed == [r.events for r in report.reports]  # nothing published again
    assert split["shards"] == SHARDS
    # every event of the hub copied once, those about organisms once per shard, a task's
    # in each shard with people of its organisms
    copies = Counter(str(r["event_id"]) for _, r in rows)
    for event in before:
        if event["event_type"] in TASKS:
            assert 1 <= copies[str(event["event_id"])] <= SHARDS
            continue
        expected = SHARDS if event["event_type"] in ABOUT_ORGANISMS else 1
        assert copies[str(event["event_id"])] == expected, event["event_type"]
    openings = [e for e in before if e["event_type"] == REVISIONS_OPENED]
    assert len(openings) == 3
    assert sorted(copies[str(e["event_id"])] for e in openings) == [1, SHARDS, SHARDS]
    lists = Counter(
        tuple(json.loads(r["payload"])["organismes"])
        for _, r in rows
        if r["event_type"] == REVISIONS_OPENED
    )  # OC-1 everywhere, OC-2 where its one person is, OC-3 likewise
    assert lists == {("OC-1",): SHARDS + SHARDS - 1, ("OC-1", "OC-2"): 1, ("OC-3",): 1}
    for k, row in rows:  # a person's events in their shard; positions and rejections renumbered
        person = json.loads(row["payload"]).get("nir")
        if person is not None:
            assert k == shard_of(person, SHARDS)
    for k in range(SHARDS):
        mine = [r for s, r in rows if s == k]
        assert [r["position"] for r in mine] == list(range(1, len(mine) + 1))
        rejected = [r["stream_version"] for r in mine if r["stream_id"] == "rejets"]
        assert rejected == list(range(1, len(rejected) + 1))
    # the ids the runtime claims: inputs' event ids, contributions' and payments' ids
    inputs = [e for e in before if e["event_type"] in COLLECTION.input_types]
    claimed_inputs = [e for e in inputs if e["event_type"] not in ABOUT_ORGANISMS]
    assert {f"e:{e['event_id']}" for e in claimed_inputs} <= claims.keys()
    assert claims["c:COT-0"] == shard_of(nir(300), SHARDS)
    assert claims["y:PAY-1"] == shard_of(nir(303), SHARDS)
    assert len(claims) == len(claimed_inputs) + kinds["CotisationDue"] + kinds["PaiementRecu"]

    # the service runs on the shards: a payment on a contribution of the split history
    person = nir(301)
    async with (
        build_runtime("collection", settings).running() as runtime,
        Feed(settings.kafka_bootstrap_servers) as feed,
    ):
        assert runtime.layout.shards == SHARDS
        paid = await feed.send(
            settings.topic_cotisations, paiement("PAY-NEW", "COT-1", person, 100)
        )
        found = await wait_for_store(
            database_url, hub, frozenset({"PaiementRecu"}), kinds["PaiementRecu"] + 1
        )
        published = await read_topics(
            settings.kafka_bootstrap_servers,
            [settings.topic_reglements_cotisations],
            lambda got: any(m.json["causation_id"] == paid for m in got),
        )
    assert found == kinds["PaiementRecu"] + 1
    # the shards' relays start where the hub's stood: only the new decision is published
    assert published and all(m.json["causation_id"] == paid for m in published)
    after = await store_events(database_url, hub)
    new = [r for r in after if r["event_type"] == "PaiementRecu" and "PAY-NEW" in r["payload"]]
    assert [r["shard"] for r in new] == [shard_of(person, SHARDS)]
    caused = [
        r for r in after if json.loads(r["metadata"]).get("causation_id") == str(new[0]["event_id"])
    ]
    assert caused, "the payment was recorded but not decided"
    assert all(r["shard"] == shard_of(person, SHARDS) for r in caused)


async def _small_history(settings: ServiceSettings, database_url: str) -> None:
    store = await prepare_store(database_url, settings.collection_schema)
    try:
        feeder = Feeder(store, COLLECTION, settings)
        await feeder.send(*organisme("OC-1"))
        await feeder.send(*affiliation(nir(1), "OC-1"))
    finally:
        await store.pool.close()


def test_a_second_split_is_refused(
    settings: ServiceSettings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = settings.collection_schema
    asyncio.run(_small_history(settings, database_url))
    argv = ["store", "split", "--database-url", database_url, "--collection-schema", hub]
    assert main([*argv, "--service", "collection", "--shards", "2"]) == 0
    assert "layout recorded: 2 shards" in capsys.readouterr().out
    with pytest.raises(SplitError, match="already in 2 shards"):
        asyncio.run(split_store(database_url, COLLECTION, hub, 2))
    assert main([*argv, "--service", "collection", "--shards", "4"]) == 2
    assert "already in 2 shards" in capsys.readouterr().err


def test_a_split_that_does_not_replay_records_nothing(
    settings: ServiceSettings,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Shards whose replay names decisions otherwise than the record (here: the ids kept
    from the store forgotten) fail the split: exit 1, the layout and the split left unrecorded."""
    hub = settings.collection_schema
    asyncio.run(_history(settings, database_url))

    async def forgotten(store: EventStore) -> None:
        return None

    monkeypatch.setattr(replay_module, "split_ids", forgotten)
    argv = ["store", "split", "--database-url", database_url, "--collection-schema", hub]
    assert main([*argv, "--service", "collection", "--shards", str(SHARDS)]) == 1
    captured = capsys.readouterr()
    assert "MISMATCH" in captured.out and "layout NOT recorded" in captured.err

    async def recorded() -> tuple[int, int, int]:
        conn = await asyncpg.connect(database_url)
        try:
            layout = await read_layout(conn, hub)
            split = await conn.fetchval(f'SELECT count(*) FROM "{hub}".store_split')
            return layout.shards, split, await conn.fetchval(f'SELECT count(*) FROM "{hub}".claims')
        finally:
            await conn.close()

    assert asyncio.run(recorded()) == (1, 0, 0)
    # and a second attempt over the shards it filled is refused, not mixed into them
    with pytest.raises(SplitError, match="holds events"):
        asyncio.run(split_store(database_url, COLLECTION, hub, SHARDS))


async def _benefits_history(settings: ServiceSettings, database_url: str) -> int:
    """A benefits store: benefits paid through a convention later terminated."""
    people = [nir(500 + k) for k in range(12)]
    store = await prepare_store(database_url, settings.benefits_schema)
    try:
        feeder = Feeder(store, BENEFITS, settings)
        feeder.message(*organisme("OC-B"))
        feeder.message(*convention("CNV-B", "OC-B", objet=VERSEMENT))
        for person in people:
            feeder.message(*affiliation(person, "OC-B"))
        await feeder.flush()
        for k, person in enumerate(people):
            feeder.message(*prestation(f"PRE-{k}", person, jour="2017-09-01"))
        await feeder.flush()
        await feeder.send(
            "ConventionResiliee", {"convention_id": "CNV-B", "effet_au": "2017-06-30"}
        )
        return await store.head()
    finally:
        await store.pool.close()


def test_a_benefits_store_splits_too(settings: ServiceSettings, database_url: str) -> None:
    head = asyncio.run(_benefits_history(settings, database_url))
    report = asyncio.run(split_store(database_url, BENEFITS, settings.benefits_schema, 2))
    assert report.ok and report.recorded and report.hub_head == head
    assert all(r.matched == r.decisions_checked > 0 for r in report.reports)
    assert report.claims == 12 * 2 + 12  # affiliations' and benefits' event ids, benefits' ids
