"""What replay compares: the canonical content of an event, and a field-by-field diff.

A recorded decision and its recomputation must be equal byte for byte on their canonical
JSON: ids and every clock-free field (type, stream, stream version, schema version, payload,
metadata). `recorded_at`, `position` and `hash` are the store's, not the rules'.
`what-if` compares decisions, not record-keeping: it also leaves out the rule-set version
(it changes by construction) and the ids and stream versions, which shift when an earlier
decision of the same stream appears or disappears.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from services.adapters.eventstore import NewEvent, StoredEvent
from services.domain.kernel.records import canonical_json

Emitted = tuple[str, int, NewEvent]
"""An event a processor emits: (stream id, stream version, event)."""


def recorded_content(event: StoredEvent) -> dict[str, Any]:
    """The canonical content of a stored event (what a recomputation must reproduce)."""
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "schema_version": event.schema_version,
        "payload": event.payload,
        "metadata": event.metadata,
    }


def emitted_content(emitted: Emitted) -> dict[str, Any]:
    """The canonical content of an event a processor emitted (same shape)."""
    stream_id, version, event = emitted
    return {
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "stream_id": stream_id,
        "stream_version": version,
        "schema_version": event.schema_version,
        "payload": event.payload,
        "metadata": event.metadata,
    }


def decision_only(content: dict[str, Any]) -> dict[str, Any]:
    """What `what-if` compares: the decision without its rule-set version, ids or versions."""
    payload = {k: v for k, v in content["payload"].items() if k != "regles_version"}
    return {
        "event_type": content["event_type"],
        "stream_id": content["stream_id"],
        "payload": payload,
        "metadata": content["metadata"],
    }


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)
"""`canonical_json`'s text, from one encoder built once (replay compares every decision)."""


def same(left: Any, right: Any) -> bool:
    """Equal byte for byte on canonical JSON (1, 1.0 and true are three different values)."""
    return _CANONICAL.encode(left) == _CANONICAL.encode(right)


@dataclass(frozen=True, slots=True)
class FieldDiff:
    """One field that differs: its dotted path, the recorded value and the replayed one."""

    path: str
    recorded: Any
    replayed: Any

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "recorded": self.recorded, "replayed": self.replayed}

    def __str__(self) -> str:
        return (
            f"{self.path}: recorded {canonical_json(self.recorded)}"
            f" != replayed {canonical_json(self.replayed)}"
        )


_ABSENT = "<absent>"


def diff(recorded: Any, replayed: Any, path: str = "") -> list[FieldDiff]:
    """The leaves where two JSON values differ, in key order (empty when they are the same)."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        found: list[FieldDiff] = []
        for key in sorted(recorded.keys() | replayed.keys()):
            sub = f"{path}.{key}" if path else str(key)
            if key not in recorded:
                found.append(FieldDiff(sub, _ABSENT, replayed[key]))
            elif key not in replayed:
                found.append(FieldDiff(sub, recorded[key], _ABSENT))
            else:
                found.extend(diff(recorded[key], replayed[key], sub))
        return found
    if isinstance(recorded, list) and isinstance(replayed, list) and len(recorded) == len(replayed):
        found = []
        for index, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            found.extend(diff(a, b, f"{path}[{index}]"))
        return found
    return [] if same(recorded, replayed) else [FieldDiff(path or "<value>", recorded, replayed)]
