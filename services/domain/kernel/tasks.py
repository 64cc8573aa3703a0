"""Large revisions in steps: a registry fact about an organism opens a revision task, and
the task is worked through that organism's people a step at a time, each step its own
transaction (domain.md, "Large revisions").

A fact that terminates a convention may revise every contribution of a hundred thousand
people. Revising them all in the fact's transaction holds the store's lock for as long, and
every other input waits. So the fact records `RevisionsOuvertes` (the organisms whose people
it may concern) and nothing more; then `EtapeDeRevision` events, each naming the people it
covers (a span of one organism's people, in code point order), record the revisions of their
subjects, until the last organism is done. The task's cursor is the fold of those events, so
it is durable and exactly once like anything else in the store, and a replay re-runs each
step from the store as it was.

Until a subject's revision is recorded, an input about it is decided after it: a follow-up
on a contribution whose person a task has not reached yet first records that revision
(`RegistryAwareProcessor.revise_pending`), never the superseded outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.domain.state import Entry, Kind, Span

REVISIONS_OPENED = "RevisionsOuvertes"
"""Recorded with a registry fact whose revisions are made in steps: their task."""

REVISION_STEP = "EtapeDeRevision"
"""One step of a revision task: the span of people whose subjects it re-evaluates."""

REVISION_SET_ASIDE = "RevisionEcartee"
"""A subject whose revision the rules fail on (its record makes them raise, every time):
set aside on record, with the error's class, so that the fact or step goes on with the
others; the subject's outcome stays as it stood. A fix of the rules shows in replay."""

TASK_EVENT_TYPES = frozenset({REVISIONS_OPENED, REVISION_STEP, REVISION_SET_ASIDE})
"""Internal events of the store: never published (no route), and no decision."""

TASKS = "revision_task"
"""The state kind of the open tasks (all under one tag: a batch loads them all)."""

OPEN = "open"

STEP_PEOPLE = 200
"""People whose subjects one step re-evaluates: a step holds the store's lock for about as
long as a batch of inputs, so the inputs arriving meanwhile wait for one step at most."""


def task_stream(fact_id: str) -> str:
    """The stream of a revision task: its opening, then its steps."""
    return f"revisions-{fact_id}"


class EtapeDeRevision(BaseModel):
    """A step of the revision task a registry fact opened: the people of `organisme_id`
    after `apres` and up to `jusqu_a` (to the last one when null), in code point order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fait_id: UUID
    organisme_id: str = Field(min_length=1)
    apres: str
    jusqu_a: str | None

    @property
    def span(self) -> Span:
        return Span(self.apres, self.jusqu_a)


@dataclass(frozen=True, slots=True)
class Starts:
    """Where a store's record changes its rules of revising (recorded once each, at the
    head + 1 the first code that follows them finds): from `revisions`, registry facts
    revise earlier decisions; from `steps`, a fact about an organism revises its people in
    steps. Replay honours both, so a store recorded before either verifies as it was."""

    revisions: int = 1
    steps: int = 1
    space: str = ""
    """The namespace of the decision ids of a shard of a store in shards, minted so from
    `space_from` (inputs at that position or after); "": the service's own."""
    space_from: int = 1


@dataclass(slots=True)
class RevisionTask:
    """A revision task as folded: the organisms whose people it revises, where it stands."""

    fact_id: str
    organisms: list[str]
    correlation_id: str
    since: int  # the position it was opened at: tasks are worked in that order
    at: int = 0  # the organism in hand (an index of `organisms`)
    after: str = ""  # the last person of that organism whose subjects were re-evaluated
    steps: int = 0

    @property
    def organism(self) -> str:
        return self.organisms[self.at]

    def pending(self, organism: str, person: str) -> bool:
        """Whether the task has still to re-evaluate `person`'s subjects as a person
        affiliated to `organism` (some time)."""
        for index, name in enumerate(self.organisms):
            if name == organism and (index > self.at or (index == self.at and person > self.after)):
                return True
        return False

    def advance(self, step: dict[str, Any]) -> bool:
        """Fold one of its steps; whether the task is now finished."""
        self.steps += 1
        if step["jusqu_a"] is None:  # that organism's last person: on to the next one
            self.at += 1
            self.after = ""
        else:
            self.after = step["jusqu_a"]
        return self.at >= len(self.organisms)


def in_order(tasks: Iterable[RevisionTask]) -> list[RevisionTask]:
    """Open tasks in the order they are worked: the order their facts were recorded."""
    return sorted(tasks, key=lambda t: t.since)


def _task(task: RevisionTask) -> Entry:
    doc = {f.name: getattr(task, f.name) for f in fields(task) if f.name != "since"}
    return Entry(doc, tag=OPEN, ordinal=task.since)


def _from_task(entry: Entry) -> RevisionTask:
    assert isinstance(entry.doc, dict)
    return RevisionTask(**entry.doc, since=entry.ordinal)


TASK_KIND: Kind[RevisionTask] = Kind(TASKS, _task, _from_task)
