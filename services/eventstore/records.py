"""What the store holds: events to append, events as stored, and the hash chain over them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

GENESIS_HASH = bytes(32)
"""The hash the first row chains to."""


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append to a stream (its position and hash are given by the store)."""

    event_id: UUID
    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the store holds it, at its global position."""

    position: int
    stream_id: str
    stream_version: int
    event_id: UUID
    event_type: str
    schema_version: int
    payload: dict[str, Any]
    metadata: dict[str, Any]
    recorded_at: datetime
    hash: bytes


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, UTF-8 kept (what hashes and replay compare)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(
    previous: bytes,
    *,
    position: int,
    stream_id: str,
    stream_version: int,
    event_id: UUID,
    event_type: str,
    schema_version: int,
    payload: dict[str, Any],
    metadata: dict[str, Any],
    recorded_at: datetime,
) -> bytes:
    """sha256(previous hash || canonical content of the row)."""
    content = canonical_json(
        [
            position,
            stream_id,
            stream_version,
            str(event_id),
            event_type,
            schema_version,
            payload,
            metadata,
            recorded_at.isoformat(),
        ]
    )
    return hashlib.sha256(previous + content.encode("utf-8")).digest()


def expected_hash(previous: bytes, event: StoredEvent) -> bytes:
    """The hash a stored row must carry, given the hash of the row before it."""
    return chain_hash(
        previous,
        position=event.position,
        stream_id=event.stream_id,
        stream_version=event.stream_version,
        event_id=event.event_id,
        event_type=event.event_type,
        schema_version=event.schema_version,
        payload=event.payload,
        metadata=event.metadata,
        recorded_at=event.recorded_at,
    )
