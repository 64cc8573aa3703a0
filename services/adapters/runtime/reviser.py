"""The revision tasks of a service, worked a step per transaction (`kernel.tasks`).

A registry fact about an organism records a task; this component records its steps, one
transaction each under the store's lock, like a batch of inputs: the inputs arriving
meanwhile wait for one step at most, never for the whole revision. It runs beside the
consumer in every instance; the lock makes one step at a time, whichever instance takes it,
and the task's cursor (the fold of the steps recorded) makes each exactly once. A step that
fails is retried with backoff, and the component is reported stalled while it fails with a
task open: readiness tells the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
import uuid
from collections.abc import Callable

from contracts import mask_personal
from services.adapters.eventstore.errors import DuplicateEventError
from services.adapters.runtime import state
from services.adapters.runtime.handler import (
    BatchHandler,
    BatchReport,
    append_outcome,
    write_back,
)
from services.domain.kernel.tasks import STEP_PEOPLE, TASKS

log = logging.getLogger(__name__)

STEP_SECONDS = 0.05
"""What a step of a revision task should take in a running service: about a batch's time
(the inputs that arrive meanwhile wait for one step, then for the relay to publish it)."""


class Reviser:
    """Records the steps of the open revision tasks of the handler's service."""

    def __init__(
        self,
        handler: BatchHandler,
        *,
        limit: int = STEP_PEOPLE,
        step_seconds: float | None = None,
        idle_seconds: float = 1.0,
        backoff_max: float = 5.0,
    ) -> None:
        self.handler = handler
        self.limit = limit  # people per step
        self.step_seconds = step_seconds
        """When set, the people per step follow how long steps take, towards this: a step
        of people with many subjects each takes longer, and the inputs waiting for the lock
        must not wait longer for it. (A step names its span: replay does not depend on it.)"""
        self.idle_seconds = idle_seconds  # how often an idle reviser looks for tasks
        self.backoff_max = backoff_max
        self.wake = asyncio.Event()  # set when a batch opened a task: look at once
        self.busy_since: float | None = None
        self.stall_reason: str | None = None
        self.steps = 0
        self.fresh_ids = False
        """A step's id, and its revisions' (derived from it), are predictable, and an input
        may come under any id: once an attempt collides with an id on record, the next one
        takes a random id. Replay reads the step's id from the record: it does not care."""
        self.on_step: Callable[[BatchReport], None] = lambda report: None

    def stalled_seconds(self) -> float:
        """How long the step in hand has been in hand (0 between steps)."""
        return 0.0 if self.busy_since is None else time.monotonic() - self.busy_since

    async def pending(self) -> int:
        """How many revision tasks are open (read without the store's lock)."""
        count, _ = await self.handler.store.tagged_summary(TASKS)
        return count

    async def step(self) -> BatchReport | None:
        """Record the next step of the oldest open task, in one transaction (None when no
        task is open)."""
        handler = self.handler
        report = BatchReport()
        started = time.perf_counter()
        async with handler.store.transaction() as tx:
            starts = await handler.current(tx)
            loaded = await state.load_step(tx, handler.view_type, self.limit)
            if loaded is None:
                return None
            processor = handler.deciding_over(tx, loaded, starts)
            message = processor.next_step(self.limit)
            assert message is not None, "a task was loaded"
            if self.fresh_ids:  # the last attempt took an id already on record (below)
                message = dataclasses.replace(message, event_id=uuid.uuid4())
            outcome = processor.process(message)
            if outcome.refused is not None:  # the step was made from the task: a bug
                raise RuntimeError(f"a revision step refused: {outcome.refused}")
            append_outcome(tx, outcome, message.event_id, report)
            if handler.sharded:  # the step's ids, and its revisions', are this shard's
                await handler.claim_recorded(tx, [])
            await write_back(tx, processor.view, loaded)
        handler.committed(tx, starts)
        report.seconds = time.perf_counter() - started
        self.steps += 1
        if self.step_seconds is not None:
            self.limit = _next_limit(self.limit, report.seconds, self.step_seconds)
        return report

    async def run(self) -> None:
        """Work the open tasks for as long as the service runs."""
        delay, stepping = 0.05, False
        while True:
            try:
                self.busy_since = time.monotonic() if self.busy_since is None else self.busy_since
                # while steps come, the next one finds whether a task is left; idle, a look
                # without the lock comes first
                report = await self.step() if stepping or await self.pending() else None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.fresh_ids = isinstance(exc, DuplicateEventError)
                self.stall_reason = mask_personal(f"{type(exc).__name__}: {exc}")[:200]
                log.warning("revision step failed: %s", type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            self.busy_since, self.stall_reason, delay = None, None, 0.05
            self.fresh_ids, stepping = False, report is not None
            if report is not None:
                with contextlib.suppress(Exception):
                    self.on_step(report)
                await asyncio.sleep(0)  # let a batch waiting for the lock take it
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.idle_seconds)
            self.wake.clear()


def _next_limit(limit: int, took: float, wanted: float) -> int:
    """The people for the next step: halfway (geometrically) towards the count that would
    take `wanted` seconds at the pace of the last step, within [MIN_PEOPLE, MAX_PEOPLE]."""
    factor = math.sqrt(wanted / max(took, 1e-3))
    return max(MIN_PEOPLE, min(MAX_PEOPLE, round(limit * factor)))


MIN_PEOPLE, MAX_PEOPLE = 10, 2000
