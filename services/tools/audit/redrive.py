"""`mandat rejections redrive`: submit rejected records again, after a fix.

A record isolated with reason `processing_error` (a bug its content triggered) or refused by
a contract that has since been corrected can be submitted again. Each is re-published to the
topic it came from, as it came (key, value, headers), with one more header naming the
rejection it re-drives (`mandat_redrive_of`). The service then decides it or rejects it
again, exactly once: a valid input is recorded once by its event id; a record refused again
is identified by the rejection it re-drives and by its bytes, so re-driving the same
rejection twice gives one outcome, not two. Its provenance stays in the record (the input's
or the new rejection's metadata names the rejection).

A record quarantined by reference (even its rejection could not keep its bytes) is read back
from its topic at its offset and checked against the digest kept for it.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.adapters.eventstore import EventStore, StoredEvent
from services.adapters.kafka.outbound import stored_header
from services.adapters.runtime.handler import PROCESSING_ERROR, REDRIVE_HEADER, record_rejection_id
from services.domain.kernel.processing import REJECTION


@dataclass(frozen=True, slots=True)
class Original:
    """A rejected record as it came, ready to be sent again."""

    rejection_id: UUID
    position: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    reason: str


@dataclass(slots=True)
class RedriveResult:
    service: str
    selected: list[Original] = field(default_factory=list)
    sent: int = 0
    missing: list[str] = field(default_factory=list)  # quarantined, not found on the topic
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "sent": self.sent,
            "selected": [
                {
                    "rejection_id": str(o.rejection_id),
                    "position": o.position,
                    "topic": o.topic,
                    "reason": o.reason,
                }
                for o in self.selected
            ],
            "missing": self.missing,
            "seconds": round(self.seconds, 3),
        }


def _kind(event: StoredEvent) -> str:
    return str(event.payload.get("kind") or "contract")


def _b64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def original_of(event: StoredEvent) -> Original:
    """The record a stored rejection kept (its bytes in base64)."""
    p = event.payload
    headers = [stored_header(entry) for entry in p.get("headers", [])]
    return Original(
        event.event_id,
        event.position,
        p["topic"],
        _b64(p.get("key")),
        _b64(p.get("value")),
        [(k, v) for k, v in headers if k != REDRIVE_HEADER],
        p["reason"],
    )


def quarantined(event: StoredEvent) -> bool:
    """Kept by reference only: its bytes are on its topic, not in the store."""
    return "digest" in event.payload


async def selected_rejections(
    store: EventStore,
    *,
    kinds: frozenset[str] | None,
    ids: frozenset[UUID] | None,
    from_position: int | None,
    to_position: int | None,
) -> list[StoredEvent]:
    """The stored rejections matching the selection, in store order."""
    found: list[StoredEvent] = []
    after = (from_position or 1) - 1
    while True:
        events, complete = await store.read_types(after, [REJECTION], limit=1000)
        for event in events:
            if to_position is not None and event.position > to_position:
                return found
            if kinds is not None and _kind(event) not in kinds:
                continue
            if ids is not None and event.event_id not in ids:
                continue
            found.append(event)
        if len(events) < 1000:
            return found
        after = complete


async def _fetch_quarantined(
    bootstrap: str,
    service: str,
    events: Sequence[StoredEvent],
    client_options: Mapping[str, Any] | None = None,
) -> tuple[list[Original], list[str]]:
    """Read quarantined records back from their topics, each checked against its id (which
    is derived from its origin and bytes)."""
    if not events:
        return [], []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",
        **dict(client_options or {}),
    )
    await consumer.start()
    found, missing = [], []
    try:
        for event in events:
            p = event.payload
            tp = TopicPartition(p["topic"], p["partition"])
            consumer.assign([tp])
            consumer.seek(tp, p["offset"])
            try:
                batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
            except Exception:  # undecodable by this client too: another client must read it
                missing.append(str(event.event_id))
                continue
            records = batch.get(tp, [])
            record = records[0] if records else None
            if record is None or record_rejection_id(service, record) != event.event_id:
                missing.append(str(event.event_id))
                continue
            found.append(
                Original(
                    event.event_id,
                    event.position,
                    p["topic"],
                    record.key,
                    record.value,
                    [(k, v) for k, v in record.headers if k != REDRIVE_HEADER],
                    p["reason"],
                )
            )
    finally:
        await consumer.stop()
    return found, missing


async def redrive(
    store: EventStore,
    service: str,
    bootstrap: str,
    *,
    kinds: frozenset[str] | None = frozenset({PROCESSING_ERROR}),
    ids: frozenset[UUID] | None = None,
    from_position: int | None = None,
    to_position: int | None = None,
    dry_run: bool = False,
    max_request_size: int = 4 * 1024 * 1024,
    client_options: Mapping[str, Any] | None = None,
) -> RedriveResult:
    """Re-publish the selected rejected records to their source topics."""
    started = time.perf_counter()
    result = RedriveResult(service)
    events = await selected_rejections(
        store, kinds=kinds, ids=ids, from_position=from_position, to_position=to_position
    )
    whole = [original_of(e) for e in events if not quarantined(e)]
    by_reference = [e for e in events if quarantined(e)]
    fetched, result.missing = await _fetch_quarantined(
        bootstrap, service, by_reference, client_options
    )
    chosen = sorted([*whole, *fetched], key=lambda o: o.position)
    # a record with neither key nor value (possible in Kafka) cannot be sent by this client
    result.selected = [o for o in chosen if o.key is not None or o.value is not None]
    result.missing += [str(o.rejection_id) for o in chosen if o.key is None and o.value is None]
    if dry_run or not result.selected:
        result.seconds = time.perf_counter() - started
        return result
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        max_request_size=max_request_size,
        **dict(client_options or {}),
    )
    await producer.start()
    try:
        futures = []
        for o in result.selected:
            headers = [*o.headers, (REDRIVE_HEADER, str(o.rejection_id).encode())]
            futures.append(await producer.send(o.topic, o.value, key=o.key, headers=headers))
        for future in futures:
            await future
        result.sent = len(futures)
    finally:
        await producer.stop()
    result.seconds = time.perf_counter() - started
    return result
