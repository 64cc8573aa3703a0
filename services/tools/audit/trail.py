"""`mandat audit trail SUBJECT`: a subject's whole history in one service's store.

A subject is a `cotisation_id`, a `prestation_id` (or a `paiement_id`) or a NIR. The trail
holds, in store order: every input about it, every decision about it or caused by one of
those inputs, and the registry facts those decisions relied on (`faits_retenus`: the
organism, the convention, the affiliation), each decision pointing at the recorded facts
it relied on, with its legal basis and rule-set version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

from contracts.topics import REVISIONS
from services.adapters.eventstore import EventStore, StoredEvent
from services.domain.catalog import INPUT_TYPES
from services.domain.kernel.processing import REJECTION
from services.domain.registry import REGISTRY_EVENT_TYPES

_QUIET = frozenset({"nir", "base_legale", "regles_version", "faits_retenus"})
_ORDER = {
    name: rank
    for rank, name in enumerate(
        (
            "cotisation_id",
            "prestation_id",
            "paiement_id",
            "sujet_id",
            "organisme_id",
            "nom",
            "forme_juridique",
            "convention_id",
            "objet",
            "caisses_de_base",
            "mode",
            "categorie",
            "caisse_de_base",
            "periode",
            "debut",
            "fin",
            "effet_du",
            "effet_au",
            "nature",
            "fait_generateur_le",
            "exigible_le",
            "recu_le",
            "constatee_le",
            "montant_cents",
            "restant_du_cents",
            "solde_restant_cents",
            "motif",
            "recouvreur",
            "affiliation",
            "organisme",
            "convention",
        )
    )
}
"""The order fields are shown in (the contract's, roughly); others follow by name."""


@dataclass(frozen=True, slots=True)
class TrailEntry:
    """One recorded event of a trail."""

    role: str  # input, decision, registry fact, rejection
    event: StoredEvent
    relies_on: tuple[int, ...] = ()  # positions of the registry facts a decision relied on
    cause: int | None = None  # position of the input a decision decides (of a revision: the
    # registry fact that caused it)
    trigger: int | None = None  # position of the later event that unparked it
    revises: int | None = None  # position of the decision a revision supersedes

    def as_dict(self) -> dict[str, Any]:
        e, p = self.event, self.event.payload
        entry: dict[str, Any] = {
            "position": e.position,
            "recorded_at": e.recorded_at.isoformat(),
            "role": self.role,
            "event_type": e.event_type,
            "event_id": str(e.event_id),
            "stream_id": e.stream_id,
            "payload": p,
            "metadata": e.metadata,
        }
        if self.role == "decision":
            entry |= {
                "motif": p.get("motif"),
                "base_legale": p.get("base_legale"),
                "regles_version": p.get("regles_version"),
                "faits_retenus": p.get("faits_retenus"),
                "relies_on_positions": list(self.relies_on),
                "cause_position": self.cause,
                "decided_on_position": self.trigger,
                "revises_position": self.revises,
            }
        return entry

    def lines(self) -> list[str]:
        """The entry for a person: what happened, then why (decisions)."""
        e, p = self.event, self.event.payload
        facts = " ".join(f"{k}={_short(v)}" for k, v in _ordered(p) if k not in _QUIET)
        out = [
            f"  #{e.position:<7} {e.recorded_at.astimezone(UTC):%Y-%m-%d %H:%M:%SZ}"
            f"  {self.role:<13}"
            f" {e.event_type:<27} {facts}"
        ]
        if self.role == "decision":
            bases = "; ".join(p.get("base_legale") or [])
            cause = f"#{self.cause}" if self.cause is not None else e.metadata.get("causation_id")
            later = f" · decided when #{self.trigger} was recorded" if self.trigger else ""
            if self.revises is not None:
                later += f" · revises #{self.revises}"
            out.append(
                f"{'':12}base légale: {bases} · règles {p.get('regles_version')}"
                f" · cause {cause}{later}"
            )
            if p.get("faits_retenus"):
                relied = ", ".join(f"#{n}" for n in self.relies_on) or "not found in the store"
                out.append(f"{'':12}faits retenus: {_short(p['faits_retenus'])} ({relied})")
        return out


def _ordered(fields: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(fields.items(), key=lambda kv: (_ORDER.get(kv[0], len(_ORDER)), kv[0]))


def _short(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in _ordered(value)) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_short(v) for v in value) + "]"
    return str(value)


@dataclass(slots=True)
class Trail:
    """A subject's trail in one service's store (as the record stood at `as_of`, a store
    position, when given)."""

    service: str
    subject: str
    entries: list[TrailEntry] = field(default_factory=list)
    as_of: int | None = None
    schema: str | None = None  # named when the store is one shard of several

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "subject": self.subject,
            "as_of_position": self.as_of,
            "entries": [e.as_dict() for e in self.entries],
        }

    def lines(self) -> list[str]:
        where = f" (schema {self.schema})" if self.schema else ""
        head = f"{self.service}{where}: {len(self.entries)} recorded events about {self.subject}"
        if self.as_of is not None:
            head += f", as the record stood at position #{self.as_of}"
        return [head, *(line for entry in self.entries for line in entry.lines())]


def _role(event: StoredEvent) -> str:
    if event.event_type in REGISTRY_EVENT_TYPES:
        return "registry fact"
    if event.event_type in INPUT_TYPES:
        return "input"
    return "rejection" if event.event_type == REJECTION else "decision"


def relied_on(decision: StoredEvent, facts: list[StoredEvent]) -> tuple[int, ...]:
    """The recorded facts (latest before the decision) matching its `faits_retenus`."""
    faits = decision.payload.get("faits_retenus") or {}
    wanted: list[tuple[str, dict[str, Any]]] = []
    if "organisme" in faits:
        wanted.append(("OrganismeDeclare", {"organisme_id": faits["organisme"]["organisme_id"]}))
    if "convention" in faits:
        wanted.append(
            ("ConventionConclue", {"convention_id": faits["convention"]["convention_id"]})
        )
    if "affiliation" in faits:
        a = faits["affiliation"]
        wanted.append(
            (
                "AffiliationEnregistree",
                {
                    "nir": decision.payload.get("nir"),
                    "organisme_id": a["organisme_id"],
                    "effet_du": a["effet_du"],
                },
            )
        )
    found = []
    for event_type, keys in wanted:
        matching = [
            f.position
            for f in facts
            if f.position < decision.position
            and f.event_type == event_type
            and all(f.payload.get(k) == v for k, v in keys.items())
        ]
        found.extend(matching[-1:])
    return tuple(sorted(found))


async def trail(
    store: EventStore, service: str, subject: str, *, as_of: int | None = None
) -> Trail:
    """Read the trail of `subject` (two passes: what names it, then what its inputs caused;
    then the registry facts its decisions relied on, and those that caused its revisions).

    With `as_of` (a store position), what the record held then: the effect dates say what
    is in force, the store's order what was known; nothing recorded later is shown."""
    about = await store.mentioning(subject, [])
    inputs = [str(e.event_id) for e in about if e.event_type in INPUT_TYPES]
    about = await store.mentioning(subject, inputs)
    if as_of is not None:
        about = [e for e in about if e.position <= as_of]
    decisions = [e for e in about if _role(e) == "decision"]
    causes = [str(d.metadata.get("causation_id")) for d in decisions if d.event_type in REVISIONS]
    faits = [d.payload.get("faits_retenus") or {} for d in decisions]
    organismes = sorted({f["organisme"]["organisme_id"] for f in faits if "organisme" in f})
    conventions = sorted({f["convention"]["convention_id"] for f in faits if "convention" in f})
    nirs = sorted(
        {d.payload["nir"] for d, f in zip(decisions, faits, strict=True) if "affiliation" in f}
    )
    facts = await store.registry_facts(organismes, conventions, nirs)
    facts += await store.events_by_id(causes)
    if as_of is not None:
        facts = [f for f in facts if f.position <= as_of]
    by_position = {e.position: e for e in [*about, *facts]}
    positions = {str(e.event_id): e.position for e in [*about, *facts]}
    result = Trail(service, subject, as_of=as_of)
    for position in sorted(by_position):
        event = by_position[position]
        role = _role(event)
        if role == "decision":
            cause = positions.get(str(event.metadata.get("causation_id")))
            trigger = positions.get(str(event.metadata.get("decided_on")))
            revises = positions.get(str(event.payload.get("decision_revisee_id")))
            relied = relied_on(event, facts)
            result.entries.append(TrailEntry(role, event, relied, cause, trigger, revises))
        else:
            result.entries.append(TrailEntry(role, event))
    return result
