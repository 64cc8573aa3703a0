"""`mandat store split`: a store of one sequence, with a real history (parked inputs, payments,
rejections, a convention terminated and its revisions in steps), moved into shards; each
shard's replay verifies; the sharded service then decides on the histories it was given.
The split holds the hub's append lock and refuses a hub appended to meanwhile, refuses a hub
whose relay has not published, and leaves the service's role only a hub's grants there."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from uuid import uuid4

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
from services.adapters.eventstore.roles import provision, service_role
from services.adapters.eventstore.shards import read_layout
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.shards import ABOUT_ORGANISMS, shard_of, shard_of_key
from services.domain.catalog import BENEFITS, COLLECTION, ServiceDescription
from services.domain.kernel.processing import REJECTION
from services.domain.kernel.records import NewEvent
from services.domain.kernel.tasks import REVISION_STEP, REVISIONS_OPENED
from services.tools.audit import replay as replay_module
from services.tools.audit import split as split_module
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.split import ShardCopy, ShardReport, SplitError, split_store
from services.tools.cli import main

pytestmark = pytest.mark.integration

VERSEMENT = "VERSEMENT_PRESTATIONS_ESPECES"
SHARDS = 3
PEOPLE = 24
TASKS = frozenset({REVISIONS_OPENED, REVISION_STEP})
OFF_SHARD_0 = next(
    oid for oid in (f"OC-K{n}" for n in range(100)) if shard_of_key(oid.encode(), SHARDS) != 0
)
"""An organism whose Kafka key is not the first shard's: a refused fact about it is there."""
HUB_GRANTS = {
    ("schema_migrations", "SELECT"),
    ("shard_layout", "SELECT"),
    ("claims", "SELECT"),
    ("claims", "INSERT"),
}
"""What the service's role may do to the tables of a hub of shards: nothing more."""


def _topics(settings: ServiceSettings) -> dict[str, frozenset[str]]:
    return {settings.topic(t): types for t, types in COLLECTION.inputs.items()}


async def _relayed(
    database_url: str, schema: str, position: int, relay: str = "collection"
) -> None:
    """The hub's relay checkpoint, as a relay that published up to `position` left it."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f'INSERT INTO "{schema}".relay_checkpoints (relay, position) VALUES ($1, $2)'
            " ON CONFLICT (relay) DO UPDATE SET position = EXCLUDED.position",
            relay,
            position,
        )
    finally:
        await conn.close()


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
        # a payment for one person parked on a contribution that turns out another's: the
        # stream of that contribution is in both people's shards
        payer = next(p for p in people if shard_of(p, SHARDS) != shard_of(people[0], SHARDS))
        await feeder.send(*paiement("PAY-OTHER", "COT-OTHER", payer, 100))
        await feeder.send(*cotisation("COT-OTHER", people[0], debut="2017-07-01"))
        # a fact about organisms the rules refuse (its id again, other content): where the
        # runtime refuses it, in the first shard, whatever its key
        declared = organisme(OFF_SHARD_0)
        same = await feeder.send(*declared)
        await feeder.send("OrganismeDeclare", {**declared[1], "nom": "autre"}, event_id=same)
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
    assert kinds["MessageRejete"] == 3 and kinds["DecisionEnAttente"] >= 1

    # as a relay that published the whole store would have left it
    await _relayed(database_url, hub, len(before))
    report = await split_store(database_url, COLLECTION, hub, SHARDS, topics=_topics(settings))
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
    # the stream of a contribution whose parked payment is another person's: in two shards
    other = {k for k, r in rows if r["stream_id"] == "cotisation-COT-OTHER"}
    assert len(other) == 2
    for k in other:
        mine = [
            r["stream_version"]
            for s, r in rows
            if s == k and r["stream_id"] == "cotisation-COT-OTHER"
        ]
        assert mine == list(range(1, len(mine) + 1))
    # the fact about organisms refused by the rules: in the first shard, not its key's
    (refused,) = [
        (k, r) for k, r in rows if r["event_type"] == REJECTION and '"event_id"' in r["payload"]
    ]
    assert refused[0] == 0 and json.loads(refused[1]["payload"])["field"] == "event_id"
    # the ids the runtime claims: every event's id for the shard holding it (a fact about
    # organisms: the first), contributions' and payments' ids
    held: dict[str, list[int]] = {}
    for k, r in rows:
        held.setdefault(str(r["event_id"]), []).append(k)
    for event in before:
        expected = (
            0 if event["event_type"] in ABOUT_ORGANISMS else min(held[str(event["event_id"])])
        )
        assert claims[f"e:{event['event_id']}"] == expected, event["event_type"]
    assert claims["c:COT-0"] == shard_of(nir(300), SHARDS)
    assert claims["y:PAY-1"] == shard_of(nir(303), SHARDS)
    assert claims["y:PAY-OTHER"] != claims["c:COT-OTHER"]
    assert len(claims) == len(before) + kinds["CotisationDue"] + kinds["PaiementRecu"]
    # the service's role keeps, on the hub, only what a hub needs; so does a migrate of a
    # hub whose role was given its store's grants again (as a migrate before shards gave)
    assert await _hub_grants(settings) == HUB_GRANTS
    conn = await asyncpg.connect(database_url)
    try:
        role = service_role(hub)
        await conn.execute(f'GRANT SELECT, INSERT ON "{hub}".events TO "{role}"')
        await conn.execute(f'GRANT SELECT, INSERT, UPDATE ON "{hub}".relay_checkpoints TO "{role}"')
        await provision(conn, hub, settings.login("collection")[1])
    finally:
        await conn.close()
    assert await _hub_grants(settings) == HUB_GRANTS

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


async def _hub_grants(settings: ServiceSettings) -> set[tuple[str, str]]:
    """What the collection service's role may do to its hub's tables, as it sees it."""
    user, password = settings.login("collection")
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(), user=user, password=password
    )
    try:
        rows = await conn.fetch(
            "SELECT table_name, privilege_type FROM information_schema.table_privileges"
            " WHERE grantee = current_user AND table_schema = $1",
            settings.collection_schema,
        )
        assert await conn.fetchval(
            "SELECT has_schema_privilege($1, 'USAGE')", settings.collection_schema
        )
    finally:
        await conn.close()
    return {(r["table_name"], r["privilege_type"]) for r in rows}


async def _small_history(settings: ServiceSettings, database_url: str) -> int:
    """An organism, a record the contract refuses (a rejection, which the relay publishes),
    an affiliation (which it does not); returns the rejection's position."""
    store = await prepare_store(database_url, settings.collection_schema)
    try:
        feeder = Feeder(store, COLLECTION, settings)
        await feeder.send(*organisme("OC-1"))
        feeder.raw(feeder.topic_of("CotisationDue"), b"{not json", nir(2).encode())
        await feeder.flush()
        rejected = await store.head()
        await feeder.send(*affiliation(nir(1), "OC-1"))
        return rejected
    finally:
        await store.pool.close()


def test_a_second_split_is_refused(
    settings: ServiceSettings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = settings.collection_schema
    rejected = asyncio.run(_small_history(settings, database_url))
    argv = ["store", "split", "--database-url", database_url, "--collection-schema", hub]
    # the relay has not published the rejection: refused (exit 2), nothing recorded
    assert main([*argv, "--service", "collection", "--shards", "2"]) == 2
    assert "relay caught up" in capsys.readouterr().err
    asyncio.run(_relayed(database_url, hub, rejected - 1))
    assert main([*argv, "--service", "collection", "--shards", "2"]) == 2
    capsys.readouterr()
    # published up to the rejection: the affiliation after it is not for the relay
    asyncio.run(_relayed(database_url, hub, rejected))
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
    asyncio.run(_relayed(database_url, hub, len(asyncio.run(_history(settings, database_url)))))

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


async def _append(store: EventStore, oid: str) -> int:
    async with store.transaction() as tx:
        event = NewEvent(uuid4(), "OrganismeDeclare", organisme(oid)[1], {})
        return tx.append_at(f"organisme-{oid}", 1, event)


async def test_a_split_holds_the_hubs_append_lock_and_refuses_a_hub_appended_to(
    settings: ServiceSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the split runs, no append to the hub can take its lock; an append made without
    it (no writer of ours does that) is noticed before anything is recorded."""
    hub = settings.collection_schema
    await _relayed(database_url, hub, await _small_history(settings, database_url))
    verify, taken = split_module._verify, list[bool]()

    async def meanwhile(
        store: EventStore, service: ServiceDescription, copy: ShardCopy
    ) -> ShardReport:
        if not taken:
            conn = await asyncpg.connect(database_url)
            try:
                key = EventStore.lock_key_of(hub)
                taken.append(await conn.fetchval("SELECT pg_try_advisory_lock($1)", key))
            finally:
                await conn.close()
            rogue = EventStore(await create_pool(database_url, hub, max_size=1), hub)
            rogue.lock_key += 1  # a writer ignoring the lock
            try:
                await _append(rogue, "OC-ROGUE")
            finally:
                await rogue.pool.close()
        return await verify(store, service, copy)

    monkeypatch.setattr(split_module, "_verify", meanwhile)
    with pytest.raises(SplitError, match="appended to during the split"):
        await split_store(database_url, COLLECTION, hub, 2)
    assert taken == [False]
    conn = await asyncpg.connect(database_url)
    try:
        assert (await read_layout(conn, hub)).shards == 1
        assert await conn.fetchval(f'SELECT count(*) FROM "{hub}".store_split') == 0
        assert await conn.fetchval(f'SELECT count(*) FROM "{hub}".claims') == 0
    finally:
        await conn.close()
    # the lock was let go: an append takes it
    store = EventStore(await create_pool(database_url, hub, max_size=1), hub)
    try:
        assert await asyncio.wait_for(_append(store, "OC-AFTER"), 60) > 0
    finally:
        await store.pool.close()


async def test_an_instance_still_running_waits_then_may_not_append_to_the_archive(
    settings: ServiceSettings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An instance of the service started before the split (its own login role, the hub as
    its one store) appends while the split runs: it waits for the split's lock, and once the
    split is recorded its role may no longer write to the hub."""
    hub = settings.collection_schema
    head = await _small_history(settings, database_url)
    await _relayed(database_url, hub, head)
    stale = EventStore(
        await create_pool(database_url, hub, max_size=1, login=settings.login("collection")), hub
    )
    verify, waiting = split_module._verify, list[asyncio.Task[int]]()

    async def meanwhile(
        store: EventStore, service: ServiceDescription, copy: ShardCopy
    ) -> ShardReport:
        if not waiting:
            waiting.append(asyncio.create_task(_append(stale, "OC-STALE")))
            await asyncio.sleep(0.2)
            assert not waiting[0].done()
        return await verify(store, service, copy)

    monkeypatch.setattr(split_module, "_verify", meanwhile)
    try:
        report = await split_store(database_url, COLLECTION, hub, 2)
        assert report.ok and report.recorded
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await asyncio.wait_for(waiting[0], 60)
    finally:
        await stale.pool.close()
    assert await _hub_grants(settings) == HUB_GRANTS
    conn = await asyncpg.connect(database_url)
    try:  # the archive is what was split
        split = await conn.fetchval(f'SELECT head_position FROM "{hub}".store_split')
        assert split == await conn.fetchval(f'SELECT max(position) FROM "{hub}".events')
    finally:
        await conn.close()


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
    asyncio.run(_relayed(database_url, settings.benefits_schema, head, "benefits"))
    report = asyncio.run(split_store(database_url, BENEFITS, settings.benefits_schema, 2))
    assert report.ok and report.recorded and report.hub_head == head
    assert all(r.matched == r.decisions_checked > 0 for r in report.reports)
    assert report.claims == head + 12  # every event's id, and benefits' ids
