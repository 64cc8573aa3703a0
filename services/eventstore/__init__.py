"""Append-only, hash-chained event store on PostgreSQL, and its relay to Kafka."""

from services.eventstore.errors import ConcurrencyError, DuplicateEventError, StoreError
from services.eventstore.records import NewEvent, StoredEvent
from services.eventstore.store import (
    ANY_VERSION,
    AppendResult,
    ChainReport,
    EventStore,
    StoreTransaction,
)

__all__ = [
    "ANY_VERSION",
    "AppendResult",
    "ChainReport",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStore",
    "NewEvent",
    "StoreError",
    "StoreTransaction",
    "StoredEvent",
]
