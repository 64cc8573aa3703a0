"""Phase 2 of the scenario, collection side: contributions (per year or per half-year), their
payments (full, in two parts, in excess, partial, none) and unpaid notices."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from services.tools.demo.figures import annual_contribution, days, div
from services.tools.demo.model import COTISATIONS

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder
    from services.tools.demo.people import Person

# payment patterns of a contribution: name -> weight
_PATTERNS: Final = {
    "FULL": 60,
    "TWO_PARTS": 10,
    "EXCESS": 5,
    "PARTIAL_UNPAID": 8,
    "UNPAID": 8,
    "PAID_THEN_NOTICE": 4,
    "PENDING": 5,
}
_NOTICED: Final = frozenset({"PARTIAL_UNPAID", "UNPAID", "PAID_THEN_NOTICE"})


@dataclass(frozen=True)
class _Call:
    """One contribution called from a person: what its messages share."""

    person: Person
    cotisation_id: str  # tagged
    parks: bool  # its affiliation is published late: parked until then

    @property
    def source(self) -> str:
        return f"caisse-de-base/{self.person.caisse}"


def add_contributions(b: Builder, person: Person, year: int) -> None:
    """The contributions of `person` for `year` (prorated to the active part of the year)."""
    active = person.actif(date(year, 1, 1), date(year, 12, 31))
    if active is None:
        return
    start, end = active
    total = annual_contribution(person.revenus[year - 1 if year > 2016 else 2016], year)
    total = div(total * days(start, end), days(date(year, 1, 1), date(year, 12, 31)))
    periods = [(start, end)]
    middle = date(year, 7, 1)
    if person.semestriel and start < middle <= end:
        periods = [(start, middle - timedelta(days=1)), (middle, end)]
    remaining = total
    for n, (debut, fin) in enumerate(periods):
        # the last period takes what rounding left, so that the periods add up to the total
        due = (
            remaining if n == len(periods) - 1 else div(total * days(debut, fin), days(start, end))
        )
        remaining -= due
        if due > 0:
            _add_contribution(b, person, year, debut, fin, due)


def _add_contribution(
    b: Builder, person: Person, year: int, debut: date, fin: date, due: int
) -> None:
    """A CotisationDue, then its payments and unpaid notice as its pattern says."""
    rng = b.rng
    call = _Call(
        person,
        b.t(b.next_id("COT", 6, year)),
        person.late and person.categorie == "PROFESSION_LIBERALE" and year == 2017,
    )
    person.cotisations.append((call.cotisation_id, debut))
    exigible = debut + timedelta(days=35)
    payload = {
        "cotisation_id": call.cotisation_id,
        "nir": person.nir,
        "categorie": person.categorie,
        "caisse_de_base": person.caisse,
        "periode": {"debut": debut.isoformat(), "fin": fin.isoformat()},
        "montant_cents": due,
        "exigible_le": exigible.isoformat(),
    }
    _publish(b, call, "CotisationDue", payload, debut, b.local(call.cotisation_id))
    pattern = rng.choices(list(_PATTERNS), list(_PATTERNS.values()))[0]
    payments = _payments(rng, pattern, due)
    recu = exigible + timedelta(days=rng.randint(-25, 20))
    for amount in payments:
        paiement_id = b.t(b.next_id("PAY", 7))
        payload = {
            "paiement_id": paiement_id,
            "cotisation_id": call.cotisation_id,
            "nir": person.nir,
            "montant_cents": amount,
            "recu_le": recu.isoformat(),
        }
        _publish(b, call, "PaiementRecu", payload, recu, b.local(paiement_id))
        recu += timedelta(days=rng.randint(20, 40))
    if pattern in _NOTICED:
        paid = sum(payments) if pattern == "PARTIAL_UNPAID" else 0
        # noticed after the due date, and after the last payment
        constatee = max(exigible + timedelta(days=rng.randint(30, 60)), recu + timedelta(days=1))
        payload = {
            "cotisation_id": call.cotisation_id,
            "nir": person.nir,
            "restant_du_cents": max(1, due - paid),
            "constatee_le": constatee.isoformat(),
        }
        subject = f"impayé {b.local(call.cotisation_id)}"
        _publish(b, call, "CotisationImpayee", payload, constatee, subject)


def _payments(rng: random.Random, pattern: str, due: int) -> list[int]:
    """The amounts paid for a contribution of `due` cents under `pattern`."""
    if pattern in ("FULL", "PAID_THEN_NOTICE"):
        return [due]
    if pattern == "TWO_PARTS":
        first = max(1, min(due - 1, due * rng.randint(30, 70) // 100))
        return [first, due - first] if due > 1 else [due]
    if pattern == "EXCESS":
        return [due + rng.choice((5_000, 10_000, 12_000, 25_000, due // 10 + 1))]
    if pattern == "PARTIAL_UNPAID" and due > 1:
        return [max(1, due * rng.randint(20, 70) // 100)]
    return []


def _publish(
    b: Builder, call: _Call, event_type: str, payload: dict[str, Any], when: date, subject: str
) -> None:
    doc = b.envelope(event_type, payload, when, call.source, call.cotisation_id)
    b.add(when, b.message(COTISATIONS, call.person.nir, doc, subject=subject, parks=call.parks))
