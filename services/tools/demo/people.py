"""The insured of the scenario: who they are, where they are affiliated, and when active.

The first persons are forced, so that every category, sex and organism appears whatever
the size; the others are drawn. Each person's contributions are added as the person is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Final

from contracts.nir import make_nir
from services.tools.demo.contributions import add_contributions
from services.tools.demo.figures import CATEGORIES, YEARS
from services.tools.demo.registry_data import REGION_WEIGHTS, REGIONS

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder

# where the insured are affiliated: organism id -> (its weight among the professions
# libérales, its weight among the artisans and commerçants); 0: none of them is there
_ORGANISM_WEIGHTS: Final = {
    "OC-MUT-01": (20, 10),
    "OC-MUT-02": (5, 35),
    "OC-MUT-03": (10, 0),
    "OC-SA-01": (15, 5),
    "OC-SA-02": (10, 0),
    "OC-GSA-01": (15, 15),
    "OC-GSA-02": (10, 0),
    "OC-OSS-01": (10, 20),
    "OC-OSS-02": (5, 15),
}
_PL_ORGANISMS, _AC_ORGANISMS = (
    {
        organism: weights[column]
        for organism, weights in _ORGANISM_WEIGHTS.items()
        if weights[column]
    }
    for column in (0, 1)
)
_DEPARTEMENTS: Final = (
    *("75", "92", "93", "94", "13", "06", "69", "38", "31", "34"),
    *("33", "44", "59", "62", "67", "35", "2A", "2B", "97"),
)

_LATE: Final = 3
"""The forced person whose affiliation is published after its contributions and benefits."""
_FORCED: Final = (  # categorie, organism, female, region, semestriel, changes organism
    ("PROFESSION_LIBERALE", "OC-MUT-01", True, "IDF", False, False),
    ("ARTISAN", "OC-MUT-02", True, "ARA", False, False),
    ("PROFESSION_LIBERALE", "OC-MUT-03", False, "PACA", True, False),
    ("PROFESSION_LIBERALE", "OC-SA-01", False, "IDF", False, False),
    ("PROFESSION_LIBERALE", "OC-SA-02", True, "IDF", True, False),
    ("COMMERCANT", "OC-GSA-01", True, "NAQ", False, False),
    ("PROFESSION_LIBERALE", "OC-GSA-02", True, "ARA", False, True),
    ("ARTISAN", "OC-OSS-01", False, "IDF", False, False),
    ("COMMERCANT", "OC-OSS-02", False, "HDF", False, False),
    ("PROFESSION_LIBERALE", "OC-OSS-01", True, "IDF", False, False),
)
FORCED_COUNT: Final = len(_FORCED)


@dataclass
class Person:
    """An insured of the scenario (organism ids without the run tag)."""

    index: int
    nir: str
    female: bool
    categorie: str
    caisse: str
    organisme: str
    mode: str
    debut: date  # start of activity (and of the first affiliation)
    fin: date | None  # end of activity
    semestriel: bool  # contributions called per half-year rather than per year
    revenus: dict[int, int]  # income per year, cents
    change: tuple[date, str] | None = None  # a new affiliation during the period
    late: bool = False  # affiliations published after the contributions and benefits
    cotisations: list[tuple[str, date]] = field(default_factory=list)  # (tagged id, debut)

    def actif(self, debut: date, fin: date) -> tuple[date, date] | None:
        """The part of [debut, fin] when the person is active, if any."""
        start, end = max(debut, self.debut), min(fin, self.fin or fin)
        return (start, end) if start <= end else None


def organisms_of(categorie: str) -> dict[str, int]:
    return _PL_ORGANISMS if categorie == "PROFESSION_LIBERALE" else _AC_ORGANISMS


def _traits(rng: random.Random) -> tuple[str, str, bool, str, bool, bool]:
    """categorie, organism, female, region, semestriel, changes organism: drawn."""
    categorie = rng.choices(CATEGORIES, (50, 25, 25))[0]
    weights = organisms_of(categorie)
    organisme = rng.choices(list(weights), list(weights.values()))[0]
    female = rng.random() < 0.45
    region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
    semestriel = rng.random() < 0.3
    changes = rng.random() < 0.1
    return categorie, organisme, female, region, semestriel, changes


def _activity(rng: random.Random, forced: bool) -> tuple[date, date | None]:
    """Start and end of activity (the forced persons are active throughout)."""
    if forced or rng.random() < 0.7:  # in activity before 2016
        debut = date(rng.randint(2003, 2015), rng.randint(1, 12), 1)
    else:
        debut = date(rng.choice(YEARS), rng.randint(1, 12), rng.choice((1, 1, 15)))
    fin = None
    if not forced and rng.random() < 0.08:
        fin = date(rng.choice((2017, 2018)), rng.randint(1, 12), 1) - timedelta(days=1)
        if fin < debut + timedelta(days=90):
            fin = None
    return debut, fin


def _revenus(rng: random.Random) -> dict[int, int]:
    base = rng.lognormvariate(10.4, 0.55)  # median about 33,000 €
    return {
        y: int(min(max(base * rng.uniform(0.85, 1.2), 6_000), 250_000)) // 100 * 10_000
        for y in YEARS
    }


def _new_nir(b: Builder, female: bool, born: int, month: int) -> str:
    """A NIR not yet used in this scenario (drawn from the run tag's source)."""
    ids = b.ids_rng
    while True:
        dept = ids.choice(_DEPARTEMENTS)
        place = (
            f"{dept}{ids.randint(1, 989):03d}"
            if dept != "97"
            else f"97{ids.randint(1, 6)}{ids.randint(1, 89):02d}"
        )
        body = f"{2 if female else 1}{born % 100:02d}{month:02d}{place}{ids.randint(1, 999):03d}"
        nir = make_nir(body)
        if nir not in b.nirs:
            b.nirs.add(nir)
            return nir


def add_person(b: Builder) -> None:
    """The next person, and their contributions over the years."""
    rng, index = b.rng, len(b.people)
    forced = index < len(_FORCED)
    categorie, organisme, female, region, semestriel, changes = (
        _FORCED[index] if forced else _traits(rng)
    )
    caisse = f"{'PL' if categorie == 'PROFESSION_LIBERALE' else 'AC'}-{region}"
    born = rng.randint(1955, 1993)
    debut, fin = _activity(rng, forced)
    revenus = _revenus(rng)
    mode = "OFFICE" if rng.random() < 0.2 else "CHOIX"
    nir = _new_nir(b, female, born, rng.randint(1, 12))
    person = Person(
        index, nir, female, categorie, caisse, organisme, mode, debut, fin, semestriel, revenus
    )
    if changes:
        others = [o for o in organisms_of(categorie) if o != organisme]
        when = date(rng.choice((2016, 2017, 2017, 2018)), rng.choice((4, 7, 10)), 1)
        if when > debut + timedelta(days=60) and (fin is None or when < fin):
            person.change = (when, rng.choice(others))
    person.late = index == _LATE or (not forced and rng.random() < 0.03)
    b.people.append(person)
    for year in YEARS:
        add_contributions(b, person, year)
