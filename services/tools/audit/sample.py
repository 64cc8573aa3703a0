"""A small explicit history that takes every path of both services: the audit's reference
example (tests, documentation).

Collection: a delegated contribution with two payments and a contentieux; one collected by
the URSSAF (2018); one whose organism is ineligible, with a payment and an unpaid notice;
one parked for its affiliation with a payment parked behind it, both decided when the
affiliation arrives; a payment for an unknown contribution; one contract breach.
Benefits: two delegated payments, a direct one, one before 2017, one parked then decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.nir import make_nir
from services.tools.audit.feed import Feeder

NIR_A = make_nir("1750175123456")  # affiliated to a mutual holding both conventions
NIR_B = make_nir("2820275234567")  # affiliated only after her contribution arrives
NIR_C = make_nir("1900613345678")  # affiliated to an ineligible organism
MUTUELLE, ASSUREUR, OSS = "OC-MUT-01", "OC-ASS-02", "OC-OSS-03"


@dataclass(frozen=True)
class Sample:
    """What the sample recorded, by name."""

    delegated: str = "COT-A-2017"  # 2 payments then a contentieux
    urssaf: str = "COT-A-2018"
    ineligible: str = "COT-C-2017"
    parked: str = "COT-B-2017"
    parked_payment: str = "PAY-B-1"
    orphan_payment: str = "PAY-X-1"
    benefit_delegated: str = "PRE-A-1"
    benefit_direct: str = "PRE-C-1"
    benefit_parked: str = "PRE-B-1"


def registry() -> list[tuple[str, dict[str, Any]]]:
    """Organisms, conventions and the first affiliations."""
    return [
        (
            "OrganismeDeclare",
            {
                "organisme_id": MUTUELLE,
                "nom": "Mutuelle des Professions Libérales",
                "forme_juridique": "MUTUELLE",
            },
        ),
        (
            "OrganismeDeclare",
            {
                "organisme_id": ASSUREUR,
                "nom": "Assurances Réunies",
                "forme_juridique": "SOCIETE_ASSURANCE",
            },
        ),
        (
            "OrganismeDeclare",
            {
                "organisme_id": OSS,
                "nom": "Caisse Régionale",
                "forme_juridique": "ORGANISME_SECURITE_SOCIALE",
            },
        ),
        (
            "ConventionConclue",
            {
                "convention_id": "CNV-ENC-01",
                "organisme_id": MUTUELLE,
                "objet": "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
                "caisses_de_base": ["PL-IDF", "PL-PACA"],
                "effet_du": "2017-01-01",
                "effet_au": None,
            },
        ),
        (
            "ConventionConclue",
            {
                "convention_id": "CNV-VER-01",
                "organisme_id": MUTUELLE,
                "objet": "VERSEMENT_PRESTATIONS_ESPECES",
                "caisses_de_base": ["PL-IDF"],
                "effet_du": "2017-01-01",
            },
        ),
        (
            "AffiliationEnregistree",
            {"nir": NIR_A, "organisme_id": MUTUELLE, "mode": "CHOIX", "effet_du": "2016-01-01"},
        ),
        (
            "AffiliationEnregistree",
            {"nir": NIR_C, "organisme_id": OSS, "mode": "OFFICE", "effet_du": "2016-06-01"},
        ),
    ]


def due(
    cotisation_id: str,
    nir: str,
    year: int,
    cents: int,
    *,
    caisse: str = "PL-IDF",
    categorie: str = "PROFESSION_LIBERALE",
) -> tuple[str, dict[str, Any]]:
    return (
        "CotisationDue",
        {
            "cotisation_id": cotisation_id,
            "nir": nir,
            "categorie": categorie,
            "caisse_de_base": caisse,
            "periode": {"debut": f"{year}-01-01", "fin": f"{year}-12-31"},
            "montant_cents": cents,
            "exigible_le": f"{year}-02-05",
        },
    )


def payment(
    paiement_id: str, cotisation_id: str, nir: str, cents: int
) -> tuple[str, dict[str, Any]]:
    return (
        "PaiementRecu",
        {
            "paiement_id": paiement_id,
            "cotisation_id": cotisation_id,
            "nir": nir,
            "montant_cents": cents,
            "recu_le": "2017-03-01",
        },
    )


def unpaid(cotisation_id: str, nir: str, cents: int) -> tuple[str, dict[str, Any]]:
    return (
        "CotisationImpayee",
        {
            "cotisation_id": cotisation_id,
            "nir": nir,
            "restant_du_cents": cents,
            "constatee_le": "2017-06-01",
        },
    )


def benefit(
    prestation_id: str,
    nir: str,
    day: str,
    cents: int,
    *,
    nature: str = "IJ_MATERNITE",
    caisse: str = "PL-IDF",
    categorie: str = "PROFESSION_LIBERALE",
) -> tuple[str, dict[str, Any]]:
    return (
        "PrestationEspecesDue",
        {
            "prestation_id": prestation_id,
            "nir": nir,
            "categorie": categorie,
            "caisse_de_base": caisse,
            "nature": nature,
            "fait_generateur_le": day,
            "periode": None,
            "montant_cents": cents,
        },
    )


async def _send_all(feeder: Feeder, messages: list[tuple[str, dict[str, Any]]]) -> None:
    for event_type, payload in messages:
        feeder.message(event_type, payload)
    await feeder.flush()


async def record_sample(collection: Feeder, benefits: Feeder) -> Sample:
    """Record the sample through both services' write paths."""
    s = Sample()
    await _send_all(collection, registry())
    await _send_all(benefits, registry())
    await _send_all(
        collection,
        [
            due(s.delegated, NIR_A, 2017, 195000),
            payment("PAY-A-1", s.delegated, NIR_A, 50000),
            payment("PAY-A-2", s.delegated, NIR_A, 25000),
            unpaid(s.delegated, NIR_A, 120000),
            due(s.urssaf, NIR_A, 2018, 201000),
            due(s.ineligible, NIR_C, 2017, 98000),
            payment("PAY-C-1", s.ineligible, NIR_C, 10000),
            unpaid(s.ineligible, NIR_C, 88000),
            due(s.parked, NIR_B, 2017, 120000, caisse="PL-PACA"),
            payment(s.parked_payment, s.parked, NIR_B, 30000),
            payment(s.orphan_payment, "COT-X-2017", NIR_A, 1000),
        ],
    )
    collection.raw(collection.topic_of("CotisationDue"), b'{"event_type": "CotisationDue"}')
    await collection.flush()
    await _send_all(
        benefits,
        [
            benefit(
                s.benefit_delegated, NIR_A, "2017-05-02", 326900, nature="ALLOCATION_REPOS_MATERNEL"
            ),
            benefit("PRE-A-2", NIR_A, "2017-06-01", 236456),
            benefit(
                s.benefit_direct,
                NIR_C,
                "2017-04-10",
                120000,
                nature="IJ_MALADIE",
                categorie="ARTISAN",
            ),
            benefit("PRE-A-2016", NIR_A, "2016-03-01", 50000),
            benefit(s.benefit_parked, NIR_B, "2017-09-01", 200000, caisse="PL-PACA"),
        ],
    )
    affiliation_b = [
        (
            "AffiliationEnregistree",
            {"nir": NIR_B, "organisme_id": MUTUELLE, "mode": "CHOIX", "effet_du": "2017-01-01"},
        )
    ]
    await _send_all(collection, affiliation_b)
    await _send_all(benefits, affiliation_b)
    return s
