"""An in-memory record for the audit's pure tests: a service's processor decides inputs and
its outcome is kept as the store would keep it (positions, stream versions, JSON payloads).
(Imported by the tests of this directory as `audit_memory`.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from services.adapters.eventstore import StoredEvent
from services.domain.catalog import PAYLOAD_MODELS, ServiceDescription
from services.domain.kernel.processing import REJECTION, Input

T0 = datetime(2017, 3, 1, 8, 0, tzinfo=UTC)


class MemoryRecord:
    """What a service would have stored, without a database."""

    def __init__(self, service: ServiceDescription, rules: Any = None) -> None:
        self.processor = service.new_processor(rules if rules is not None else service.current)
        self.events: list[StoredEvent] = []

    def _keep(
        self,
        stream_id: str,
        version: int,
        event_id: UUID,
        event_type: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> StoredEvent:
        position = len(self.events) + 1
        stored = StoredEvent(
            position,
            stream_id,
            version,
            event_id,
            event_type,
            1,
            json.loads(json.dumps(payload)),
            json.loads(json.dumps(metadata)),
            T0 + timedelta(seconds=position),
            bytes(32),
        )
        self.events.append(stored)
        return stored

    def record(self, fact: tuple[str, dict[str, Any]]) -> list[StoredEvent]:
        """Decide one input; returns what was stored (the input first)."""
        event_type, payload = fact
        event_id = uuid4()
        metadata = {
            "correlation_id": None,
            "causation_id": None,
            "source": "test",
            "occurred_at": "2017-01-15T08:00:00+00:00",
            "schema_version": 1,
        }
        model = PAYLOAD_MODELS[event_type].model_validate(payload)
        outcome = self.processor.process(Input(event_id, event_type, model, metadata))
        assert outcome.refused is None and not outcome.duplicate
        return [
            self._keep(s, v, e.event_id, e.event_type, e.payload, e.metadata)
            for s, v, e in outcome.events
        ]

    def reject(self) -> StoredEvent:
        """Store a contract breach, as the handler does."""
        version = self.processor.view.version("rejets") + 1
        event = self._keep(
            "rejets", version, uuid4(), REJECTION, {"reason": "not JSON", "field": None}, {}
        )
        self.processor.view.apply("rejets", str(event.event_id), REJECTION, event.payload, {})
        return event

    def of_type(self, event_type: str) -> list[StoredEvent]:
        return [e for e in self.events if e.event_type == event_type]
