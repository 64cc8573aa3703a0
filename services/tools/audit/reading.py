"""Reading the store for audits: batches read ahead, inputs grouped with their outcome, and
the selection (position range, date range, subject) a command reports on.

Under the store's lock a service appends, for each input, the input itself and then every
decision it causes; a rejection stands alone. So the events following an input, up to the
next input or rejection, are exactly that input's outcome: a `Step`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.adapters.eventstore import EventStore, StoredEvent
from services.domain.catalog import STEP_HEADS
from services.domain.kernel.processing import REJECTION

SUBJECT_FIELDS = ("cotisation_id", "prestation_id", "paiement_id", "sujet_id", "nir")
"""Payload fields naming what an event is about."""


def is_input(event: StoredEvent) -> bool:
    """Whether `event` heads a step: an input (or a revision task's step, recorded alike)."""
    return event.event_type in STEP_HEADS


@dataclass(frozen=True, slots=True)
class Step:
    """A recorded input (or rejection) and the decisions that followed it, in store order."""

    head: StoredEvent
    decisions: tuple[StoredEvent, ...] = ()

    @property
    def last_position(self) -> int:
        return self.decisions[-1].position if self.decisions else self.head.position

    @property
    def rejection(self) -> bool:
        return self.head.event_type == REJECTION


class Grouper:
    """Groups events pushed in store order into steps. Decisions before any input
    (impossible in a sound store) come out as a step of their own."""

    def __init__(self) -> None:
        self._head: StoredEvent | None = None
        self._decisions: list[StoredEvent] = []

    def push(self, event: StoredEvent) -> Step | None:
        """Take the next event; returns the step it closes, if any."""
        done = None
        if self._head is None:
            self._head = event
        elif is_input(event) or event.event_type == REJECTION:
            done = Step(self._head, tuple(self._decisions))
            self._head, self._decisions = event, []
        else:
            self._decisions.append(event)
        return done

    def flush(self) -> Step | None:
        """The last step (at the end of the store)."""
        done = None if self._head is None else Step(self._head, tuple(self._decisions))
        self._head, self._decisions = None, []
        return done


def steps(events: Iterable[StoredEvent]) -> Iterator[Step]:
    """Group events in store order into steps."""
    grouper = Grouper()
    for event in events:
        if (step := grouper.push(event)) is not None:
            yield step
    if (step := grouper.flush()) is not None:
        yield step


async def read_batch(store: EventStore, after: int, limit: int) -> list[StoredEvent]:
    """`store.read_all` (kept as the one place the readers of this module read through)."""
    return await store.read_all(after, limit)


async def read_ahead(
    store: EventStore, after: int = 0, *, batch: int = 5000
) -> AsyncIterator[list[StoredEvent]]:
    """Every event after `after`, in batches; the next batch is fetched while the caller
    works on the current one (reading and replaying overlap)."""
    pending: asyncio.Future[list[StoredEvent]] | None = asyncio.ensure_future(
        read_batch(store, after, batch)
    )
    try:
        while pending is not None:
            events = await pending
            pending = None
            if len(events) == batch:
                pending = asyncio.ensure_future(read_batch(store, events[-1].position, batch))
            if events:
                yield events
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pending


async def read_steps(
    store: EventStore, *, until: int | None = None, batch: int = 5000
) -> AsyncIterator[Step]:
    """The store's steps from position 1; with `until`, up to the step holding it."""
    grouper = Grouper()
    async for events in read_ahead(store, 0, batch=batch):
        for event in events:
            if (step := grouper.push(event)) is not None:
                yield step
                if until is not None and event.position > until:
                    return
    if (step := grouper.flush()) is not None:
        yield step


def subjects_of(payload: dict[str, Any]) -> set[str]:
    """The ids an event's payload is about (contribution, benefit, payment, NIR)."""
    return {str(payload[f]) for f in SUBJECT_FIELDS if payload.get(f) is not None}


@dataclass(slots=True)
class Selection:
    """Which recorded decisions a command reports on. Replay still folds everything before
    them (the state a decision saw is the whole store before it), but checks only these."""

    from_position: int | None = None
    to_position: int | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    subject: str | None = None
    _inputs: set[str] = field(default_factory=set)  # inputs about the subject (event ids)

    def note_input(self, event: StoredEvent) -> None:
        """Remember an input about the subject: its decisions are about it too (a parked
        payment's DecisionEnAttente names the payment, not its contribution)."""
        if self.subject is not None and self.subject in subjects_of(event.payload):
            self._inputs.add(str(event.event_id))

    def covers(self, event: StoredEvent) -> bool:
        """Whether a recorded event is in the selection."""
        if self.from_position is not None and event.position < self.from_position:
            return False
        if self.to_position is not None and event.position > self.to_position:
            return False
        if self.since is not None and event.recorded_at < self.since:
            return False
        if self.until is not None and event.recorded_at >= self.until:
            return False
        if self.subject is None:
            return True
        if self.subject in subjects_of(event.payload):
            return True
        return str(event.metadata.get("causation_id")) in self._inputs

    def describe(self) -> dict[str, Any]:
        """The selection as options (for reports)."""
        return {
            k: v
            for k, v in {
                "from_position": self.from_position,
                "to_position": self.to_position,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None,
                "subject": self.subject,
            }.items()
            if v is not None
        }
