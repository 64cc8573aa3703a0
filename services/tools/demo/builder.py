"""The scenario builder: its random sources, ids, envelopes and feed, and the order in which
the parts of the scenario are generated (which fixes every random draw: changing it changes
every scenario)."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from contracts.messages import wire_bytes, wire_envelope
from services.tools.demo.benefits import COMBOS, add_benefits
from services.tools.demo.breaches import add_breaches
from services.tools.demo.disorder import add_duplicates_and_conflicts, add_out_of_order_payments
from services.tools.demo.late import add_late_facts
from services.tools.demo.model import INPUT, Message, Scenario
from services.tools.demo.people import FORCED_COUNT, Person, add_person
from services.tools.demo.registry import affiliate, declare_registry

_IDS: Final = uuid.UUID("b1d3c0de-6112-4020-8a1e-5ce9a7105001")


@dataclass
class Entry:
    """A message waiting to be sorted into publication order."""

    when: date
    order: int
    message: Message


@dataclass
class Builder:
    """Generates one scenario; the parts of the scenario are added by the sibling modules."""

    size: int
    seed: int
    tag: str
    rng: random.Random = field(init=False)  # the structure: from the seed only
    ids_rng: random.Random = field(init=False)  # NIR bodies: from the seed and the run tag
    serial: int = 0
    inputs: int = 0  # contribution and benefit inputs so far
    counters: Counter[str] = field(default_factory=Counter)
    people: list[Person] = field(default_factory=list)
    nirs: set[str] = field(default_factory=set)
    registry: list[Message] = field(default_factory=list)
    late: list[Message] = field(default_factory=list)
    revising: list[Message] = field(default_factory=list)  # phase 4: late registry facts
    follow_ups: list[Message] = field(default_factory=list)  # phase 5: inputs after them
    by_category: dict[tuple[str, bool, bool], list[Person]] = field(default_factory=dict)
    feed: list[Entry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"mandat-demo/{self.seed}")
        self.ids_rng = random.Random(f"mandat-demo/{self.seed}/{self.tag}")

    def build(self) -> Scenario:
        """The whole scenario, in publication order."""
        declare_registry(self)
        budget = max(1, round(self.size * 0.78))
        while self.inputs < budget or len(self.people) < FORCED_COUNT:
            add_person(self)
        add_benefits(self, max(len(COMBOS) + 2, self.size - self.inputs))
        add_out_of_order_payments(self)
        add_duplicates_and_conflicts(self)
        add_breaches(self)
        for person in self.people:
            affiliate(self, person)
        add_late_facts(self)
        ordered = sorted(self.feed, key=lambda e: (e.when, e.order))
        messages = (
            *self.registry,
            *(e.message for e in ordered),
            *self.late,
            *self.revising,
            *self.follow_ups,
        )
        return Scenario(self.size, self.seed, self.tag, messages)

    def add(self, when: date, message: Message) -> None:
        """Queue `message` of phase 2 for publication at `when`."""
        self.feed.append(Entry(when, len(self.feed), message))
        self.inputs += message.kind == INPUT

    # -- ids and envelopes ----------------------------------------------------------------
    def t(self, business_id: str) -> str:
        """The id as published in this run."""
        return f"{self.tag}-{business_id}"

    def local(self, business_id: str) -> str:
        """The id without this run's tag."""
        return business_id.removeprefix(f"{self.tag}-")

    def next_id(self, prefix: str, width: int, year: int | None = None) -> str:
        """The next business id of `prefix` (untagged), e.g. COT-2017-000042."""
        self.counters[prefix] += 1
        middle = f"{year}-" if year is not None else ""
        return f"{prefix}-{middle}{self.counters[prefix]:0{width}d}"

    def envelope(
        self,
        event_type: str,
        payload: dict[str, Any],
        when: date,
        source: str,
        correlation: str | None,
    ) -> dict[str, Any]:
        """A contract v1 envelope, with the next event id of this run."""
        self.serial += 1
        return wire_envelope(
            event_type,
            payload,
            event_id=uuid.uuid5(_IDS, f"{self.tag}/{self.seed}/{self.serial}"),
            occurred_at=f"{when.isoformat()}T08:00:00Z",
            source=source,
            correlation_id=correlation,
        )

    def again(
        self, document: dict[str, Any], payload: dict[str, Any], when: date
    ) -> dict[str, Any]:
        """`document` published again with `payload`, under a new event id."""
        return self.envelope(
            document["event_type"], payload, when, document["source"], document["correlation_id"]
        )

    @staticmethod
    def encode(document: dict[str, Any]) -> bytes:
        """The bytes published for `document` (compact, UTF-8)."""
        return wire_bytes(document)

    def message(
        self,
        topic: str,
        key: str,
        document: dict[str, Any],
        *,
        phase: int = 2,
        kind: str = INPUT,
        subject: str | None = None,
        parks: bool = False,
        note: str = "",
    ) -> Message:
        """The message publishing `document` on `topic` under `key`."""
        return Message(
            topic,
            key.encode(),
            self.encode(document),
            phase,
            kind,
            str(document.get("event_id")),
            str(document.get("event_type")),
            subject,
            parks,
            note,
        )
