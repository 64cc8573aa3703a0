"""Phases 4 and 5 of the scenario: registry facts recorded late, which revise decisions
already taken (docs/law.md, "Revisions"), then inputs that follow the revised outcomes.

Phase 4, once everything before is decided: a convention terminated with an effect date in
the past of decided contributions, a convention sent again with another list of caisses,
a cash-benefit convention terminated in the past of paid benefits, and affiliations
recorded late to another organism from an earlier date. Both services publish revisions
(`EncaissementRevise`, `VersementRevise`) for the decisions whose outcome changes.

The facts are chosen so that no decision depends on two of them: the conventions belong to
organisms (:data:`CONVENTION_FACTS_CONCERN`) nobody moved in phase 4 leaves or joins. They
reach the services on different partitions of the registry topic, in whatever order; with
disjoint targets, the revisions are the same in any order, and so are the run's figures.

Phase 5, once the services recorded phase 4: a payment on a contribution that moved to
another organism (held by the new one), a payment on one whose convention was terminated
(not imputed), and a benefit of a person who moved (paid by the new organism). They are also
what tells `mandat run` that the revisions are out: the relay publishes in store order, so
once their decisions are read, every revision recorded before them has been published.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from services.tools.demo.benefits import benefit_envelope
from services.tools.demo.figures import ij_forfaitaire
from services.tools.demo.model import COTISATIONS, FACT, PRESTATIONS, REFERENTIEL
from services.tools.demo.people import FORCED_COUNT, organisms_of
from services.tools.demo.registry import affiliation, conclusion
from services.tools.demo.registry_data import CONVENTIONS

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder
    from services.tools.demo.people import Person

LATE_FACTS: Final = 4
FOLLOW_UPS: Final = 5

TERMINATED: Final = {  # convention -> its new end, recorded late
    "CNV-2017-006": date(2017, 6, 30),  # OC-SA-01, collection: contributions from 2017-07
    "CNV-2017-012": date(2017, 12, 31),  # OC-OSS-01, benefits: those of 2018
}
RESENT: Final = {"CNV-2017-011": ("PL-ARA", "PL-IDF")}  # OC-GSA-02: drops PL-OCC, adds IDF
CONVENTION_FACTS_CONCERN: Final = frozenset(
    c.organisme_id for c in CONVENTIONS if c.convention_id in {*TERMINATED, *RESENT}
)
"""Organisms whose conventions change in phase 4: no one moves from or to them then."""
MOVED_FROM: Final = date(2017, 1, 1)
"""The effect date of the affiliations recorded late: before every revisable decision."""
MOVED_SHARE: Final = 0.04
"""Of the other persons who may move, about this share does."""
_FIRST_MOVED: Final = (0, "OC-GSA-01")
"""A forced person who always moves (index, new organism): every scenario has a move."""
_RECORDED: Final = date(2019, 2, 1)
"""When the late facts are recorded (their envelopes' date)."""


def add_late_facts(b: Builder) -> None:
    """Phase 4 (late registry facts) and phase 5 (inputs after the revisions)."""
    for convention_id, au in TERMINATED.items():
        payload = {"convention_id": b.t(convention_id), "effet_au": au.isoformat()}
        _fact(b, "ConventionResiliee", payload, convention_id, f"late end {convention_id}")
    for c in CONVENTIONS:
        if c.convention_id in RESENT:
            payload = conclusion(b, c) | {"caisses_de_base": list(RESENT[c.convention_id])}
            _fact(b, "ConventionConclue", payload, c.convention_id, f"resent {c.convention_id}")
    moved = _movers(b)
    for person, organisme in moved:
        doc = affiliation(b, person, organisme, "CHOIX", MOVED_FROM, recorded=_RECORDED)
        subject = f"late affiliation #{person.index}"
        b.revising.append(
            b.message(REFERENTIEL, person.nir, doc, phase=LATE_FACTS, kind=FACT, subject=subject)
        )
    _follow_ups(b, moved)


def _fact(b: Builder, event_type: str, payload: dict[str, Any], key: str, subject: str) -> None:
    doc = b.envelope(event_type, payload, _RECORDED, "caisse-nationale/RSI", None)
    b.revising.append(
        b.message(REFERENTIEL, b.t(key), doc, phase=LATE_FACTS, kind=FACT, subject=subject)
    )


def _may_move(person: Person) -> bool:
    """Affiliated to one organism throughout, from before the new effect date, on time, and
    not to an organism whose conventions change in phase 4."""
    return (
        person.change is None
        and not person.late
        and person.debut < MOVED_FROM - timedelta(days=31)
        and person.organisme not in CONVENTION_FACTS_CONCERN
    )


def _movers(b: Builder) -> list[tuple[Person, str]]:
    """(person, new organism) of the affiliations recorded late."""
    index, organisme = _FIRST_MOVED
    moved = [(b.people[index], organisme)]
    for person in b.people[FORCED_COUNT:]:
        if _may_move(person) and b.rng.random() < MOVED_SHARE:
            others = [
                o
                for o in organisms_of(person.categorie)
                if o != person.organisme and o not in CONVENTION_FACTS_CONCERN
            ]
            moved.append((person, b.rng.choice(others)))
    return moved


def _follow_ups(b: Builder, moved: list[tuple[Person, str]]) -> None:
    """A payment on a contribution that moved, one on a contribution whose convention ended
    late, and a benefit of the person who always moves."""
    first = moved[0][0]
    _payment(b, first, _last_2017(first))
    terminated = next(c for c in CONVENTIONS if c.convention_id == "CNV-2017-006")
    for person in b.people:
        if (
            person.organisme == terminated.organisme_id
            and person.change is None
            and not person.late
            and person.caisse in terminated.caisses_de_base
        ):
            after = [c for c in person.cotisations if c[1] > TERMINATED["CNV-2017-006"]]
            if after and after[0][1].year == 2017:
                _payment(b, person, after[0])
                break
    fait = date(2018, 3, 5)
    nature, days = ("IJ_MATERNITE", 44) if first.female else ("IJ_PATERNITE", 11)
    periode = (fait, fait + timedelta(days=days - 1))
    doc, subject = benefit_envelope(
        b, first, nature, fait, periode, ij_forfaitaire(2018) * days, fait + timedelta(days=9)
    )
    b.follow_ups.append(
        b.message(PRESTATIONS, first.nir, doc, phase=FOLLOW_UPS, subject=f"after move {subject}")
    )


def _last_2017(person: Person) -> tuple[str, date] | None:
    in_2017 = [c for c in person.cotisations if c[1].year == 2017]
    return in_2017[-1] if in_2017 else None


def _payment(b: Builder, person: Person, cotisation: tuple[str, date] | None) -> None:
    """A payment of 100.00 € on `cotisation`, received after the late facts."""
    if cotisation is None:
        return
    cotisation_id, _debut = cotisation
    paiement_id = b.t(b.next_id("PAY", 7))
    payload = {
        "paiement_id": paiement_id,
        "cotisation_id": cotisation_id,
        "nir": person.nir,
        "montant_cents": 10_000,
        "recu_le": _RECORDED.isoformat(),
    }
    source = f"caisse-de-base/{person.caisse}"
    doc = b.envelope("PaiementRecu", payload, _RECORDED, source, cotisation_id)
    subject = f"after revision {b.local(paiement_id)}"
    b.follow_ups.append(b.message(COTISATIONS, person.nir, doc, phase=FOLLOW_UPS, subject=subject))
