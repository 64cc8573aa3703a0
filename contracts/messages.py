"""Helpers around envelopes: wrap a payload, its Kafka key, its Kafka headers.

The Kafka key is part of the contract, not a producer's choice: it decides the partition,
and a service relies on every input about one subject (a person, an organism, a
convention) arriving on one partition, in order. :func:`expected_key` is that key;
:func:`contracts.parse_inbound` refuses a record published under another one.
"""

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, NotRequired, TypedDict, Unpack, overload
from uuid import UUID

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


class EnvelopeFields(TypedDict):
    """What an envelope says of its payload: the keyword arguments of :func:`envelop`."""

    event_id: UUID
    occurred_at: datetime
    source: str
    correlation_id: NotRequired[str | None]
    causation_id: NotRequired[str | None]


@overload
def envelop(payload: InboundPayload, **fields: Unpack[EnvelopeFields]) -> InboundEvent: ...
@overload
def envelop(payload: OutboundPayload, **fields: Unpack[EnvelopeFields]) -> OutboundEvent: ...
def envelop(
    payload: InboundPayload | OutboundPayload, **fields: Unpack[EnvelopeFields]
) -> InboundEnvelope | OutboundEnvelope:
    """Wrap a payload in the envelope of its event type (the payload class name).

    The envelope is validated: ``occurred_at`` must be aware, ids non-blank.
    """
    name = type(payload).__name__
    cls = INBOUND_CLASSES.get(name) or OUTBOUND_CLASSES[name]
    envelope: dict[str, Any] = {
        "correlation_id": None,
        "causation_id": None,
        **fields,
        "payload": payload,
    }
    return cls.model_validate(envelope)


KEY_FIELDS: Final[Mapping[str, str]] = {
    "OrganismeDeclare": "organisme_id",
    "ConventionConclue": "convention_id",
    "ConventionResiliee": "convention_id",
}
"""The payload field whose value is the Kafka key, for the event types not keyed by ``nir``."""


def key_field(event_type: str) -> str:
    """The payload field that is the Kafka key of ``event_type``: ``nir`` unless listed in
    :data:`KEY_FIELDS` (every decision, contribution, payment, benefit and affiliation)."""
    return KEY_FIELDS.get(event_type, "nir")


def partition_key(event: InboundEnvelope | OutboundEnvelope) -> str:
    """The Kafka key of a message: ``organisme_id``, ``convention_id`` or ``nir``."""
    key = getattr(event.payload, key_field(event.event_type))
    assert isinstance(key, str)  # every key field is a validated, non-null string
    return key


def expected_key(event: InboundEnvelope | OutboundEnvelope) -> bytes:
    """The Kafka key a record carrying ``event`` must have: its :func:`partition_key`, UTF-8."""
    return partition_key(event).encode("utf-8")


def kafka_headers(event: InboundEnvelope | OutboundEnvelope) -> list[tuple[str, bytes]]:
    """Headers every outbound message carries: ``event_type``, ``event_id``, ``schema_version``."""
    return [
        ("event_type", event.event_type.encode()),
        ("event_id", str(event.event_id).encode()),
        ("schema_version", str(event.schema_version).encode()),
    ]


def wire_envelope(
    event_type: str,
    payload: Mapping[str, Any],
    *,
    event_id: UUID | str,
    occurred_at: str | None,
    source: str | None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    schema_version: int = 1,
) -> dict[str, Any]:
    """A contract-v1 envelope as JSON-ready data, around a payload already in wire form.

    What the benchmarks, the demo, the audit feed and republishing send; :func:`envelop`
    is the validated, typed way for code that holds models."""
    return {
        "event_id": str(event_id),
        "event_type": event_type,
        "schema_version": schema_version,
        "occurred_at": occurred_at,
        "source": source,
        "correlation_id": correlation_id,
        "causation_id": causation_id,
        "payload": payload,
    }


def wire_bytes(document: Mapping[str, Any]) -> bytes:
    """A message value: compact JSON, UTF-8 (non-ASCII kept as is)."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
