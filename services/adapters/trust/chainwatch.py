"""The rolling chain check: a running service re-verifies its own store's hash chain in the
background, a batch at a time, over and over, so that a row changed behind its back (a
superuser can disable the append-only trigger) turns an alert on without anyone running
`mandat audit chain`.

It is `EventStore.verify_chain` cut into throttled steps: each step reads up to `batch`
rows after the last one checked and recomputes their hashes from their content and the
row before; at the head it starts a new pass from the genesis. Its cost is bounded by
`rows_per_second` (one pass of a store of n rows takes about n / rows_per_second seconds),
so it never competes with the service for the database. A break is reported once it is
found (the position and what is wrong there, no content) and stays reported: the pass
starts again from the genesis, and a later intact pass clears it (someone repaired the
store, or restored it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.adapters.eventstore import EventStore
from services.domain.kernel.records import GENESIS_HASH, expected_hash

log = logging.getLogger(__name__)


class ChainWatch:
    """Verifies the chain of `store` in steps; `run()` is its task."""

    def __init__(
        self,
        store: EventStore,
        service: str,
        *,
        rows_per_second: float = 2000.0,
        batch: int = 500,
        on_change: Callable[[ChainWatch], None] = lambda watch: None,
    ) -> None:
        if rows_per_second <= 0 or batch < 1:
            raise ValueError("the chain check needs a positive rate and batch")
        self.store = store
        self.service = service
        self.rows_per_second = rows_per_second
        self.batch = batch
        self.on_change = on_change
        self.checked = 0  # the last position verified in this pass
        self.passes = 0  # complete passes found intact
        self.broken: int | None = None  # the first broken position of the last pass
        self._previous = GENESIS_HASH

    async def step(self) -> int:
        """Verify up to `batch` rows after the last one checked; return how many were read.
        At the head (nothing new), the pass is complete: the next step starts over."""
        events = await self.store.read_all(self.checked, self.batch)
        for event in events:
            if event.position != self.checked + 1:
                self._break_at(self.checked + 1, "a position is missing")
                return len(events)
            if expected_hash(self._previous, event) != event.hash:
                self._break_at(event.position, "a row's hash does not match its content")
                return len(events)
            self._previous, self.checked = event.hash, event.position
        if not events:
            self._pass_done()
        self.on_change(self)
        return len(events)

    def _break_at(self, position: int, why: str) -> None:
        if self.broken is None:
            log.error("%s: the store's hash chain breaks at #%d: %s", self.service, position, why)
        self.broken = position
        self._restart()
        self.on_change(self)

    def _pass_done(self) -> None:
        if self.checked > 0:
            if self.broken is not None:
                log.warning("%s: the store's hash chain holds again", self.service)
            self.broken = None
            self.passes += 1
        self._restart()

    def _restart(self) -> None:
        self.checked, self._previous = 0, GENESIS_HASH

    async def run(self) -> None:
        """Step at the rate until cancelled; a failing read is retried (it is no break)."""
        while True:
            try:
                read = await self.step()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s: chain check step failed: %s", self.service, type(exc).__name__)
                read = self.batch
            # at the head, wait as long as a full batch would take: new rows accumulate
            await asyncio.sleep((read or self.batch) / self.rows_per_second)
