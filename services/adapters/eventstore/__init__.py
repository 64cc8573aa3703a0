"""Append-only, hash-chained event store on PostgreSQL: every SQL statement on its tables."""

from services.adapters.eventstore.errors import ConcurrencyError, DuplicateEventError, StoreError
from services.adapters.eventstore.store import (
    ANY_VERSION,
    ChainReport,
    EventStore,
    StoreTransaction,
)
from services.domain.kernel.records import NewEvent, StoredEvent

__all__ = [
    "ANY_VERSION",
    "ChainReport",
    "ConcurrencyError",
    "DuplicateEventError",
    "EventStore",
    "NewEvent",
    "StoreError",
    "StoreTransaction",
    "StoredEvent",
]
