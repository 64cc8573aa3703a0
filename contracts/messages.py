"""Helpers around envelopes: wrap a payload, its Kafka key, its Kafka headers."""

from datetime import datetime
from typing import Any, overload
from uuid import UUID

from contracts import inbound as i
from contracts.envelope import (
    INBOUND_CLASSES,
    OUTBOUND_CLASSES,
    InboundEnvelope,
    InboundEvent,
    OutboundEnvelope,
    OutboundEvent,
)
from contracts.inbound import InboundPayload
from contracts.outbound import OutboundPayload


@overload
def envelop(
    payload: InboundPayload,
    *,
    event_id: UUID,
    occurred_at: datetime,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> InboundEvent: ...
@overload
def envelop(
    payload: OutboundPayload,
    *,
    event_id: UUID,
    occurred_at: datetime,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> OutboundEvent: ...
def envelop(
    payload: InboundPayload | OutboundPayload,
    *,
    event_id: UUID,
    occurred_at: datetime,
    source: str,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> InboundEnvelope | OutboundEnvelope:
    """Wrap a payload in the envelope of its event type (the payload class name).

    The envelope is validated: ``occurred_at`` must be aware, ids non-blank.
    """
    name = type(payload).__name__
    cls = INBOUND_CLASSES.get(name) or OUTBOUND_CLASSES[name]
    fields: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": occurred_at,
        "source": source,
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "payload": payload,
    }
    return cls.model_validate(fields)


def partition_key(event: InboundEnvelope | OutboundEnvelope) -> str:
    """The Kafka key of a message: ``organisme_id``, ``convention_id`` or ``nir``."""
    payload = event.payload
    if isinstance(payload, i.OrganismeDeclare):
        return payload.organisme_id
    if isinstance(payload, i.ConventionConclue | i.ConventionResiliee):
        return payload.convention_id
    return payload.nir


def kafka_headers(event: InboundEnvelope | OutboundEnvelope) -> list[tuple[str, bytes]]:
    """Headers every outbound message carries: ``event_type``, ``event_id``, ``schema_version``."""
    return [
        ("event_type", event.event_type.encode()),
        ("event_id", str(event.event_id).encode()),
        ("schema_version", str(event.schema_version).encode()),
    ]
