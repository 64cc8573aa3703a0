"""The batch handler (services/adapters/runtime/handler.py) on the in-memory store: what it
does with a record sent twice, a record that breaks the contract, a record the rules crash
on, a record whose commit is refused, a dependency down for a while, and a record whose
very rejection cannot be stored. Each record ends as an input with its decisions or as a
rejection, exactly once, and the records around a bad one are decided."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from support import cotisation, envelope, nir

from contracts import topics
from services.adapters.eventstore import StoredEvent
from services.adapters.eventstore.errors import StoreError
from services.adapters.eventstore.memory import MemoryEventStore, MemoryTransaction
from services.adapters.runtime.handler import PROCESSING_ERROR, BatchHandler
from services.domain.collection.processor import CollectionProcessor
from services.domain.kernel.processing import REJECTION, Input, Outcome, decision_id
from services.tools.audit.feed import FakeRecord

pytestmark = pytest.mark.unit

TOPIC = "cotisations"
ALLOWED = {TOPIC: topics.COTISATIONS_EVENT_TYPES}


def record(offset: int, value: bytes | None, key: bytes | None = None) -> FakeRecord:
    return FakeRecord(TOPIC, 0, offset, key if key is not None else nir(offset).encode(), value)


def due(offset: int, cid: str | None = None, event_id: str | None = None, **kw: Any) -> FakeRecord:
    """A CotisationDue about person `offset`, at `offset` on the partition."""
    value = envelope(*cotisation(cid or f"COT-{offset}", nir(offset), **kw), event_id=event_id)
    return record(offset, value)


def handler_on(store: MemoryEventStore, processor: Any = CollectionProcessor) -> BatchHandler:
    return BatchHandler(store, processor, ALLOWED, backoff_max=0.05)


def inputs(store: MemoryEventStore) -> list[StoredEvent]:
    return [e for e in store.events if e.event_type == "CotisationDue"]


def rejections(store: MemoryEventStore) -> list[StoredEvent]:
    return [e for e in store.events if e.event_type == REJECTION]


def decided(store: MemoryEventStore) -> dict[str, int]:
    """How many decisions each input caused, by the input's cotisation id."""
    by_id = {str(e.event_id): e.payload["cotisation_id"] for e in inputs(store)}
    count = dict.fromkeys(by_id.values(), 0)
    for e in store.events:
        cause = e.metadata.get("causation_id")
        if e.event_type not in ("CotisationDue", REJECTION) and cause in by_id:
            count[by_id[cause]] += 1
    return count


# --- sent twice -------------------------------------------------------------------------------


async def test_the_same_event_id_with_the_same_content_is_recorded_once() -> None:
    store = MemoryEventStore()
    handler = handler_on(store)
    await handler.catch_up()
    same = str(uuid.uuid4())

    first = await handler.handle([due(1, event_id=same), due(2), due(1, event_id=same)])
    head = await store.head()
    again = await handler.handle([due(1, event_id=same)])  # redelivered, at another offset

    assert first.inputs == {"CotisationDue": 2} and first.duplicates == 1 and not first.rejected
    assert again.duplicates == 1 and not again.inputs and not again.rejected
    assert await store.head() == head
    assert decided(store) == {"COT-1": 1, "COT-2": 1}
    assert (await store.verify_chain()).ok


async def test_the_same_event_id_with_other_content_is_rejected_on_field_event_id() -> None:
    store = MemoryEventStore()
    handler = handler_on(store)
    await handler.catch_up()
    same = str(uuid.uuid4())

    first = await handler.handle([due(1, event_id=same), due(2, "COT-X", event_id=same)])
    later = await handler.handle([due(3, "COT-Y", event_id=same)])

    assert first.inputs == {"CotisationDue": 1} and first.rejected == {"event_id": 1}
    assert later.rejected == {"event_id": 1} and not later.inputs
    refused = rejections(store)
    assert [(r.payload["field"], r.payload["kind"], r.payload["offset"]) for r in refused] == [
        ("event_id", "contract", 2),
        ("event_id", "contract", 3),
    ]
    assert {r.payload["reason"] for r in refused} == {
        "event_id: already recorded with other content"
    }
    assert [e.payload["cotisation_id"] for e in inputs(store)] == ["COT-1"]


async def test_a_redelivered_rejection_is_not_stored_twice() -> None:
    store = MemoryEventStore()
    handler = handler_on(store)
    await handler.catch_up()
    batch = [record(7, b"{not json"), due(8)]

    await handler.handle(batch)
    head = await store.head()
    again = await handler.handle(batch)

    assert again.duplicates == 2 and again.attempts == 1 and not again.rejected
    assert await store.head() == head and len(rejections(store)) == 1


# --- the contract and the rules ------------------------------------------------------------


async def test_a_record_breaking_the_contract_is_rejected_whole_and_the_batch_goes_on() -> None:
    store = MemoryEventStore()
    handler = handler_on(store)
    await handler.catch_up()
    bad = record(2, b"{not json", key=b"\x00\xff")

    report = await handler.handle([due(1), bad, due(3)])

    assert report.inputs == {"CotisationDue": 2} and sum(report.rejected.values()) == 1
    (refused,) = rejections(store)
    assert refused.payload["kind"] == "contract" and refused.payload["offset"] == 2
    assert refused.payload["value"] == "e25vdCBqc29u"  # the bytes as they came, in base64
    assert refused.payload["key"] == "AP8="
    assert decided(store) == {"COT-1": 1, "COT-3": 1}


class BuggyProcessor(CollectionProcessor):
    """The real processor, with a bug in the rules that one record's content triggers."""

    def process(self, message: Input) -> Outcome:
        if getattr(message.payload, "cotisation_id", "") == "BOOM":
            raise ZeroDivisionError("a bug in the rules")
        return super().process(message)


async def test_a_rules_bug_rejects_only_the_record_that_triggers_it() -> None:
    store = MemoryEventStore()
    handler = handler_on(store, BuggyProcessor)
    await handler.catch_up()

    report = await handler.handle([due(1), due(2, "BOOM"), due(3)])

    assert report.attempts == 2  # one failure, the culprit known at once
    assert report.inputs == {"CotisationDue": 2} and report.rejected == {PROCESSING_ERROR: 1}
    (refused,) = rejections(store)
    assert refused.payload["reason"] == "processing_error: ZeroDivisionError"
    assert refused.payload["kind"] == PROCESSING_ERROR and refused.payload["offset"] == 2
    assert refused.payload["value"] is not None  # kept whole, for a re-drive after a fix
    assert decided(store) == {"COT-1": 1, "COT-3": 1}
    assert handler.stalled_seconds() == 0.0


async def test_a_refused_commit_splits_the_batch_and_rejects_only_the_culprit() -> None:
    """An input sent under the id another input's decision will take: the store refuses
    that decision at commit (a duplicate id), which no retry can change."""
    store = MemoryEventStore()
    handler = handler_on(store)
    await handler.catch_up()
    victim = str(uuid.uuid4())
    squatter = str(decision_id(uuid.UUID(victim), 1, "collection"))

    report = await handler.handle(
        [due(1, event_id=squatter), due(2, event_id=victim), due(3), due(4)]
    )

    assert report.rejected == {PROCESSING_ERROR: 1} and report.inputs == {"CotisationDue": 3}
    (refused,) = rejections(store)
    assert refused.payload["reason"] == "processing_error: DuplicateEventError"
    assert refused.payload["offset"] == 2
    assert decided(store) == {"COT-1": 1, "COT-3": 1, "COT-4": 1}
    assert [e.position for e in store.events] == list(range(1, len(store.events) + 1))
    assert (await store.verify_chain()).ok


# --- a dependency down, a rejection refused ------------------------------------------------


class FlakyStore(MemoryEventStore):
    """A store that cannot be reached for its first `outages` transactions."""

    def __init__(self, outages: int) -> None:
        super().__init__()
        self.outages = outages

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        if self.outages > 0:
            self.outages -= 1
            raise ConnectionRefusedError("the database is not there")
        async with super().transaction() as tx:
            yield tx


async def test_a_transient_failure_is_retried_and_nothing_is_rejected() -> None:
    store = FlakyStore(outages=0)
    handler = handler_on(store)
    await handler.catch_up()
    failures: list[BaseException] = []
    handler.on_retry = failures.append
    store.outages = 3

    report = await handler.handle([due(1), due(2), record(3, b"[]")])

    assert [type(f) for f in failures] == [ConnectionRefusedError] * 3
    assert report.attempts == 4
    assert report.inputs == {"CotisationDue": 2} and sum(report.rejected.values()) == 1
    assert [r.payload["kind"] for r in rejections(store)] == ["contract"]  # not the outage's
    assert decided(store) == {"COT-1": 1, "COT-2": 1}


class RefusingStore(MemoryEventStore):
    """A store whose database refuses anything holding the record at `offset` whole: its
    input, and its rejection with its bytes (say, a value over a size limit)."""

    def __init__(self, offset: int) -> None:
        super().__init__()
        self.offset = offset
        self.refusals = 0

    def _refuses(self, row: StoredEvent) -> bool:
        origin = row.metadata.get("origin") or {}
        if row.event_type == REJECTION:
            return row.payload["offset"] == self.offset and row.payload["value"] is not None
        return origin.get("offset") == self.offset

    def _commit(self, rows: Any) -> None:
        if any(self._refuses(row) for row in rows):
            self.refusals += 1
            raise StoreError("refused by the database")
        super()._commit(rows)


async def test_a_record_whose_rejection_cannot_be_stored_is_quarantined_by_reference() -> None:
    store = RefusingStore(offset=2)
    handler = handler_on(store)
    await handler.catch_up()

    report = await handler.handle([due(1), due(2), due(3)])

    # the batch (a first strike for each), the culprit alone (its second), its whole
    # rejection: then its rejection by reference
    assert store.refusals == 3 and report.attempts == 4
    assert report.inputs == {"CotisationDue": 2} and report.rejected == {PROCESSING_ERROR: 1}
    (refused,) = rejections(store)
    assert refused.payload["reason"] == "processing_error: StoreError"
    assert (refused.payload["key"], refused.payload["value"], refused.payload["headers"]) == (
        None,
        None,
        [],
    )
    assert refused.payload["offset"] == 2 and len(refused.payload["digest"]) == 32
    assert refused.event_id.hex == refused.payload["digest"]
    assert decided(store) == {"COT-1": 1, "COT-3": 1}
    assert nir(2) not in str(refused.payload)  # quarantined without its content


# --- a re-drive header no store could keep as it came -------------------------------------------


async def test_a_valid_input_whose_redrive_header_holds_a_nul_is_decided() -> None:
    store = MemoryEventStore()
    handler = handler_on(store)
    await handler.catch_up()
    plain = due(1)
    redriven = FakeRecord(
        plain.topic,
        plain.partition,
        plain.offset,
        plain.key,
        plain.value,
        [("mandat_redrive_of", b"r\x00d")],
    )

    report = await handler.handle([redriven, due(2)])

    assert report.inputs == {"CotisationDue": 2} and not report.rejected
    assert inputs(store)[0].metadata["redrive_of"] == "r\\x00d"
    assert decided(store) == {"COT-1": 1, "COT-2": 1}
