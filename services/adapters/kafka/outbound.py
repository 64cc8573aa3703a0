"""What the relay publishes for a stored event: the wire message of a decision, or the
untouched copy of a rejected message with its reason in headers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from services.adapters.eventstore import StoredEvent
from services.adapters.kafka.relay import POSITION_HEADER, SHARD_HEADER, Outgoing
from services.domain.kernel.processing import REJECTION


def common_headers(event: StoredEvent) -> list[tuple[str, bytes]]:
    return [
        ("event_type", event.event_type.encode()),
        ("event_id", str(event.event_id).encode()),
        ("schema_version", str(event.schema_version).encode()),
        (POSITION_HEADER, str(event.position).encode()),
    ]


def decision_envelope(event: StoredEvent, source: str) -> dict[str, Any]:
    """The wire envelope of a decision (contract v1), `occurred_at` = when it was recorded."""
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "occurred_at": event.recorded_at.isoformat().replace("+00:00", "Z"),
        "source": source,
        "correlation_id": event.metadata.get("correlation_id"),
        "causation_id": event.metadata.get("causation_id"),
        "payload": event.payload,
    }


def decision_message(event: StoredEvent, topic: str, source: str) -> Outgoing:
    value = orjson.dumps(decision_envelope(event, source))
    return Outgoing(
        topic, event.payload["nir"].encode(), value, common_headers(event), event.position
    )


REJECTION_HEADERS = frozenset(
    {"reject_reason", "reject_field", "reject_kind", "source_topic", "source_partition"}
    | {"source_offset", "event_type", "event_id", "schema_version", POSITION_HEADER}
    | {SHARD_HEADER}  # (set by a shard's relay)
)
"""Headers the system sets on a rejection: same-named upstream headers are dropped, so a
reader can trust that these are ours."""


def stored_header(entry: list[str | None]) -> tuple[str, bytes | None]:
    """A header as the handler stored it: [name, value] in base64, the name too when the
    entry says so ("b64")."""
    name, value = entry[0] or "", entry[1]
    if len(entry) > 2 and entry[2] == "b64":
        name = base64.b64decode(name).decode("utf-8", "surrogatepass")
    return name, None if value is None else base64.b64decode(value)


def rejection_message(event: StoredEvent, topic: str) -> Outgoing:
    """The refused message as it came (key, value, headers), plus why and from where."""
    p = event.payload

    def raw(text: str | None) -> bytes | None:
        return None if text is None else base64.b64decode(text)

    upstream = [stored_header(entry) for entry in p["headers"]]
    headers: list[tuple[str, bytes | None]] = [
        (k, v) for k, v in upstream if k not in REJECTION_HEADERS
    ]
    headers += [
        ("reject_reason", p["reason"].encode()),
        ("reject_kind", str(p.get("kind") or "contract").encode()),
        ("source_topic", p["topic"].encode()),
        ("source_partition", str(p["partition"]).encode()),
        ("source_offset", str(p["offset"]).encode()),
    ]
    if p.get("field"):
        headers.append(("reject_field", p["field"].encode()))
    headers += common_headers(event)
    key, value = raw(p["key"]), raw(p["value"])
    if key is None and value is None:
        # neither (Kafka allows it, the client cannot send it), or kept by reference only
        # (`digest`): the copy carries the reasons with an empty value
        value = b""
    return Outgoing(topic, key, value, headers, event.position)


@dataclass(frozen=True, slots=True)
class Routes:
    """Where a service's stored events go: decisions to one topic, rejections to another."""

    decisions_topic: str
    rejections_topic: str
    decision_types: frozenset[str]
    source: str

    def route(self, event: StoredEvent) -> Outgoing | None:
        if event.event_type in self.decision_types:
            return decision_message(event, self.decisions_topic, self.source)
        if event.event_type == REJECTION:
            return rejection_message(event, self.rejections_topic)
        return None  # inputs and registry facts are not republished

    @property
    def event_types(self) -> frozenset[str]:
        """What the relay reads from the store: the rest is never published."""
        return self.decision_types | {REJECTION}

    @property
    def topics(self) -> tuple[str, str]:
        return (self.decisions_topic, self.rejections_topic)
