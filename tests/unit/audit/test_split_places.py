"""Where `mandat store split` puts each event of a store of one sequence, and what it claims:
as the runtime in shards would have (services/adapters/runtime/shards.py, sharded.py), read
off the copies it prepares (no database: the store is the in-memory one)."""

from __future__ import annotations

import base64
import uuid
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support import affiliation, convention, cotisation, envelope, key_of, nir, organisme, paiement

from services.adapters.eventstore import StoredEvent
from services.adapters.eventstore.memory import MemoryEventStore
from services.adapters.runtime.handler import BatchHandler
from services.adapters.runtime.shards import ABOUT_ORGANISMS, shard_of, shard_of_key
from services.domain.catalog import COLLECTION
from services.domain.kernel.processing import REJECTION
from services.tools.audit.feed import FakeRecord
from services.tools.audit.split import ShardCopy, Splitter, rejection_place

SHARDS = 3
NO_KEY = object()


def _topic(kind: str) -> str:
    return next(t for t, types in COLLECTION.inputs.items() if kind in types)


def _record(
    offset: int,
    kind: str,
    payload: dict[str, Any],
    *,
    topic: str | None = None,
    event_id: str | None = None,
    value: bytes | None = None,
) -> FakeRecord:
    raw = envelope(kind, payload, event_id=event_id) if value is None else value
    return FakeRecord(topic or _topic(kind), 0, offset, key_of(payload), raw)


async def _one_store(records: list[FakeRecord]) -> list[StoredEvent]:
    store = MemoryEventStore()
    handler = BatchHandler(
        store, lambda view=None: COLLECTION.new_processor(view=view), COLLECTION.inputs
    )
    await handler.catch_up()
    for record in records:
        await handler.handle([record])
    return list(store.events)


def _split(events: list[StoredEvent]) -> tuple[list[ShardCopy], Splitter]:
    copies = [ShardCopy(k, f"x_s{k}") for k in range(SHARDS)]
    splitter = Splitter(COLLECTION.name, copies, {}, {})
    for event in events:
        splitter.take(event)
    return copies, splitter


def _held(copy: ShardCopy) -> list[tuple[str, int, str, uuid.UUID]]:
    """(stream, version, type, id) of each row the shard would hold, in its order."""
    return [(r[1], r[2], r[4], r[3]) for r in copy.rows]


def _people() -> tuple[str, str]:
    people = [nir(n) for n in range(60)]
    a = next(p for p in people if shard_of(p, SHARDS) == 1)
    b = next(p for p in people if shard_of(p, SHARDS) == 2)
    return a, b


async def test_a_payment_parked_on_another_persons_contribution_splits() -> None:
    """A payment for B parked on K1 (not yet due), then K1 due for A: stream `cotisation-K1`
    is in B's shard (the payment, its parking) and in A's (the contribution, its decision),
    each part numbered from 1 there, as each shard's fold numbers it."""
    a, b = _people()
    facts = [
        organisme("OC-A"),
        convention("C1", "OC-A"),
        affiliation(a, "OC-A"),
        affiliation(b, "OC-A"),
        paiement("P1", "K1", b, 100),
        cotisation("K1", a),
    ]
    events = await _one_store([_record(i, *f) for i, f in enumerate(facts)])
    copies, splitter = _split(events)
    in_k1 = {k: [h for h in _held(c) if h[0] == "cotisation-K1"] for k, c in enumerate(copies)}
    assert [(v, t) for _, v, t, _ in in_k1[2]] == [(1, "PaiementRecu"), (2, "DecisionEnAttente")]
    assert [(v, t) for _, v, t, _ in in_k1[1]] == [(1, "CotisationDue"), (2, "EncaissementDelegue")]
    assert in_k1[0] == []
    for copy in copies:  # every stream of a shard numbered 1, 2, ... there
        versions: dict[str, list[int]] = {}
        for stream, version, _, _ in _held(copy):
            versions.setdefault(stream, []).append(version)
        assert all(v == list(range(1, len(v) + 1)) for v in versions.values())

    # the claims: every event's id, for the shard holding it (a fact about organisms: the
    # first shard), and the inputs' business ids, for their person's shard
    held = {event_id: k for k, c in enumerate(copies) for _, _, _, event_id in _held(c)}
    for event in events:
        expected = 0 if event.event_type in ABOUT_ORGANISMS else held[event.event_id]
        assert splitter.claims[f"e:{event.event_id}"] == expected, event.event_type
    assert splitter.claims["c:K1"] == 1 and splitter.claims["y:P1"] == 2
    assert len(splitter.claims) == len(events) + 2


def _organism_keyed_off_shard_0() -> str:
    return next(
        oid for oid in (f"OC-{n}" for n in range(100)) if shard_of_key(oid.encode(), SHARDS) != 0
    )


async def test_a_fact_about_organisms_refused_by_the_rules_is_in_the_first_shard() -> None:
    """The runtime decides a fact about organisms in the first shard first: what it refuses
    is refused there. A record the contract refused goes by its Kafka key -- a fact about
    organisms sent on a topic that does not carry it included."""
    oid = _organism_keyed_off_shard_0()
    by_key = shard_of_key(oid.encode(), SHARDS)
    declared = organisme(oid)
    same_id = str(uuid.uuid4())
    other = ("OrganismeDeclare", {**declared[1], "nom": "another name"})
    wrong_topic = _topic("CotisationDue")
    assert wrong_topic != _topic("OrganismeDeclare")
    records = [
        _record(0, *declared, event_id=same_id),
        _record(1, *other, event_id=same_id),  # refused by the rules: other content
        _record(2, *declared, value=b"{not json"),  # refused by the contract
        _record(3, *organisme(oid), topic=wrong_topic),  # not a type of that topic
    ]
    events = await _one_store(records)
    rejections = [e for e in events if e.event_type == REJECTION]
    assert [e.payload["offset"] for e in rejections] == [1, 2, 3]
    copies, _ = _split(events)
    placed = {
        event_id: k
        for k, c in enumerate(copies)
        for _, _, kind, event_id in _held(c)
        if kind == REJECTION
    }
    assert [placed[e.event_id] for e in rejections] == [0, by_key, by_key]
    # the rejections' stream numbered in each shard
    for copy in copies:
        mine = [v for stream, v, kind, _ in _held(copy) if kind == REJECTION]
        assert mine == list(range(1, len(mine) + 1))


async def test_a_rejection_kept_by_reference_goes_by_its_partition() -> None:
    """A record too large or undecodable is kept by reference (no key, no value): it cannot
    be read again; the split places it by its partition."""
    a, _ = _people()
    events = await _one_store([_record(0, *organisme("OC-A")), _record(1, *affiliation(a, "OC-A"))])
    kept = events[-1]
    payload = {"kind": "contract", "topic": "t", "partition": 5, "offset": 9, "key": None}
    payload |= {"value": None, "headers": [], "digest": "00"}
    rejection = replace(
        kept,
        position=kept.position + 1,
        stream_id="rejets",
        stream_version=1,
        event_id=uuid.uuid4(),
        event_type=REJECTION,
        payload=payload,
        metadata={},
    )
    copies, _ = _split([*events, rejection])
    where = [k for k, c in enumerate(copies) for h in _held(c) if h[3] == rejection.event_id]
    assert where == [5 % SHARDS]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = st.sampled_from(["key", "value", "headers", "topic", "partition", "kind", "field"])


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        _FIELDS, _JSON | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode())
    )
)
def test_any_rejection_payload_has_a_shard(payload: dict[str, Any]) -> None:
    """Whatever a rejection's payload holds, the split places it in a shard (never stops)."""
    assert 0 <= rejection_place(payload, SHARDS, COLLECTION.inputs) < SHARDS
