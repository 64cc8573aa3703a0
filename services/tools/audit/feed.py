"""Recording history through a service's real write path, without Kafka.

`Feeder` hands in-memory records (what aiokafka would deliver: topic, partition, offset,
key, value, headers, timestamp) to the service's `BatchHandler`, which parses them with the
contract, decides them and appends them under the store's lock exactly as in production.
Benchmarks and tests use it to fill a store; nothing else does.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import asyncpg

from contracts.messages import wire_bytes, wire_envelope
from services.adapters.eventstore import EventStore
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import create_pool
from services.adapters.runtime.handler import BatchHandler, BatchReport
from services.adapters.runtime.reviser import Reviser
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import ServiceDescription
from services.domain.kernel.processing import Processor


async def prepare_store(dsn: str, schema: str, *, max_size: int = 4) -> EventStore:
    """Apply the migrations to `schema` (as the connecting administrator) and open its store
    as the services' role; close it with `await store.pool.close()`."""
    conn = await asyncpg.connect(dsn)
    try:
        await apply_migrations(conn, schema)
    finally:
        await conn.close()
    return EventStore(await create_pool(dsn, schema, max_size=max_size), schema)


_IDS = uuid.UUID("3b8e2f4c-6a51-4d0e-8c1f-a11e20f00d01")


@dataclass(slots=True)
class FakeRecord:
    """A Kafka record as the batch handler reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: int = 0


def envelope(
    event_type: str,
    payload: dict[str, Any],
    *,
    event_id: uuid.UUID | str,
    occurred_at: str = "2017-01-15T08:00:00Z",
    source: str = "audit-feed",
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> bytes:
    """A contract-v1 message value (JSON envelope)."""
    return wire_bytes(
        wire_envelope(
            event_type,
            payload,
            event_id=event_id,
            occurred_at=occurred_at,
            source=source,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
    )


class Feeder:
    """Queues inbound messages for one service and records them in batches."""

    def __init__(
        self,
        store: EventStore,
        service: ServiceDescription,
        settings: ServiceSettings,
        *,
        rules: Any = None,
        seed: str = "feed",
    ) -> None:
        rule_set = rules if rules is not None else service.current
        self.inputs = {settings.topic(t): types for t, types in service.inputs.items()}
        self.handler = BatchHandler(
            store,
            lambda view=None: cast(Processor, service.new_processor(rule_set, view=view)),
            self.inputs,
        )
        self.reviser = Reviser(self.handler)
        self.seed = seed
        self.count = 0
        self.pending: list[FakeRecord] = []
        self._offsets: dict[str, int] = {}

    def topic_of(self, event_type: str) -> str:
        return next(t for t, types in self.inputs.items() if event_type in types)

    def next_id(self) -> uuid.UUID:
        """A deterministic event id (the same seed gives the same history)."""
        self.count += 1
        return uuid.uuid5(_IDS, f"{self.seed}/{self.count}")

    def raw(self, topic: str, value: bytes, key: bytes | None = None) -> FakeRecord:
        """Queue a record as it comes (a contract breach, for instance)."""
        offset = self._offsets.get(topic, 0)
        self._offsets[topic] = offset + 1
        record = FakeRecord(topic, 0, offset, key, value, (), 1_500_000_000_000 + offset)
        self.pending.append(record)
        return record

    def message(
        self,
        event_type: str,
        payload: dict[str, Any],
        *,
        event_id: uuid.UUID | None = None,
        **fields: Any,
    ) -> uuid.UUID:
        """Queue a valid message; returns its event id."""
        event_id = event_id or self.next_id()
        key = payload.get("nir") or payload.get("convention_id") or payload.get("organisme_id")
        self.raw(
            self.topic_of(event_type),
            envelope(event_type, payload, event_id=event_id, **fields),
            str(key).encode(),
        )
        return event_id

    async def flush(self) -> BatchReport:
        """Record what is queued in one batch (one store transaction)."""
        records, self.pending = self.pending, []
        report = await self.handler.handle(records)
        if report.tasks_opened:  # then the steps of the revision tasks it opened, as the
            while (step := await self.reviser.step()) is not None:  # service's reviser does
                report.add(step)
        return report

    async def send(self, event_type: str, payload: dict[str, Any], **fields: Any) -> uuid.UUID:
        """Queue one message and record it at once."""
        event_id = self.message(event_type, payload, **fields)
        await self.flush()
        return event_id
