"""`mandat audit chain`: verify a store's hash chain and explain the first broken link.

Each row's hash is sha256(previous row's hash || canonical content of the row), so changing
any field of any row (a superuser can disable the append-only trigger) changes the hash it
should carry, and deleting or inserting a row breaks the sequence of positions. The store
finds the first position where this does not hold; this module says what is there.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from services.adapters.eventstore import EventStore
from services.domain.kernel.records import GENESIS_HASH, expected_hash
from services.tools.audit.report import as_report


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The chain of one service's store."""

    service: str
    schema: str
    checked: int
    head: int
    first_broken: int | None
    detail: dict[str, Any] | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.first_broken is None

    def as_dict(self) -> dict[str, Any]:
        return as_report(self, ok=self.ok)


async def check_chain(store: EventStore, service: str) -> ChainResult:
    """Verify the whole chain of `store`; on a break, read what the broken link holds."""
    started = time.perf_counter()
    report = await store.verify_chain()
    head = await store.head()
    detail = None
    if report.first_broken is not None:
        detail = await explain(store, report.first_broken)
    return ChainResult(
        service,
        store.schema,
        report.checked,
        head,
        report.first_broken,
        detail,
        time.perf_counter() - started,
    )


async def explain(store: EventStore, position: int) -> dict[str, Any]:
    """Why the chain breaks at `position`: a missing row, or a row whose hash is not the one
    its content and its predecessor give."""
    by_position = {e.position: e for e in await store.read_all(max(position - 2, 0), 2)}
    event = by_position.get(position)
    if event is None:
        return {"problem": "missing row", "position": position}
    previous = by_position.get(position - 1)
    previous_hash = previous.hash if previous is not None else GENESIS_HASH
    return {
        "problem": "hash does not match the row's content",
        "position": position,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "stream_id": event.stream_id,
        "stored_hash": event.hash.hex(),
        "recomputed_hash": expected_hash(previous_hash, event).hex(),
    }
