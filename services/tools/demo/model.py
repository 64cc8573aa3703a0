"""What the demo scenario is made of: topic roles, the services consuming them, the kinds of
message (what the services must do with each), `Message` and `Scenario`."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

from services.tools.demo.registry_data import CONVENTIONS, ORGANISMS, Convention, Organism

# topic roles (the actual topic names come from the settings)
REFERENTIEL: Final = "referentiel"
COTISATIONS: Final = "cotisations"
PRESTATIONS: Final = "prestations"
ROLES: Final = (REFERENTIEL, COTISATIONS, PRESTATIONS)

COLLECTION: Final = "collection"
BENEFITS: Final = "benefits"
SERVICES: Final = (COLLECTION, BENEFITS)
SERVICES_OF: Final[dict[str, tuple[str, ...]]] = {
    REFERENTIEL: (COLLECTION, BENEFITS),
    COTISATIONS: (COLLECTION,),
    PRESTATIONS: (BENEFITS,),
}

# what a message is, hence what the services must do with it
FACT: Final = "fact"  # a registry fact: recorded, no decision of its own
INPUT: Final = "input"  # a contribution, payment, unpaid notice or benefit: gets a decision
DUPLICATE: Final = "duplicate"  # the same event_id again: no effect
RESEND: Final = "resend"  # same business id and content under a new event_id: no effect
CONFLICT: Final = "conflict"  # same business id, other content: rejected
BREACH: Final = "breach"  # breaks the wire contract: rejected
REJECTED_KINDS: Final = frozenset({CONFLICT, BREACH})


@dataclass(frozen=True)
class Message:
    """One message as an upstream system publishes it, and what must come of it."""

    topic: str  # role: "referentiel" | "cotisations" | "prestations"
    key: bytes | None
    value: bytes
    phase: int = 2  # 1 registry, 2 contributions and benefits, 3 late affiliations (of
    # parked inputs), 4 late registry facts (revising decisions), 5 inputs after them
    kind: str = INPUT  # FACT, INPUT, DUPLICATE, RESEND, CONFLICT or BREACH
    event_id: str | None = None
    event_type: str | None = None
    subject: str | None = None  # business id (without the run tag), to say what is missing
    parks: bool = False  # expected to be parked (DecisionEnAttente) before it is decided
    note: str = ""  # why a breach breaks the contract

    @property
    def services(self) -> tuple[str, ...]:
        """The services that consume this message's topic."""
        return SERVICES_OF[self.topic]

    @property
    def needs_decision(self) -> bool:
        """Whether each of its services must publish a final decision caused by it."""
        return self.kind == INPUT

    @property
    def rejected_by(self) -> tuple[str, ...]:
        """The services that must reject it (to their rejection topic)."""
        return self.services if self.kind in REJECTED_KINDS else ()

    @property
    def tracked(self) -> bool:
        """Whether its services must answer it: with a decision, or with a rejection."""
        return self.kind == INPUT or self.kind in REJECTED_KINDS

    def document(self) -> dict[str, Any]:
        """The JSON envelope (only for messages whose value is JSON)."""
        decoded: dict[str, Any] = json.loads(self.value)
        return decoded


@dataclass(frozen=True)
class Scenario:
    """Everything `mandat run` publishes, in publication order, with its expectations."""

    size: int
    seed: int
    run_tag: str
    messages: tuple[Message, ...]
    organisms: tuple[Organism, ...] = ORGANISMS
    conventions: tuple[Convention, ...] = CONVENTIONS

    def tagged(self, business_id: str) -> str:
        """The id as published in this run."""
        return f"{self.run_tag}-{business_id}"

    def local(self, business_id: str) -> str:
        """The id without this run's tag (as shown in summaries)."""
        return business_id.removeprefix(f"{self.run_tag}-")

    def untag(self, text: str) -> str:
        """`text` with every occurrence of this run's tag prefix removed."""
        return text.replace(f"{self.run_tag}-", "")

    def phase(self, n: int) -> list[tuple[int, Message]]:
        """(index, message) of phase `n`, in publication order."""
        return [(i, m) for i, m in enumerate(self.messages) if m.phase == n]

    def inputs(self, service: str) -> list[tuple[int, Message]]:
        """(index, message) of the inputs `service` must decide."""
        return [
            (i, m)
            for i, m in enumerate(self.messages)
            if m.needs_decision and service in m.services
        ]

    def rejections(self, service: str) -> list[tuple[int, Message]]:
        """(index, message) of the messages `service` must reject."""
        return [(i, m) for i, m in enumerate(self.messages) if service in m.rejected_by]

    def expected(self) -> dict[str, dict[str, int]]:
        """Per service: inputs to decide, rejections, inputs parked before their decision."""
        return {
            s: {
                "decided": len(self.inputs(s)),
                "rejected": len(self.rejections(s)),
                "parked": sum(1 for _, m in self.inputs(s) if m.parks),
            }
            for s in SERVICES
        }

    def counts(self) -> dict[str, int]:
        """Messages by kind (and in all)."""
        found = Counter(m.kind for m in self.messages)
        return {"messages": len(self.messages), **dict(sorted(found.items()))}

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        """The payloads of the inputs of `event_type` (each once: no duplicates)."""
        return [
            m.document()["payload"]
            for m in self.messages
            if m.kind == INPUT and m.event_type == event_type
        ]
