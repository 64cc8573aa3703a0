"""A store in shards decides what a store in one piece decides (services/adapters/runtime/
sharded.py, shards.py), on in-memory stores sharing their claims.

Generated histories: the registry, then inputs about a handful of people whose business ids
collide across people (a contribution's id sent for two people, a payment naming another's
contribution), cut into batches anywhere. The same records go to one store (each batch in
one of the orders the shards may take it) and to a store in three shards: every record
ends the same way (its input recorded, or refused), every decision is the same event (id,
type, payload), each person's events are in their shard, the facts about organisms in every
shard, and each shard replays on its own.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from hypothesis import event as note
from hypothesis import given
from hypothesis import strategies as st
from support import (
    affiliation,
    convention,
    cotisation,
    envelope,
    key_of,
    nir,
    organisme,
    paiement,
)
from test_decision_state import (
    CUTS,
    PEOPLE,
    SETTINGS,
    _assert_replays,
    _assert_state_refolds,
    _records,
    benefits_input,
    collection_input,
    registry_fact,
)

from services.adapters.eventstore.memory import MemoryEventStore
from services.adapters.runtime.handler import BatchHandler, record_rejection_id
from services.adapters.runtime.reviser import Reviser
from services.adapters.runtime.sharded import ShardedHandler
from services.adapters.runtime.shards import ABOUT_ORGANISMS, shard_of, shard_of_key
from services.domain.catalog import BENEFITS, COLLECTION, ServiceDescription
from services.domain.kernel.processing import REJECTION, decision_id
from services.domain.kernel.tasks import TASK_EVENT_TYPES
from services.tools.audit.feed import FakeRecord

pytestmark = pytest.mark.unit

SHARDS = 3
assert len({shard_of(p, SHARDS) for p in PEOPLE}) > 1  # the people span several shards

Fact = tuple[str, dict[str, Any]]


def _shards(count: int = SHARDS) -> list[MemoryEventStore]:
    """A store in shards, in memory: claims shared, each shard's decision ids its own."""
    held: dict[str, int] = {}
    shards = [MemoryEventStore(f"s{k}", claims=(held, k)) for k in range(count)]
    for k, store in enumerate(shards):
        store.space = (f"s{k}", 1)  # as `mandat migrate` records it
    return shards


def _handler(service: ServiceDescription, store: MemoryEventStore) -> BatchHandler:
    return BatchHandler(store, lambda view=None: service.new_processor(view=view), service.inputs)


def _by_shard(records: list[FakeRecord]) -> list[FakeRecord]:
    """The batch as the shards take it: each shard's records in their order, shard by shard
    (records of different people are in no order: on Kafka, they are on different
    partitions; this is one of the orders the shards may record them in)."""
    return sorted(records, key=lambda r: shard_of_key(r.key or b"", SHARDS))


async def _decide(
    handler: BatchHandler | ShardedHandler,
    revisers: list[Reviser],
    records: list[FakeRecord],
    cuts: list[int],
) -> None:
    start = 0
    for size in [*cuts, len(records)]:
        if start < len(records):
            batch = records[start : start + size]
            await handler.handle(batch if isinstance(handler, ShardedHandler) else _by_shard(batch))
            start += size
    for reviser in revisers:
        while await reviser.step() is not None:
            pass


async def _one_and_sharded(
    service: ServiceDescription, registry: list[Fact], inputs: list[Fact], cuts: list[int]
) -> tuple[MemoryEventStore, list[MemoryEventStore], list[FakeRecord]]:
    records = _records(service, [*registry, *inputs])
    one = MemoryEventStore()
    single = _handler(service, one)
    await single.catch_up()
    shards = _shards()
    handlers = [_handler(service, store) for store in shards]
    for each in handlers:
        await each.catch_up()
    sharded = ShardedHandler(handlers)
    runs: list[tuple[BatchHandler | ShardedHandler, list[Reviser]]] = [
        (single, [Reviser(single)]),
        (sharded, [Reviser(h) for h in handlers]),
    ]
    for handler, revisers in runs:
        await _decide(handler, revisers, records[: len(registry)], [])  # the registry first
        await _decide(handler, revisers, records[len(registry) :], cuts)
    return one, shards, records


def _decisions(stores: list[MemoryEventStore], inputs: set[Any]) -> set[tuple[Any, ...]]:
    return {
        (e.event_id, e.event_type, repr(sorted(e.payload.items())))
        for store in stores
        for e in store.events
        if e.event_id not in inputs
        and e.event_type != REJECTION
        and e.event_type not in TASK_EVENT_TYPES
        and e.event_type not in ABOUT_ORGANISMS
    }


async def _decides_as_one_store(
    service: ServiceDescription, registry: list[Fact], inputs: list[Fact], cuts: list[int]
) -> None:
    one, shards, _ = await _one_and_sharded(service, registry, inputs, cuts)
    # each record's end: its input, its refusal (by the record's id), or nothing new; the
    # tasks of a fact are each shard's (its people's), the rest is the same events
    ours = {e.event_id for e in one.events if e.event_type not in TASK_EVENT_TYPES}
    theirs = {e.event_id for s in shards for e in s.events if e.event_type not in TASK_EVENT_TYPES}
    assert ours == theirs
    refusals = [e.payload["field"] for s in shards for e in s.events if e.event_type == REJECTION]
    note(f"refused for an id: {sorted(set(refusals))}")
    note(f"shards written: {sum(1 for s in shards if len(s.events) > len(registry) * 2)}")
    inputs_ids = {e.event_id for e in one.events if "origin" in e.metadata}
    assert _decisions([one], inputs_ids) == _decisions(shards, inputs_ids)
    for k, store in enumerate(shards):
        for event in store.events:
            person = event.payload.get("nir")
            if event.event_type in ABOUT_ORGANISMS:
                assert all(event.event_id in s.by_id for s in shards)  # in every shard
            elif person is not None and event.event_type != REJECTION:
                assert shard_of(person, SHARDS) == k, event.event_type
        _assert_replays(service, store)
        await _assert_state_refolds(service, store)
    shared = ABOUT_ORGANISMS | TASK_EVENT_TYPES  # every shard's (a task: its people's)
    ids = [e.event_id for s in shards for e in s.events if e.event_type not in shared]
    assert len(ids) == len(set(ids))  # nothing else recorded in two shards


@SETTINGS
@given(
    registry=st.lists(registry_fact, max_size=12),
    inputs=st.lists(collection_input, max_size=25),
    cuts=CUTS,
)
async def test_collection_in_shards_decides_as_in_one_store(
    registry: list[Fact], inputs: list[Fact], cuts: list[int]
) -> None:
    await _decides_as_one_store(COLLECTION, registry, inputs, cuts)


@SETTINGS
@given(
    registry=st.lists(registry_fact, max_size=12),
    inputs=st.lists(benefits_input, max_size=25),
    cuts=CUTS,
)
async def test_benefits_in_shards_decides_as_in_one_store(
    registry: list[Fact], inputs: list[Fact], cuts: list[int]
) -> None:
    await _decides_as_one_store(BENEFITS, registry, inputs, cuts)


REGISTRY = [organisme("OC-A"), convention("C1", "OC-A"), *(affiliation(p, "OC-A") for p in PEOPLE)]
A, B = PEOPLE[0], next(p for p in PEOPLE if shard_of(p, SHARDS) != shard_of(PEOPLE[0], SHARDS))


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (cotisation("K1", B), "payload.cotisation_id"),  # another person's contribution id
        (paiement("P1", "K1", B, 100), "payload.nir"),  # a payment on another's contribution
    ],
    ids=["contribution id", "payment's person"],
)
async def test_an_id_held_in_another_shard_is_refused_as_in_one_store(
    second: Fact, field: str
) -> None:
    one, shards, _ = await _one_and_sharded(COLLECTION, REGISTRY, [cotisation("K1", A), second], [])
    refused = [e for s in shards for e in s.events if e.event_type == REJECTION]
    assert [e.payload["field"] for e in refused] == [field]
    assert [e.payload["field"] for e in one.events if e.event_type == REJECTION] == [field]
    assert refused[0].event_id in shards[shard_of(B, SHARDS)].by_id  # where its person is


async def test_a_fact_about_organisms_the_first_shard_refuses_is_refused_once() -> None:
    """A fact about organisms sent again under its event id with other content: refused by
    the first shard, and by no other (each would refuse it too: one refusal, one message on
    the rejection topic); the first one recorded in every shard."""
    topic = next(t for t, types in COLLECTION.inputs.items() if "OrganismeDeclare" in types)
    fact_id = str(uuid.uuid4())
    records = [
        FakeRecord(topic, 0, offset, oid.encode(), envelope(*organisme(oid), event_id=fact_id))
        for offset, oid in enumerate(["OC-A", "OC-B"])
    ]
    shards = _shards()
    report = await ShardedHandler([_handler(COLLECTION, store) for store in shards]).handle(records)
    assert report.rejected == {"event_id": 1} and report.inputs == {"OrganismeDeclare": 1}
    assert report.refused == {1}
    for store in shards:
        kinds = [e.event_type for e in store.events]
        assert kinds == ["OrganismeDeclare", *([REJECTION] if store is shards[0] else [])]


async def test_what_a_fact_about_organisms_causes_has_ids_of_each_shard() -> None:
    """A termination recorded in every shard revises each shard's people in steps: every
    revision (and every step) has an id of its own, none another shard's, as many
    revisions as one store records."""
    people = [nir(n) for n in range(40)]
    registry = [organisme("OC-K"), convention("CNV-K", "OC-K")]
    registry += [affiliation(p, "OC-K") for p in people]
    dues = [cotisation(f"K{n}", p) for n, p in enumerate(people)]
    ended = ("ConventionResiliee", {"convention_id": "CNV-K", "effet_au": "2016-12-31"})
    one, shards, _ = await _one_and_sharded(COLLECTION, registry, [*dues, ended], [len(dues)])
    revised = [e for s in shards for e in s.events if e.event_type == "EncaissementRevise"]
    steps = [e for s in shards for e in s.events if e.event_type == "EtapeDeRevision"]
    assert (
        len(revised) == len(people) == sum(e.event_type == "EncaissementRevise" for e in one.events)
    )
    assert len({e.event_id for e in revised}) == len(revised)
    assert (
        len({e.event_id for e in steps}) == len(steps) >= len({shard_of(p, SHARDS) for p in people})
    )


def _record(offset: int, fact: Fact, event_id: str | None = None) -> FakeRecord:
    topic = next(t for t, types in COLLECTION.inputs.items() if fact[0] in types)
    value = envelope(fact[0], fact[1], event_id=event_id)
    return FakeRecord(topic, 0, offset, key_of(fact[1]), value)


async def _sharded_collection() -> tuple[list[MemoryEventStore], ShardedHandler, list[str]]:
    """Three shards with an organism and a person affiliated in each of shards 1 and 2."""
    shards = _shards()
    handlers = [_handler(COLLECTION, store) for store in shards]
    for each in handlers:
        await each.catch_up()
    sharded = ShardedHandler(handlers)
    people = [next(nir(n) for n in range(99) if shard_of(nir(n), SHARDS) == k) for k in (1, 2)]
    registry = [organisme("OC-A"), *(affiliation(p, "OC-A") for p in people)]
    await sharded.handle([_record(k, fact) for k, fact in enumerate(registry)])
    return shards, sharded, people


def _holding(shards: list[MemoryEventStore], event_id: str) -> list[int]:
    return [k for k, s in enumerate(shards) if any(str(e.event_id) == event_id for e in s.events)]


async def test_a_fact_and_an_input_under_one_id_in_one_batch_leave_the_shards_agreeing() -> None:
    shards, sharded, (a, _) = await _sharded_collection()
    same = str(uuid.uuid4())
    await sharded.handle(
        [_record(10, cotisation("K1", a), same), _record(11, convention("C1", "OC-A"), same)]
    )
    recorded = [any(e.event_type == "ConventionConclue" for e in s.events) for s in shards]
    assert recorded in ([True] * SHARDS, [False] * SHARDS)
    assert len(_holding(shards, same)) in (1, SHARDS)  # the input, or the fact everywhere


@pytest.mark.parametrize("fact", [True, False], ids=["a fact about organisms", "an input"])
async def test_an_input_under_the_id_of_another_shards_decision_is_refused(fact: bool) -> None:
    """As within one store: the id is taken (by a decision), whichever shard took it."""
    shards, sharded, (a, b) = await _sharded_collection()
    await sharded.handle([_record(10, cotisation("K1", a))])
    taken = next(e for e in shards[1].events if e.event_type == "EncaissementNonDelegue")
    late = convention("C1", "OC-A") if fact else cotisation("K2", b)
    report = await sharded.handle([_record(11, late, str(taken.event_id))])
    assert report.rejected == {"event_id": 1}
    assert _holding(shards, str(taken.event_id)) == [1]
    assert not any(e.event_type == late[0] for s in shards for e in s.events if s is not shards[1])


async def test_a_decision_whose_id_another_shard_holds_isolates_its_input() -> None:
    """An upstream sends, in one person's shard, an input under the id another person's
    input's decision will take: that input is rejected (processing_error), as within one
    store, and the decision is never recorded twice."""
    shards, sharded, (a, b) = await _sharded_collection()
    trigger = str(uuid.uuid4())
    predicted = str(decision_id(uuid.UUID(trigger), 1, "collection"))
    await sharded.handle([_record(10, cotisation("K2", b), predicted)])  # in b's shard
    report = await sharded.handle([_record(11, cotisation("K1", a), trigger)])
    assert report.rejected == {"processing_error": 1}
    assert _holding(shards, predicted) == [shard_of(b, SHARDS)]


async def test_a_record_another_shard_refused_is_not_refused_again() -> None:
    """Its refusal's id is claimed where it was recorded: a shard that meets the record
    again (a fact every shard records, refused in two) counts it as refused already,
    rather than minting a second refusal under the same id."""
    shards, sharded, (a, _) = await _sharded_collection()
    topic = next(t for t, types in COLLECTION.inputs.items() if "CotisationDue" in types)
    record = FakeRecord(topic, 0, 50, a.encode(), b"not json")
    elsewhere = (shard_of(a, SHARDS) + 1) % SHARDS
    held = shards[0].claims
    assert held is not None
    held[0][f"e:{record_rejection_id('collection', record)}"] = elsewhere
    report = await asyncio.wait_for(sharded.handle([record]), 10)  # (not: refused forever)
    assert report.duplicates == 1 and report.rejected == {} and report.refused == {0}
