"""Phase 2 of the scenario, benefits side: cash benefits of every nature (IJ maladie,
maternité, paternité, allocation de repos maternel)."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Final

from services.tools.demo.figures import (
    CATEGORIES,
    IJ_CARENCE_DAYS,
    NATURES,
    PATERNITE_DAYS,
    PMSS,
    YEARS,
    ij_forfaitaire,
    ij_maladie,
)
from services.tools.demo.model import PRESTATIONS

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder
    from services.tools.demo.people import Person

_NATURES_OF: Final = {  # professions libérales: no IJ maladie before IJ_MALADIE_PL_FROM
    "PROFESSION_LIBERALE": ("IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL", "IJ_PATERNITE"),
    "ARTISAN": NATURES,
    "COMMERCANT": NATURES,
}
_NATURE_WEIGHTS: Final = {
    "IJ_MALADIE": 70,
    "IJ_MATERNITE": 12,
    "ALLOCATION_REPOS_MATERNEL": 12,
    "IJ_PATERNITE": 8,
}
_FEMALE: Final = frozenset({"IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL"})
_MALE: Final = frozenset({"IJ_PATERNITE"})
COMBOS: Final = tuple((c, n) for c in CATEGORIES for n in _NATURES_OF[c])
"""Every plausible (category, nature): each is generated at least once."""


def add_benefits(b: Builder, count: int) -> None:
    """`count` benefits: every combination first, then the late persons', then drawn ones."""
    rng = b.rng
    late = [p for p in b.people if p.late]
    for n in range(count):
        if n < len(COMBOS):
            categorie, nature = COMBOS[n]
            person = _pick_person(b, categorie, nature)
        elif n - len(COMBOS) < len(late):  # the late affiliations govern benefits too
            person = late[n - len(COMBOS)]
            nature = "IJ_MATERNITE" if person.female else "IJ_PATERNITE"
        else:
            categorie = rng.choices(CATEGORIES, (45, 28, 27))[0]
            natures = _NATURES_OF[categorie]
            nature = rng.choices(natures, [_NATURE_WEIGHTS[x] for x in natures])[0]
            person = _pick_person(b, categorie, nature)
        if person is not None:
            _add_benefit(b, person, nature)


def _pick_person(b: Builder, categorie: str, nature: str) -> Person | None:
    """A person of `categorie` who can receive `nature` (of the right sex), if any."""
    key = (categorie, nature in _FEMALE, nature in _MALE)
    candidates = b.by_category.get(key)
    if candidates is None:
        candidates = [
            p
            for p in b.people
            if p.categorie == categorie
            and (nature not in _FEMALE or p.female)
            and (nature not in _MALE or not p.female)
        ]
        b.by_category[key] = candidates
    return b.rng.choice(candidates) if candidates else None


def _add_benefit(b: Builder, person: Person, nature: str) -> None:
    """A PrestationEspecesDue of `nature`, on a day when `person` is active."""
    rng = b.rng
    year = rng.choices(YEARS, (15, 45, 40))[0]
    active = person.actif(date(year, 1, 1), date(year, 12, 31)) or person.actif(
        date(2016, 1, 1), date(2018, 12, 31)
    )
    if active is None:
        return
    start, end = active
    fait = start + timedelta(days=rng.randint(0, max(0, (end - start).days)))
    days, montant = _amount(rng, person, nature, fait.year)
    periode = (fait, fait + timedelta(days=days - 1)) if days else None
    declared = fait + timedelta(days=rng.randint(2, 20))
    doc, subject = benefit_envelope(b, person, nature, fait, periode, montant, declared)
    parks = person.late and fait.year >= 2017
    b.add(declared, b.message(PRESTATIONS, person.nir, doc, subject=subject, parks=parks))


def benefit_envelope(
    b: Builder,
    person: Person,
    nature: str,
    fait: date,
    periode: tuple[date, date] | None,
    montant: int,
    declared: date,
) -> tuple[dict[str, Any], str]:
    """The envelope of a PrestationEspecesDue of `person` declared on `declared`, and its
    subject (the benefit's id without the run tag)."""
    prestation_id = b.t(b.next_id("PRE", 6, fait.year))
    payload = {
        "prestation_id": prestation_id,
        "nir": person.nir,
        "categorie": person.categorie,
        "caisse_de_base": person.caisse,
        "nature": nature,
        "fait_generateur_le": fait.isoformat(),
        "periode": {"debut": periode[0].isoformat(), "fin": periode[1].isoformat()}
        if periode
        else None,
        "montant_cents": montant,
    }
    source = f"caisse-de-base/{person.caisse}"
    doc = b.envelope("PrestationEspecesDue", payload, declared, source, prestation_id)
    return doc, b.local(prestation_id)


def _amount(rng: random.Random, person: Person, nature: str, year: int) -> tuple[int, int]:
    """Days covered (0 for the lump-sum allocation) and amount in cents."""
    if nature == "IJ_MALADIE":
        days = rng.choice((4, 5, 7, 8, 10, 12, 15, 15, 21, 30, 45, 60, 90))
        return days, ij_maladie(person.revenus[year], year) * (days - IJ_CARENCE_DAYS)
    if nature == "IJ_MATERNITE":
        days = rng.choices((44, 59, 74), (70, 15, 15))[0]
        return days, ij_forfaitaire(year) * days
    if nature == "IJ_PATERNITE":
        return PATERNITE_DAYS, ij_forfaitaire(year) * PATERNITE_DAYS
    return 0, PMSS[year]
