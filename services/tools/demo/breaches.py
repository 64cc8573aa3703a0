"""Phase 2 (and 1) of the scenario, contract breaches: messages that break contract v1, each
rejected by the services of its topic."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from services.tools.demo.disorder import of_type
from services.tools.demo.model import BREACH, REFERENTIEL, Message
from services.tools.demo.registry import affiliation

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder

_BREACHES: Final = (  # event type of the original -> how its copy breaks the contract
    ("PaiementRecu", "bad JSON"),
    ("CotisationDue", "unknown event_type"),
    ("PrestationEspecesDue", "invalid NIR key"),
    ("PaiementRecu", "negative amount"),
    ("PrestationEspecesDue", "missing field"),
)


def add_breaches(b: Builder) -> None:
    """A round of each breach per 5,000 of size, then an affiliation of an unknown mode."""
    rng = b.rng
    # drawn from the feed as it was before any breach
    sources = {t: of_type(b.feed, t) for t, _ in _BREACHES}
    for _ in range(1 + b.size // 5000):
        for event_type, what in _BREACHES:
            entry = rng.choice(sources[event_type])
            b.add(entry.when + timedelta(days=1), _breach(b, entry.message, what))
    person = rng.choice([p for p in b.people if not p.late])
    doc = affiliation(b, person, person.organisme, "AUTOMATIQUE", person.debut)
    b.registry.append(
        b.message(
            REFERENTIEL,
            person.nir,
            doc,
            phase=1,
            kind=BREACH,
            subject="affiliation",
            note="unknown mode",
        )
    )


def _breach(b: Builder, original: Message, what: str) -> Message:
    """A copy of `original` under a new event id, broken as `what` says."""
    doc = original.document()
    copy = b.again(doc, dict(doc["payload"]), date.fromisoformat(doc["occurred_at"][:10]))
    _break(copy, what)
    value = b.encode(copy)
    if what == "bad JSON":
        value = value[: len(value) * 2 // 3]
    return Message(
        original.topic,
        original.key,
        value,
        2,
        BREACH,
        copy["event_id"],
        copy["event_type"],
        original.subject,
        False,
        what,
    )


def _break(document: dict[str, Any], what: str) -> None:
    """Break the envelope `document` in place (bad JSON is broken once encoded)."""
    payload = document["payload"]
    if what == "unknown event_type":
        document["event_type"] = "CotisationAnnulee"
    elif what == "invalid NIR key":
        key = int(payload["nir"][13:])
        payload["nir"] = payload["nir"][:13] + f"{key % 97 + 1:02d}"
    elif what == "negative amount":
        payload["montant_cents"] = -payload["montant_cents"]
    elif what == "missing field":
        del payload["caisse_de_base"]
