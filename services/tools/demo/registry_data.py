"""The registry of the demo scenario: organisms of every legal form, and their conventions
over several caisses de base (ids without the run tag)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final

REGIONS: Final = ("IDF", "PACA", "ARA", "OCC", "NAQ", "HDF")
REGION_WEIGHTS: Final = (30, 15, 17, 12, 13, 13)
PL_CAISSES: Final = tuple(f"PL-{r}" for r in REGIONS)
AC_CAISSES: Final = tuple(f"AC-{r}" for r in REGIONS)

FORMES: Final = (
    "MUTUELLE",
    "SOCIETE_ASSURANCE",
    "GROUPEMENT_SOCIETES_ASSURANCE",
    "ORGANISME_SECURITE_SOCIALE",
)
ENCAISSEMENT: Final = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
VERSEMENT: Final = "VERSEMENT_PRESTATIONS_ESPECES"


@dataclass(frozen=True)
class Organism:
    """An organism of the registry (id without the run tag)."""

    organisme_id: str
    nom: str
    forme_juridique: str


ORGANISMS: Final = (
    Organism("OC-MUT-01", "Mutuelle des Professions Libérales", "MUTUELLE"),
    Organism("OC-MUT-02", "Mutuelle Artisanale et Commerciale", "MUTUELLE"),
    Organism("OC-MUT-03", "Mutuelle Santé Indépendants du Sud", "MUTUELLE"),
    Organism("OC-SA-01", "Libéra Assurances", "SOCIETE_ASSURANCE"),
    Organism("OC-SA-02", "Hexagone Prévoyance", "SOCIETE_ASSURANCE"),
    Organism(
        "OC-GSA-01", "Groupement des Assureurs des Indépendants", "GROUPEMENT_SOCIETES_ASSURANCE"
    ),
    Organism("OC-GSA-02", "Union Régionale d'Assureurs Maladie", "GROUPEMENT_SOCIETES_ASSURANCE"),
    Organism(
        "OC-OSS-01", "Caisse Régionale des Indépendants Île-de-France", "ORGANISME_SECURITE_SOCIALE"
    ),
    Organism("OC-OSS-02", "Caisse Maladie Régionale Rhône-Alpes", "ORGANISME_SECURITE_SOCIALE"),
)


@dataclass(frozen=True)
class Convention:
    """A convention of the registry (ids without the run tag)."""

    convention_id: str
    organisme_id: str
    objet: str
    caisses_de_base: tuple[str, ...]
    effet_du: date
    effet_au: date | None = None
    resiliee_au: date | None = None  # terminated by a ConventionResiliee


# One convention a line: its id, its organism, its object (E: encaissement, V: versement),
# in effect from, its caisses de base (PL-* / AC-*: every caisse of that regime), then
# maybe `au=DATE` (the end of its term) or `resiliee=DATE` (terminated by a
# ConventionResiliee on that date).
_CONVENTION_TABLE: Final = """
CNV-2017-001  OC-MUT-01  E  2017-01-01  PL-IDF,PL-PACA,PL-ARA,PL-OCC
CNV-2017-002  OC-MUT-01  V  2017-01-01  PL-IDF,PL-PACA,PL-ARA,PL-OCC,AC-IDF,AC-PACA
CNV-2017-003  OC-MUT-02  E  2017-01-01  PL-NAQ,PL-HDF
CNV-2017-004  OC-MUT-02  V  2017-01-01  AC-IDF,AC-ARA,AC-NAQ,AC-HDF,PL-NAQ,PL-HDF
CNV-2017-005  OC-MUT-03  E  2017-07-01  PL-PACA,PL-OCC
CNV-2017-006  OC-SA-01   E  2017-01-01  PL-IDF,PL-ARA,PL-NAQ,PL-HDF
CNV-2017-007  OC-SA-01   V  2017-01-01  PL-IDF,PL-ARA                      au=2018-12-31
CNV-2017-008  OC-SA-02   E  2017-01-01  PL-IDF,PL-PACA                     resiliee=2017-06-30
CNV-2017-009  OC-GSA-01  E  2017-01-01  PL-*
CNV-2017-010  OC-GSA-01  V  2017-01-01  PL-*,AC-*
CNV-2017-011  OC-GSA-02  E  2017-01-01  PL-ARA,PL-OCC
CNV-2017-012  OC-OSS-01  V  2017-01-01  AC-IDF,AC-HDF,PL-IDF
"""
_OBJECTS: Final = {"E": ENCAISSEMENT, "V": VERSEMENT}
_REGIMES: Final = {"PL-*": PL_CAISSES, "AC-*": AC_CAISSES}


def _convention(line: str) -> Convention:
    """A line of the table as a Convention."""
    convention_id, organisme_id, objet, effet_du, caisses, *end = line.split()
    ends = {name: day for name, _, day in (e.partition("=") for e in end)}
    return Convention(
        convention_id,
        organisme_id,
        _OBJECTS[objet],
        tuple(c for part in caisses.split(",") for c in _REGIMES.get(part, (part,))),
        date.fromisoformat(effet_du),
        effet_au=_day(ends.get("au")),
        resiliee_au=_day(ends.get("resiliee")),
    )


def _day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


CONVENTIONS: Final = tuple(_convention(line) for line in _CONVENTION_TABLE.strip().splitlines())
