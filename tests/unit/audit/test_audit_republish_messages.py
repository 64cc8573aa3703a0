"""What republishing sends: the relay's wire message of each decision, marked as a replay."""

from __future__ import annotations

import json

import pytest
from audit_memory import MemoryRecord

from services.adapters.kafka.outbound import decision_message
from services.adapters.runtime.shards import ABOUT_ORGANISMS
from services.domain.catalog import COLLECTION
from services.tools.audit.reading import Selection
from services.tools.audit.republish import LiveTopicError, replay_messages, republish
from services.tools.audit.sample import NIR_A, due, payment, registry

pytestmark = pytest.mark.unit


def _record() -> MemoryRecord:
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    record.record(due("COT-1", NIR_A, 2017, 100000))
    record.record(payment("P1", "COT-1", NIR_A, 30000))
    return record


def test_decisions_go_out_as_the_relay_sends_them_plus_replay_headers() -> None:
    record = _record()
    out = replay_messages(
        record.events, COLLECTION, "audit", "r-1", selection=Selection(), include_inputs=False
    )
    decisions = [e for e in record.events if e.event_type in COLLECTION.decision_types]
    assert [m.position for m in out] == [e.position for e in decisions]
    for message, event in zip(out, decisions, strict=True):
        live = decision_message(event, "audit", "collection")
        assert (message.key, message.value) == (live.key, live.value)
        assert message.headers[: len(live.headers)] == live.headers
        assert dict(message.headers)["replay"] == b"true"
        assert dict(message.headers)["replay_id"] == b"r-1"


def test_inputs_go_out_as_the_envelope_they_came_in_when_asked() -> None:
    record = _record()
    out = replay_messages(
        record.events,
        COLLECTION,
        "audit",
        "r-1",
        selection=Selection(from_position=8),
        include_inputs=True,
    )
    assert [dict(m.headers)["event_type"] for m in out] == [
        b"CotisationDue",
        b"EncaissementDelegue",
        b"PaiementRecu",
        b"PaiementEncaissePourCompte",
    ]
    value = out[0].value
    assert value is not None
    envelope = json.loads(value)
    stored = record.events[7]
    assert envelope["event_id"] == str(stored.event_id)
    assert envelope["payload"] == stored.payload and out[0].key == NIR_A.encode()
    first_fact = replay_messages(
        record.events[:1], COLLECTION, "audit", "r", selection=Selection(), include_inputs=True
    )[0]
    assert first_fact.key == b"OC-MUT-01"


async def test_a_live_topic_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(LiveTopicError):
        # no store at all (None, not an EventStore): the refusal comes before any reading
        await republish(
            None,  # type: ignore[arg-type]
            COLLECTION,
            "nowhere:1",
            topic="rsi.reglements.cotisations.v1",
            live_topics=["rsi.reglements.cotisations.v1"],
            replay_id="r",
            selection=Selection(),
        )


def test_a_shard_s_messages_name_it_and_leave_out_what_another_shard_sends() -> None:
    record = _record()
    every = replay_messages(
        record.events, COLLECTION, "audit", "r", selection=Selection(), include_inputs=True
    )
    out = replay_messages(
        record.events,
        COLLECTION,
        "audit",
        "r",
        selection=Selection(),
        include_inputs=True,
        shard=3,
        leave_out=ABOUT_ORGANISMS,
    )
    about_organisms = {t.encode() for t in ABOUT_ORGANISMS}
    kept = [m for m in every if dict(m.headers)["event_type"] not in about_organisms]
    assert len(kept) < len(every)  # the record holds facts about organisms
    assert [m.position for m in out] == [m.position for m in kept]
    assert all(dict(m.headers)["store_shard"] == b"3" for m in out)
    assert all("store_shard" not in dict(m.headers) for m in every)
