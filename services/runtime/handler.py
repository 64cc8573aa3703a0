"""The consuming side both services share: a batch of Kafka records in, one store commit out.

For each batch, under the store's lock: fold what other instances committed since, drop what
is already recorded (same event id: Kafka redelivery, upstream retry), turn each record into
an input or a rejection, let the service's processor decide, and append it all in one
transaction. Only then may the consumer commit its offsets. A transient failure (PostgreSQL
down, a conflict) is retried with backoff for as long as it lasts: a valid message is never
rejected nor skipped because a dependency was unavailable.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from contracts.parsing import ContractError, parse_inbound
from services.eventstore import EventStore, NewEvent, StoreTransaction
from services.runtime.processing import (
    REJECTION,
    Input,
    Processor,
    fold_stored,
    rejection_id,
)
from services.runtime.snapshots import SnapshotStore
from services.runtime.streams import REJECTIONS_STREAM

log = logging.getLogger(__name__)


class Record(Protocol):
    """The parts of a Kafka record the handler reads (aiokafka's ConsumerRecord has them)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]
    timestamp: int


@dataclass(slots=True)
class BatchReport:
    """What one batch did, for metrics and logs."""

    inputs: dict[str, int] = field(default_factory=dict)
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    attempts: int = 1
    seconds: float = 0.0


def origin(record: Record) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def rejection_event(record: Record, error: ContractError, service: str) -> NewEvent:
    """The record kept as it came (bytes in base64) with why it breaks the contract."""

    def b64(data: bytes | None) -> str | None:
        return None if data is None else base64.b64encode(data).decode()

    payload = {
        "reason": str(error),
        "field": error.field,
        **origin(record),
        "timestamp": record.timestamp,
        "key": b64(record.key),
        "value": b64(record.value),
        "headers": [[k, b64(v)] for k, v in record.headers],
    }
    return NewEvent(
        rejection_id(service, record.topic, record.partition, record.offset),
        REJECTION,
        payload,
        {},
    )


class BatchHandler:
    """Decides batches of records for one service, keeping its processor's view current."""

    def __init__(
        self,
        store: EventStore,
        new_processor: Callable[..., Processor],
        allowed: Mapping[str, frozenset[str]],
        *,
        backoff_max: float = 5.0,
        snapshots: SnapshotStore | None = None,
    ) -> None:
        self.store = store
        self.new_processor = new_processor  # new_processor() or new_processor(view)
        self.allowed = allowed  # event types each topic may carry
        self.backoff_max = backoff_max
        self.snapshots = snapshots
        self.processor = new_processor()
        self._stale = False  # the view may hold uncommitted state: restore before use
        self.on_retry: Callable[[BaseException], None] = lambda exc: None

    async def handle(self, records: Sequence[Record]) -> BatchReport:
        """Record and decide `records`; returns once they are committed to the store."""
        delay, attempt = 0.05, 1
        while True:
            started = time.perf_counter()
            try:
                report = await self._attempt(records)
            except (ContractError, asyncio.CancelledError):
                self._stale = True  # the view may hold what the rolled-back batch decided
                raise
            except Exception as exc:
                self._stale = True
                self.on_retry(exc)
                log.warning(
                    "batch of %d records failed (attempt %d), retrying in %.2fs: %r",
                    len(records),
                    attempt,
                    delay,
                    exc,
                )
                await asyncio.sleep(delay)
                delay, attempt = min(delay * 2, self.backoff_max), attempt + 1
                continue
            report.attempts, report.seconds = attempt, time.perf_counter() - started
            await self._snapshot()
            return report

    async def catch_up(self) -> int:
        """Restore the latest snapshot, fold what the store holds beyond it; returns the head."""
        await self._restore()
        async with self.store.transaction() as tx:
            await self._fold_new(tx)
        return self.processor.view.position

    async def _restore(self) -> None:
        view = await self.snapshots.load() if self.snapshots is not None else None
        self.processor = self.new_processor(view) if view is not None else self.new_processor()
        self._stale = False
        if view is not None:
            log.info("view restored from the snapshot at position %d", view.position)

    async def _snapshot(self) -> None:
        if self.snapshots is None:
            return
        try:
            await self.snapshots.maybe_save(self.processor.view)
        except Exception:  # a snapshot is an optimisation: never fail a batch for it
            log.warning("snapshot failed", exc_info=True)

    async def _fold_new(self, tx: StoreTransaction, batch: int = 20_000) -> None:
        view = self.processor.view
        while events := await tx.read_since(view.position, batch):
            for event in events:
                fold_stored(view, event)
            if len(events) < batch:
                return

    async def _attempt(self, records: Sequence[Record]) -> BatchReport:
        report = BatchReport()
        if self._stale:
            await self._restore()
        parsed = [self._parse(r) for r in records]  # outside the lock: needs no state
        async with self.store.transaction() as tx:
            await self._fold_new(tx)
            # a record is handled once it is recorded: as its input (event id) or as its
            # rejection (by offset) — a refused input is stored only as the latter
            keys = [self._keys(r, p) for r, p in zip(records, parsed, strict=True)]
            seen = await tx.stored_ids([k for pair in keys for k in pair])
            for record, message, pair in zip(records, parsed, keys, strict=True):
                if seen.intersection(pair):
                    report.duplicates += 1
                    continue
                seen.update(pair)
                self._decide(tx, record, message, report)
        self.processor.view.position = tx.head_position
        return report

    def _keys(self, record: Record, message: Input | ContractError) -> tuple[UUID, ...]:
        """The ids under which this record would be on record."""
        rejection = rejection_id(
            self.processor.service, record.topic, record.partition, record.offset
        )
        return (message.event_id, rejection) if isinstance(message, Input) else (rejection,)

    def _parse(self, record: Record) -> Input | ContractError:
        try:
            event = parse_inbound(record.value, allowed=self.allowed.get(record.topic))
        except ContractError as error:
            return error
        metadata = {
            "correlation_id": event.correlation_id,
            "causation_id": event.causation_id,
            "source": event.source,
            "occurred_at": event.occurred_at.isoformat(),
            "schema_version": event.schema_version,
            "origin": origin(record),
        }
        return Input(event.event_id, event.event_type, event.payload, metadata)

    def _decide(
        self,
        tx: StoreTransaction,
        record: Record,
        message: Input | ContractError,
        report: BatchReport,
    ) -> None:
        input_id = None
        if isinstance(message, Input):
            input_id = message.event_id
            outcome = self.processor.process(message)
            if outcome.duplicate:
                report.duplicates += 1
                log.info("same content already recorded", extra={"event_id": str(input_id)})
                return
            if outcome.refused is None:
                report.inputs[message.event_type] = report.inputs.get(message.event_type, 0) + 1
                for stream_id, version, event in outcome.events:
                    tx.append_at(stream_id, version, event)
                    if event.event_id != message.event_id:
                        self._count_decision(event, report)
                return
            field_name, _, reason = outcome.refused.partition(": ")
            message = ContractError(reason, field_name)
        event = rejection_event(record, message, self.processor.service)
        self._record_rejection(tx, event)
        reason = message.field or "message"
        report.rejected[reason] = report.rejected.get(reason, 0) + 1
        log.info(
            "rejected: %s",
            message,
            extra={"event_id": str(input_id) if input_id else None, **origin(record)},
        )

    @staticmethod
    def _count_decision(event: NewEvent, report: BatchReport) -> None:
        key = (event.event_type, str(event.payload.get("motif") or ""))
        report.decisions[key] = report.decisions.get(key, 0) + 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "decided %s",
                event.event_type,
                extra={"event_id": str(event.event_id), **event.metadata},
            )

    def _record_rejection(self, tx: StoreTransaction, event: NewEvent) -> None:
        view = self.processor.view
        tx.append_at(REJECTIONS_STREAM, view.version(REJECTIONS_STREAM) + 1, event)
        view.apply(
            REJECTIONS_STREAM, str(event.event_id), event.event_type, event.payload, event.metadata
        )
