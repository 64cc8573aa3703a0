"""What both services keep of a subject (a contribution, a benefit): its input, and the
outcome that stands for it, so that a later registry fact can revise it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from services.domain.state import Entry, Kind


@dataclass(slots=True)
class SubjectState:
    """A subject as recorded: its input and the decision or revision that stands."""

    due: dict[str, Any]  # its input's payload, as stored
    correlation_id: str = ""  # of its input: a revision of it carries the same
    decision_id: str | None = None  # the decision or revision that stands
    outcome: dict[str, Any] | None = None  # its outcome, when a registry fact may change it
    regles_version: str | None = None  # the rule set it was decided with (a revision uses it)
    at: int = 0  # the store position of the decision or revision that stands
    aside: str | None = None  # the fact whose revision of it the rules failed on (set aside)

    def stands(
        self, event_id: str, outcome: dict[str, Any] | None, payload: Mapping[str, Any], at: int
    ) -> None:
        """A decision or revision now stands for it (`outcome`: None if not revisable),
        recorded at position `at`."""
        self.at = at
        self.decision_id = event_id
        self.outcome = outcome
        self.regles_version = payload["regles_version"]


@dataclass(frozen=True, slots=True)
class Subject:
    """What a service decides on: the payload field naming it, the kind its state is kept
    as, the view's attribute holding those states, and its stream."""

    field: str
    kind: str
    attribute: str
    stream: Callable[[str], str]


S = TypeVar("S", bound=SubjectState)


def subject_kind(name: str, state: type[S]) -> Kind[S]:
    """How a subject state is kept: its fields as a JSON object."""

    def encode(value: S) -> Entry:
        return Entry({f.name: getattr(value, f.name) for f in fields(value)})

    def decode(entry: Entry) -> S:
        assert isinstance(entry.doc, dict)
        return state(**entry.doc)

    return Kind(name, encode, decode)
