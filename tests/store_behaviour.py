"""The behaviour every event store keeps (`services/adapters/eventstore/port.py`), as test
functions on a `store` fixture. Run against the in-memory store by
tests/unit/eventstore/test_memory_store.py and against PostgreSQL by
tests/integration/test_store_behaviour.py (each imports them all): one suite, two stores.

The fixture's store must be empty and use `clock` below, so that chain hashes can be
compared with ones computed here, independently of either store.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.adapters.eventstore import (
    ConcurrencyError,
    DuplicateEventError,
    NewEvent,
    StoreError,
)
from services.adapters.eventstore.port import Store
from services.domain.kernel.records import (
    GENESIS_HASH,
    canonical_bytes,
    chain_hash,
    expected_hash,
)
from services.domain.kernel.tasks import Starts
from services.domain.state import Change, Demand, Entry

T0 = datetime(2017, 3, 1, 8, 0, tzinfo=UTC)


def stepping_clock() -> Callable[[], datetime]:
    """A clock that moves one millisecond at each reading, from T0."""
    ticks = itertools.count()
    return lambda: T0 + timedelta(milliseconds=next(ticks))


def event(
    event_type: str = "CotisationDue", event_id: UUID | None = None, **payload: Any
) -> NewEvent:
    return NewEvent(
        event_id=event_id or uuid4(),
        event_type=event_type,
        payload=payload or {"montant_cents": 12_345},
        metadata={"correlation_id": "corr-1", "service": "collection"},
    )


async def append(store: Store, stream_id: str, events: Sequence[NewEvent]) -> list[int]:
    """Append `events` after the stream's current version, in one transaction."""
    async with store.transaction() as tx:
        version = await tx.stream_version(stream_id)
        return [tx.append_at(stream_id, version + i, e) for i, e in enumerate(events, 1)]


async def positions(store: Store) -> list[int]:
    return [e.position for e in await store.read_all(0, 100_000)]


# --- appending and reading -----------------------------------------------------------------


async def test_appended_events_are_read_back_in_order_with_their_content(store: Store) -> None:
    first = [event(montant_cents=100, libellé="Été"), event("PaiementRecu", montant_cents=40)]
    assert await append(store, "cotisation-A", first) == [1, 2]
    assert await append(store, "cotisation-B", [event(montant_cents=7)]) == [3]
    assert await append(store, "cotisation-A", [event("CotisationImpayee", reste=60)]) == [4]

    stream = await store.read_stream("cotisation-A")
    assert [e.stream_version for e in stream] == [1, 2, 3]
    assert [e.position for e in stream] == [1, 2, 4]
    assert [e.event_type for e in stream] == ["CotisationDue", "PaiementRecu", "CotisationImpayee"]
    assert stream[0].event_id == first[0].event_id
    assert stream[0].payload == {"montant_cents": 100, "libellé": "Été"}
    assert stream[0].metadata == first[0].metadata
    assert stream[0].schema_version == 1
    assert stream[0].recorded_at == T0 and stream[0].recorded_at.utcoffset() == timedelta(0)
    assert [e.event_type for e in await store.read_stream("cotisation-A", 2)] == [
        "CotisationImpayee"
    ]
    assert await store.read_stream("cotisation-unknown") == []
    assert await store.head() == 4
    assert await store.ping()


async def test_a_transaction_counts_its_own_appends_and_reads_what_is_committed(
    store: Store,
) -> None:
    stored = event()
    await append(store, "s", [stored])
    async with store.transaction() as tx:
        assert tx.head_position == 1
        assert await tx.stream_version("s") == 1 and await tx.stream_version("t") == 0
        assert tx.append_at("s", 2, event()) == 2
        assert tx.append_at("t", 1, event()) == 3
        assert tx.head_position == 3
        assert await tx.stream_version("s") == 2 and await tx.stream_version("t") == 1
        assert [e.position for e in await tx.read_since(0)] == [1]  # its own: not yet
        found = await tx.stored_events([stored.event_id, uuid4()])
        assert list(found) == [stored.event_id] and found[stored.event_id].position == 1
        assert await store.head() == 1  # nor for anyone else
    assert await store.head() == 3
    assert [e.stream_id for e in await store.read_all()] == ["s", "s", "t"]


async def test_reads_by_position_windows(store: Store) -> None:
    for i in range(5):  # interleave streams so global order differs from stream order
        await append(store, f"s-{i % 2}", [event(i=i, j=j) for j in range(5)])

    everything = [e async for e in store.iter_all(batch=7)]
    assert [e.position for e in everything] == list(range(1, 26))
    assert [(e.payload["i"], e.payload["j"]) for e in everything] == [
        (i, j) for i in range(5) for j in range(5)
    ]
    assert [e.position for e in await store.read_all(10, 4)] == [11, 12, 13, 14]
    assert [e.position async for e in store.iter_all(20, batch=2)] == [21, 22, 23, 24, 25]
    assert [e.position async for e in store.iter_all(3, batch=4, until=9)] == list(range(4, 10))
    assert [e.position async for e in store.iter_all(25, batch=5)] == []
    async with store.transaction() as tx:
        assert [e.position for e in await tx.read_since(22)] == [23, 24, 25]
        assert [e.position for e in await tx.read_since(5, 2)] == [6, 7]


async def test_read_types_says_how_far_its_answer_is_complete(store: Store) -> None:
    await append(store, "a", [event("X"), event("Y"), event("X"), event("Z"), event("Y")])

    found, complete = await store.read_types(0, ["Y"], limit=10)
    assert ([e.position for e in found], complete) == ([2, 5], 5)
    found, complete = await store.read_types(0, ["X", "Y"], limit=2)
    assert ([e.position for e in found], complete) == ([1, 2], 2)
    assert await store.read_types(5, ["X"]) == ([], 5)
    assert await store.read_types(9, ["X"]) == ([], 9)  # never behind where it was asked


async def test_chain_hashes_and_hashes_by_position(store: Store) -> None:
    await append(store, "a", [event(n=n) for n in range(6)])
    stored = await store.read_all()

    assert await store.chain_hashes(1, 4, 10) == [(e.position, e.hash) for e in stored[1:4]]
    assert await store.chain_hashes(0, 6, 2) == [(1, stored[0].hash), (2, stored[1].hash)]
    assert await store.chain_hashes(6, 9, 10) == []
    assert await store.hash_at(3) == stored[2].hash
    assert await store.hash_at(7) is None and await store.hash_at(0) is None
    assert await store.hashes_at([0, 2, 6, 8]) == {2: stored[1].hash, 6: stored[5].hash}


# --- the hash chain ------------------------------------------------------------------------


def _chained(rows: Sequence[tuple[str, int, NewEvent]]) -> list[bytes]:
    """The chain hashes of `rows` (stream, version, event) written at positions 1, 2, ...
    at the times of a fresh `stepping_clock`, computed without any store."""
    clock, previous, hashes = stepping_clock(), GENESIS_HASH, []
    for position, (stream_id, version, e) in enumerate(rows, 1):
        previous = chain_hash(
            previous,
            position=position,
            stream_id=stream_id,
            stream_version=version,
            event_id=e.event_id,
            event_type=e.event_type,
            schema_version=e.schema_version,
            payload_json=canonical_bytes(e.payload),
            metadata_json=canonical_bytes(e.metadata),
            recorded_at=clock(),
        )
        hashes.append(previous)
    return hashes


GOLDEN = NewEvent(
    UUID("9d0f6a3e-2b1c-4e5d-8f7a-6b5c4d3e2f10"),
    "CotisationDue",
    {"montant_cents": 195_000, "libellé": "Été", "b": [1, 2.5, None, True]},
    {"correlation_id": "c-1"},
)
GOLDEN_HASH = "af9002d8b3931ed5771063159b69cae436f68aa2b5cf4b965946393ffcb7006f"
"""Its chain hash at position 1, stream "a" version 1, at T0: computed once, kept."""


async def test_each_row_is_chained_to_the_one_before_as_chain_hash_says(store: Store) -> None:
    rows = [("a", 1, GOLDEN), ("b", 1, event(n=1)), ("a", 2, event("Y", x="é"))]
    await append(store, "a", [GOLDEN])
    async with store.transaction() as tx:
        tx.append_at("b", 1, rows[1][2])
        tx.append_at("a", 2, rows[2][2])

    stored = await store.read_all()
    assert [e.hash for e in stored] == _chained(rows)
    assert stored[0].hash.hex() == GOLDEN_HASH  # the chain itself has not changed
    report = await store.verify_chain(batch=2)
    assert (report.checked, report.first_broken, report.ok) == (3, None, True)


async def test_verify_chain_accepts_an_empty_store(store: Store) -> None:
    report = await store.verify_chain()
    assert (report.checked, report.first_broken, report.ok) == (0, None, True)


# --- refusals: all or nothing --------------------------------------------------------------


async def test_a_stream_version_taken_is_refused_at_commit_and_nothing_is_written(
    store: Store,
) -> None:
    await append(store, "cotisation-A", [event(), event()])

    for taken in (1, 2):
        with pytest.raises(ConcurrencyError):
            async with store.transaction() as tx:
                tx.append_at("cotisation-B", 1, event())
                tx.append_at("cotisation-A", taken, event())
    with pytest.raises(ConcurrencyError):  # twice in one transaction
        async with store.transaction() as tx:
            tx.append_at("cotisation-C", 1, event())
            tx.append_at("cotisation-C", 1, event())

    assert await positions(store) == [1, 2]
    assert await store.read_stream("cotisation-B") == []
    assert await append(store, "cotisation-B", [event()]) == [3]  # no position was lost


async def test_an_event_id_is_stored_once_forever(store: Store) -> None:
    stored = event()
    await append(store, "cotisation-A", [stored])

    with pytest.raises(DuplicateEventError):  # the same event again
        async with store.transaction() as tx:
            tx.append_at("cotisation-A", 2, stored)
    with pytest.raises(DuplicateEventError):  # its id, under other content and stream
        async with store.transaction() as tx:
            tx.append_at("cotisation-B", 1, event())
            tx.append_at("cotisation-C", 1, event("Other", event_id=stored.event_id, n=2))
    twin = event()
    with pytest.raises(DuplicateEventError):  # twice in one transaction
        async with store.transaction() as tx:
            tx.append_at("cotisation-D", 1, twin)
            tx.append_at("cotisation-E", 1, twin)

    assert await positions(store) == [1]
    assert (await store.read_all())[0].payload == stored.payload


async def test_an_error_inside_a_transaction_writes_nothing_and_the_chain_goes_on(
    store: Store,
) -> None:
    await append(store, "a", [event()])

    with pytest.raises(ZeroDivisionError):
        async with store.transaction() as tx:
            tx.append_at("a", 2, event())
            tx.append_at("b", 1, event())
            raise ZeroDivisionError

    assert await positions(store) == [1]
    assert await append(store, "b", [event()]) == [2]
    assert (await store.verify_chain()).ok


async def test_a_nul_character_in_text_is_refused_at_commit(store: Store) -> None:
    """PostgreSQL refuses it in text and jsonb; a record can carry one."""
    await append(store, "a", [event()])
    in_key = NewEvent(uuid4(), "CotisationDue", {"k\x00": 1})
    for bad in (event(note="a\x00b"), in_key):
        with pytest.raises((StoreError, asyncpg.DataError)):  # each store says it its way
            async with store.transaction() as tx:
                tx.append_at("b", 1, event())
                tx.append_at("c", 1, bad)
    assert await positions(store) == [1]
    assert await append(store, "b", [event(note="a\\u0000b")]) == [2]  # the text, escaped


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(codec="utf-8", exclude_characters="\x00")),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k), _json))
async def test_any_json_payload_is_kept_and_chained(store: Store, payload: dict[str, Any]) -> None:
    """Whatever JSON a record holds comes back equal, and its row hashes as its content."""
    head = await store.head()
    new = NewEvent(uuid4(), "Anything", payload, {"n": head})
    async with store.transaction() as tx:
        position = tx.append_at(f"h-{head}", 1, new)
    (back,) = await store.read_all(position - 1, 1)
    assert back.payload == payload and back.event_id == new.event_id
    previous = await store.hash_at(position - 1) if position > 1 else GENESIS_HASH
    assert previous is not None and expected_hash(previous, back) == back.hash


# --- serialised writers --------------------------------------------------------------------


async def test_of_two_transactions_taking_the_same_version_exactly_one_commits(
    store: Store,
) -> None:
    async def take(by: str) -> None:
        async with store.transaction() as tx:
            await asyncio.sleep(0)
            version = await tx.stream_version("s")
            await asyncio.sleep(0)
            tx.append_at("s", version + 1, event(by=by))

    await asyncio.gather(take("first"), take("second"))  # serialised: both see the first

    assert [e.stream_version for e in await store.read_stream("s")] == [1, 2]


async def test_of_two_transactions_appending_the_same_version_blind_exactly_one_commits(
    store: Store,
) -> None:
    async def blind(by: str) -> None:
        async with store.transaction() as tx:
            await asyncio.sleep(0)
            tx.append_at("s", 1, event(by=by))

    outcomes = await asyncio.gather(blind("first"), blind("second"), return_exceptions=True)

    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], ConcurrencyError), outcomes
    assert [e.payload["by"] for e in await store.read_stream("s")] == ["first"]
    assert await store.head() == 1


async def test_concurrent_writers_take_every_position_once_with_no_gap(store: Store) -> None:
    async def writer(w: int) -> list[int]:
        taken: list[int] = []
        for n in range(10):
            taken += await append(store, f"w-{w}", [event(w=w, n=n)])
            await asyncio.sleep(0)
        return taken

    taken = await asyncio.wait_for(asyncio.gather(*(writer(w) for w in range(8))), 30)

    assert sorted(p for t in taken for p in t) == list(range(1, 81))
    for w, mine in enumerate(taken):
        assert mine == sorted(mine)
        assert [e.payload["n"] for e in await store.read_stream(f"w-{w}")] == list(range(10))
    assert (await store.verify_chain()).ok


# --- decision state ----------------------------------------------------------------------------


async def _load(store: Store, demand: Demand) -> dict[tuple[str, str], Entry]:
    async with store.transaction() as tx:
        return {(r.kind, r.key): r.entry for r in await tx.load_state(demand)}


async def test_state_entries_are_found_by_key_by_tag_and_by_tag_prefix(store: Store) -> None:
    entries = {
        ("parked", "e1"): Entry({"n": 1}, "nir/A", 3),
        ("parked", "e2"): Entry({"n": 2}, "nir/B", 1),
        ("parked", "e3"): Entry({"n": 3}, "cotisation/C", 2),
        ("parked", "e4"): Entry({"n": 4}, "nir0", 4),  # just past the prefix "nir/"
        ("contribution", "C"): Entry({"due": {"x": ["é", 1]}, "paid_cents": 2**62}),
        ("affiliations", "A"): Entry([{"organisme_id": "OC"}]),
    }
    async with store.transaction() as tx:
        assert await tx.state_position() == 0
        await tx.save_state([Change(k, key, e) for (k, key), e in entries.items()], 0)

    by_key = Demand()
    by_key.key("contribution", "C")
    by_key.key("affiliations", "A")
    by_key.key("contribution", "absent")
    by_key.key("parked", "C")  # a key of another kind
    assert await _load(store, by_key) == {
        k: entries[k] for k in [("contribution", "C"), ("affiliations", "A")]
    }
    by_tag = Demand()
    by_tag.tag("parked", "nir/A")
    by_tag.tag("parked", "cotisation/C")
    assert set(await _load(store, by_tag)) == {("parked", "e1"), ("parked", "e3")}
    by_prefix = Demand()
    by_prefix.prefix("parked", "nir/")
    found = await _load(store, by_prefix)
    assert found == {k: entries[k] for k in [("parked", "e1"), ("parked", "e2")]}


async def test_state_tags_at_the_edges_of_unicode_are_found_exactly(store: Store) -> None:
    """Tags ending in the last code point, or just before the surrogates, can be looked up
    by tag and by prefix like any other (an id in a record may hold any character)."""
    tags = ["x\U0010ffff", "x\U0010ffffy", "x\ud7ff", "x\ud7ffz", "x\ue000", "OC-1", "OC-10"]
    async with store.transaction() as tx:
        await tx.save_state(
            [Change("t", str(n), Entry({"n": n}, tag)) for n, tag in enumerate(tags)], 0
        )
    for prefix, wanted in (
        ("x\U0010ffff", {0, 1}),
        ("x\ud7ff", {2, 3}),
        ("OC-1", {5, 6}),
        ("\U0010ffff", set()),
    ):
        found = await _load(store, Demand(prefixes={"t": {prefix}}))
        assert {e.doc["n"] for e in found.values()} == wanted, prefix  # type: ignore[call-overload]
    exact = await _load(store, Demand(tags={"t": {"OC-1"}}))
    assert list(exact) == [("t", "5")]


async def test_a_span_of_a_tag_is_read_in_code_point_order_after_a_key(store: Store) -> None:
    """The people of one organism, a step at a time (`PairIndex.following`): keys `tag +
    person` after `tag + after`, in code point order (not the locale's), up to `limit`; never
    another tag's, even one the tag is a prefix of."""
    people = ["B", "a", "\u00e9", "\U0010ffff", "A", "b\x01", "Z"]
    pairs = [Change("affiliated", "OC-1" + p, Entry(["OC-1", p], "OC-1")) for p in people]
    pairs.append(Change("affiliated", "OC-10A", Entry(["OC-10", "A"], "OC-10")))
    async with store.transaction() as tx:
        await tx.save_state(pairs, 0)
    ordered = sorted(people)
    async with store.transaction() as tx:
        assert [r.entry.doc for r in await tx.state_span("affiliated", "OC-1", "", 3)] == [
            ["OC-1", p] for p in ordered[:3]
        ]
        after = await tx.state_span("affiliated", "OC-1", ordered[2], 100)
        assert [r.key for r in after] == ["OC-1" + p for p in ordered[3:]]
        assert await tx.state_span("affiliated", "OC-1", ordered[-1], 5) == []
        assert await tx.state_span("affiliated", "OC-2", "", 5) == []
        firsts = await tx.state_firsts("affiliated", ["OC-2", "OC-10", "OC-1"])
        assert {r.key for r in firsts} == {"OC-1" + ordered[0], "OC-10A"}  # none for OC-2


async def test_state_changes_are_committed_with_the_appends_or_not_at_all(store: Store) -> None:
    async with store.transaction() as tx:
        tx.append_at("s", 1, event())
        await tx.save_state([Change("k", "a", Entry({"v": 1}))], tx.head_position)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            tx.append_at("s", 2, event())
            await tx.save_state(
                [Change("k", "a", Entry({"v": 2})), Change("k", "b", Entry({"v": 3}))], 2
            )
            raise RuntimeError("the batch fails")
    wanted = Demand(keys={"k": {"a", "b"}})
    assert await _load(store, wanted) == {("k", "a"): Entry({"v": 1})}
    async with store.transaction() as tx:
        assert await tx.state_position() == 1
        assert (await tx.state_anchor())[:2] == (1, True)  # the event folded up to is there
        await tx.save_state([Change("k", "a", None), Change("k", "b", Entry({"v": 4}, "t", 7))], 1)
    assert await _load(store, wanted) == {("k", "b"): Entry({"v": 4}, "t", 7)}
    async with store.transaction() as tx:
        await tx.reset_state()
        assert await tx.state_position() == 0
    assert await _load(store, wanted) == {}


async def test_the_state_anchor_and_the_revisions_start_follow_the_transaction(
    store: Store,
) -> None:
    """Within a transaction the state's anchor is its own save (as when the state is
    folded in several chunks in one transaction); the position revisions start from is
    recorded once, and only if the transaction commits; the fold version is kept."""
    await append(store, "s", [event()])
    async with store.transaction() as tx:
        await tx.save_state([], 1)
        assert (await tx.state_anchor())[:2] == (1, True)
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            assert await tx.start_revisions() == Starts(2, 2)
            raise RuntimeError("the batch fails")
    never = await store.revisions_from()  # nothing recorded: no revision, no step yet
    assert never.revisions > 10**12 and never.steps > 10**12
    async with store.transaction() as tx:
        assert await tx.start_revisions() == Starts(2, 2)
        await tx.set_state_version(7)
    async with store.transaction() as tx:
        tx.append_at("s", 2, event())
        assert await tx.start_revisions() == Starts(2, 2)  # once, forever
        assert (await tx.state_anchor())[2] == 7
    assert await store.revisions_from() == Starts(2, 2)


async def test_stream_versions_count_the_transaction_s_own_appends(store: Store) -> None:
    await append(store, "s", [event(), event()])
    async with store.transaction() as tx:
        assert await tx.stream_versions(["s", "t"]) == {"s": 2}
        tx.append_at("t", 1, event())
        assert await tx.stream_versions(["s", "t", "u"]) == {"s": 2, "t": 1}


def all_tests() -> list[str]:
    """The names of the tests above (the importing modules check they collected each)."""
    return sorted(name for name in globals() if name.startswith("test_"))


__all__ = all_tests()
