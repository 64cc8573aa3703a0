"""Snapshots of a service's view, so a restart folds only what came after the latest one.

A snapshot is a pickle of the view at a store position, tagged with a format: a digest of
the source of the modules that define the view's shape. When that code changes, older
snapshots are simply not used (the view is folded from the events, which stay the record).
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import logging
import pickle
import time
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

_SHAPE_MODULES = (
    "services.registry.registry",
    "services.runtime.parking",
    "services.runtime.processing",
    "services.collection.view",
    "services.benefits.view",
)


def snapshot_format() -> str:
    """A digest of the code that gives views their shape (and of the pickle protocol)."""
    digest = hashlib.sha256(str(pickle.HIGHEST_PROTOCOL).encode())
    for name in _SHAPE_MODULES:
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    return digest.hexdigest()[:16]


class SnapshotStore:
    """Reads and writes one service's snapshots (table `snapshots` of its schema)."""

    def __init__(self, pool: asyncpg.Pool, kind: str, *, every: int = 50_000) -> None:
        self.pool = pool
        self.kind = kind
        self.every = every
        self.format = snapshot_format()
        self.last_position = 0

    async def load(self) -> Any | None:
        """The latest usable view, or None."""
        row = await self.pool.fetchrow(
            "SELECT position, data FROM snapshots WHERE kind = $1 AND format = $2"
            " ORDER BY position DESC LIMIT 1",
            self.kind,
            self.format,
        )
        if row is None:
            return None
        self.last_position = row["position"]
        # our own table, written by this code (format-checked): trusted like the store
        return pickle.loads(row["data"])

    async def maybe_save(self, view: Any) -> bool:
        """Save the view when `every` events passed since the last snapshot."""
        position = int(view.position)
        if position - self.last_position < self.every:
            return False
        started = time.perf_counter()
        data = pickle.dumps(view, protocol=pickle.HIGHEST_PROTOCOL)
        await self.pool.execute(
            "INSERT INTO snapshots (kind, position, format, data) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING",
            self.kind,
            position,
            self.format,
            data,
        )
        self.last_position = position
        log.info(
            "snapshot of %s at %d: %d bytes in %.2fs",
            self.kind,
            position,
            len(data),
            time.perf_counter() - started,
        )
        return True
