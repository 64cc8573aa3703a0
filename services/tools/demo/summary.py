"""The summary of a run: what was published, decided, parked, rejected and missed, as
figures (deterministic for a seed apart from time and rate), and as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.tools.demo.render import render

Tally = list[int]  # [count, cents]
Move = tuple[str, str, str]  # (service, organism before, organism after; "" = none)


@dataclass
class Summary:
    """What a run decided, as figures (deterministic for a seed apart from time and rate)."""

    size: int
    seed: int
    run_tag: str
    published: dict[str, int]  # messages by kind, and in all
    expected: dict[str, dict[str, int]]
    decisions: dict[str, dict[tuple[str, str], Tally]]  # service -> (type, motif) -> n, ¢
    delegated: dict[str, Tally]  # organism -> [count, cents] (EncaissementDelegue)
    reversements: dict[tuple[str, str], Tally]  # (organism, caisse) -> [count, cents]
    contentieux: dict[str, Tally]  # organism -> [count, cents]
    versements_delegues: dict[tuple[str, str], Tally]  # (organism, caisse) -> [n, cents]
    versements_directs: dict[str, Tally]  # caisse -> [count, cents]
    decided: dict[str, int]  # inputs with their final decision, by service
    revisions: dict[str, Tally]  # service -> [revisions, deja_encaisse_cents moved]
    moves: dict[Move, int]  # revisions by (service, from, to)
    owed: dict[str, Tally]  # organism leaving -> [revisions, cents it owes its caisses]
    parked: dict[str, dict[str, int]]  # service -> motif -> inputs parked on their way
    still_parked: dict[str, int]
    rejected: dict[str, dict[str, int]]  # service -> reason -> count
    missing: list[str]
    unexpected: list[str]
    organisms: dict[str, str]  # organism id -> name
    elapsed_s: float
    messages_out: int
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every input got its decision or its rejection."""
        return not self.missing

    @property
    def rate(self) -> float:
        """Messages published per second."""
        return self.published["messages"] / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, service: str, event_type: str, motif: str = "") -> int:
        """How many decisions of `event_type` (and `motif`) `service` published."""
        return self.decisions.get(service, {}).get((event_type, motif), [0, 0])[0]

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (`mandat run --json`)."""
        return {
            "run": {"size": self.size, "seed": self.seed, "run_tag": self.run_tag},
            "published": self.published,
            "expected": self.expected,
            "decisions": {
                s: [
                    {"event_type": t, "motif": m or None, "count": n, "cents": v}
                    for (t, m), (n, v) in sorted(table.items())
                ]
                for s, table in self.decisions.items()
            },
            "delegated_by_organism": _by_one(self.delegated),
            "reversements_owed": _by_pair(self.reversements),
            "contentieux_by_organism": _by_one(self.contentieux),
            "benefits_paid_on_behalf": _by_pair(self.versements_delegues),
            "benefits_paid_directly": _by_one(self.versements_directs),
            "decided": self.decided,
            "revisions": {
                s: {"count": n, "deja_encaisse_cents": v} for s, (n, v) in self.revisions.items()
            },
            "moves": [
                {"service": s, "from": b or None, "to": a or None, "count": n}
                for (s, b, a), n in self.moves.items()
            ],
            "owed_by_organism_leaving": _by_one(self.owed),
            "parked": self.parked,
            "still_parked": self.still_parked,
            "rejected": self.rejected,
            "complete": self.complete,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "notes": self.notes,
            "elapsed_s": round(self.elapsed_s, 3),
            "messages_out": self.messages_out,
            "messages_per_s": round(self.rate, 1),
        }

    def render(self) -> str:
        """The summary as text, as `mandat run` prints it."""
        return render(self)


def _by_one(table: dict[str, Tally]) -> dict[str, dict[str, int]]:
    return {k: {"count": n, "cents": v} for k, (n, v) in sorted(table.items())}


def _by_pair(table: dict[tuple[str, str], Tally]) -> list[dict[str, Any]]:
    return [
        {"organisme_id": o, "caisse_de_base": c, "count": n, "cents": v}
        for (o, c), (n, v) in sorted(table.items())
    ]
