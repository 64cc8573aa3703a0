"""`mandat replay republish`: re-emit a range of stored events to the audit topic.

Decisions go out with the very envelope, key and headers the relay gives them on the live
topics, plus `replay: true` and a `replay_id`, so a dashboard or a downstream system can
rebuild its state from the audit topic. Inputs (registry facts included) can be re-emitted
too, as the envelope they came in. The live topics are never written: a target topic that
is one of them is refused.

A store in shards is republished shard after shard, each in its own order, each message
naming its shard (`store_shard`, as the relay does); a fact about organisms, recorded in
every shard under one event id, goes out once, with the first shard.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts.messages import key_field, wire_bytes, wire_envelope
from services.adapters.eventstore import EventStore, StoredEvent
from services.adapters.kafka.outbound import common_headers, decision_message
from services.adapters.kafka.relay import SHARD_HEADER, Outgoing
from services.adapters.kafka.topics import ensure_topics
from services.domain.catalog import INPUT_TYPES, ServiceDescription
from services.tools.audit.reading import Selection, read_ahead
from services.tools.audit.report import as_report

REPLAY_HEADER = "replay"
REPLAY_ID_HEADER = "replay_id"


class LiveTopicError(ValueError):
    """Republishing to a live topic is refused: the audit must not touch them."""


def input_message(event: StoredEvent, topic: str) -> Outgoing:
    """A recorded input as the envelope it came in (contract v1), keyed like the inbound
    topics (organism, convention or NIR)."""
    m = event.metadata
    envelope = wire_envelope(
        event.event_type,
        event.payload,
        event_id=event.event_id,
        occurred_at=m.get("occurred_at"),
        source=m.get("source"),
        correlation_id=m.get("correlation_id"),
        causation_id=m.get("causation_id"),
        schema_version=event.schema_version,
    )
    key = event.payload[key_field(event.event_type)]
    value = wire_bytes(envelope)
    return Outgoing(topic, str(key).encode(), value, common_headers(event), event.position)


def replay_messages(
    events: Iterable[StoredEvent],
    service: ServiceDescription,
    topic: str,
    replay_id: str,
    *,
    selection: Selection,
    include_inputs: bool,
    shard: int | None = None,
    leave_out: frozenset[str] = frozenset(),
) -> list[Outgoing]:
    """The audit-topic messages of the selected events (pure): those of one shard of several
    when `shard` is given, without the event types in `leave_out`."""
    marks = [
        (REPLAY_HEADER, b"true"),
        (REPLAY_ID_HEADER, replay_id.encode()),
        ("service", service.name.encode()),
    ]
    if shard is not None:
        marks.append((SHARD_HEADER, str(shard).encode()))
    out = []
    for event in events:
        if event.event_type in INPUT_TYPES:
            selection.note_input(event)
        if event.event_type in leave_out or not selection.covers(event):
            continue
        if event.event_type in service.decision_types:
            message = decision_message(event, topic, service.name)
        elif include_inputs and event.event_type in INPUT_TYPES:
            message = input_message(event, topic)
        else:
            continue
        out.append(
            Outgoing(
                topic, message.key, message.value, [*message.headers, *marks], message.position
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class RepublishResult:
    service: str
    topic: str
    replay_id: str
    sent: int
    last_position: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return as_report(self)


def new_replay_id() -> str:
    return str(uuid.uuid4())


async def republish(
    store: EventStore,
    service: ServiceDescription,
    bootstrap_servers: str,
    *,
    topic: str,
    live_topics: Iterable[str],
    replay_id: str,
    selection: Selection,
    include_inputs: bool = False,
    partitions: int = 3,
    replication_factor: int = 1,
    retention_ms: int = -1,
    client_options: Mapping[str, Any] | None = None,
    shard: int | None = None,
    leave_out: frozenset[str] = frozenset(),
) -> RepublishResult:
    """Send the selected events, in store order, and wait until Kafka acknowledged them
    (`shard`, `leave_out`: see `replay_messages`)."""
    if topic in set(live_topics):
        raise LiveTopicError(f"{topic} is a live topic: republish writes only to an audit topic")
    started = time.perf_counter()
    await ensure_topics(
        bootstrap_servers,
        [topic],
        partitions=partitions,
        replication_factor=replication_factor,
        retention_ms=retention_ms,
        client_options=client_options,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        client_id=f"replay-{service.name}",
        **dict(client_options or {}),
    )
    await producer.start()
    sent = last = 0
    try:
        after = (selection.from_position or 1) - 1
        async for events in read_ahead(store, after):
            if selection.to_position is not None and events[0].position > selection.to_position:
                break
            batch = replay_messages(
                events,
                service,
                topic,
                replay_id,
                selection=selection,
                include_inputs=include_inputs,
                shard=shard,
                leave_out=leave_out,
            )
            futures = [
                await producer.send(m.topic, m.value, key=m.key, headers=m.headers) for m in batch
            ]
            for future in futures:
                await future
            sent += len(batch)
            last = events[-1].position
        await producer.flush()
    finally:
        await producer.stop()
    return RepublishResult(
        service.name, topic, replay_id, sent, last, time.perf_counter() - started
    )
