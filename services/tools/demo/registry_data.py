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


CONVENTIONS: Final = (
    Convention(
        "CNV-2017-001",
        "OC-MUT-01",
        ENCAISSEMENT,
        ("PL-IDF", "PL-PACA", "PL-ARA", "PL-OCC"),
        date(2017, 1, 1),
    ),
    Convention(
        "CNV-2017-002",
        "OC-MUT-01",
        VERSEMENT,
        ("PL-IDF", "PL-PACA", "PL-ARA", "PL-OCC", "AC-IDF", "AC-PACA"),
        date(2017, 1, 1),
    ),
    Convention("CNV-2017-003", "OC-MUT-02", ENCAISSEMENT, ("PL-NAQ", "PL-HDF"), date(2017, 1, 1)),
    Convention(
        "CNV-2017-004",
        "OC-MUT-02",
        VERSEMENT,
        ("AC-IDF", "AC-ARA", "AC-NAQ", "AC-HDF", "PL-NAQ", "PL-HDF"),
        date(2017, 1, 1),
    ),
    Convention("CNV-2017-005", "OC-MUT-03", ENCAISSEMENT, ("PL-PACA", "PL-OCC"), date(2017, 7, 1)),
    Convention(
        "CNV-2017-006",
        "OC-SA-01",
        ENCAISSEMENT,
        ("PL-IDF", "PL-ARA", "PL-NAQ", "PL-HDF"),
        date(2017, 1, 1),
    ),
    Convention(
        "CNV-2017-007",
        "OC-SA-01",
        VERSEMENT,
        ("PL-IDF", "PL-ARA"),
        date(2017, 1, 1),
        effet_au=date(2018, 12, 31),
    ),
    Convention(
        "CNV-2017-008",
        "OC-SA-02",
        ENCAISSEMENT,
        ("PL-IDF", "PL-PACA"),
        date(2017, 1, 1),
        resiliee_au=date(2017, 6, 30),
    ),
    Convention("CNV-2017-009", "OC-GSA-01", ENCAISSEMENT, PL_CAISSES, date(2017, 1, 1)),
    Convention("CNV-2017-010", "OC-GSA-01", VERSEMENT, PL_CAISSES + AC_CAISSES, date(2017, 1, 1)),
    Convention("CNV-2017-011", "OC-GSA-02", ENCAISSEMENT, ("PL-ARA", "PL-OCC"), date(2017, 1, 1)),
    Convention(
        "CNV-2017-012", "OC-OSS-01", VERSEMENT, ("AC-IDF", "AC-HDF", "PL-IDF"), date(2017, 1, 1)
    ),
)
