"""Alinéa 1 as pure rules: every motif, its precedence, the date bounds, and the follow-ups."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import TYPE_CHECKING, Any

import pytest

from contracts import outbound
from services.domain.collection.rules import (
    RULES_2017,
    Contribution,
    decide_contribution,
    decide_payment,
    decide_unpaid,
)

if TYPE_CHECKING:
    # the fixtures' types: pytest imports conftest.py itself, a test module cannot import it
    # at run time; mypy knows the rules conftest under this name (see [tool.mypy])
    from unit.rules.conftest import Builders

pytestmark = pytest.mark.unit

AL1 = "CSS L611-20 al.1 (v. 2017-01-01)"
PL, ARTISAN, COMMERCANT = "PROFESSION_LIBERALE", "ARTISAN", "COMMERCANT"
OSS = "ORGANISME_SECURITE_SOCIALE"


def F(kind: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    """A registry fact of the table: the builder's name and its arguments."""
    return kind, kw


ORG, AFF, CNV = F("org"), F("affiliation"), F("convention")
CNV_2016 = F("convention", du="2016-01-01")
DELEGABLE = [ORG, AFF, CNV]  # MUTUELLE, affiliated since 2016, convention from 2017-01-01
OC, OC_B = "OC-MUT-01", "OC-B"


def delegue(organisme: str = OC, convention: str = "CNV-1") -> tuple[Any, ...]:
    return ("EncaissementDelegue", None, None, organisme, convention)


ANTERIEURE = ("EncaissementNonDelegue", "PERIODE_ANTERIEURE_A_2017", None, None, None)
URSSAF = ("EncaissementNonDelegue", "RECOUVREMENT_URSSAF", "URSSAF", None, None)
HORS_CHAMP = ("EncaissementNonDelegue", "CATEGORIE_HORS_CHAMP", "URSSAF", None, None)
ATTENTE = ("DecisionEnAttente", "AFFILIATION_INCONNUE", None, None, None)
INELIGIBLE = ("EncaissementNonDelegue", "ORGANISME_INELIGIBLE", "CAISSE_DE_BASE", None, None)
AUCUNE = ("EncaissementNonDelegue", "AUCUNE_CONVENTION", "CAISSE_DE_BASE", None, None)

SWITCH_TO_B = [
    ORG,
    F("org", oid=OC_B, forme="SOCIETE_ASSURANCE"),
    AFF,
    F("affiliation", oid=OC_B, du="2017-07-01"),
    CNV,
]  # only OC-MUT-01 has one
SWITCH_FROM_B = [
    F("org", oid=OC_B, forme="SOCIETE_ASSURANCE"),
    ORG,
    F("affiliation", oid=OC_B),
    F("affiliation", du="2017-07-01"),
    CNV,
]
SWITCH_RECORDED_BACKWARDS = [
    ORG,
    F("org", oid=OC_B, forme="SOCIETE_ASSURANCE"),
    F("affiliation", oid=OC_B, du="2017-07-01"),
    AFF,
    CNV,
]

TABLE = [
    # 1. reference date before 2017: first check, whatever else holds
    pytest.param(
        [ORG, AFF, CNV_2016],
        PL,
        "2016-12-31",
        ANTERIEURE,
        id="a delegable 2016-12-31 contribution is PERIODE_ANTERIEURE_A_2017",
    ),
    pytest.param(
        [ORG, AFF, CNV_2016],
        ARTISAN,
        "2016-06-01",
        ANTERIEURE,
        id="a 2016 artisan is PERIODE_ANTERIEURE_A_2017 not CATEGORIE_HORS_CHAMP",
    ),
    pytest.param(
        [], PL, "2016-12-31", ANTERIEURE, id="a 2016 contribution without affiliation is not parked"
    ),
    pytest.param(
        [F("org", forme=OSS), AFF, CNV_2016],
        PL,
        "2016-12-31",
        ANTERIEURE,
        id="a 2016 contribution to an ineligible organism is PERIODE_ANTERIEURE",
    ),
    # 2. from 2018 the URSSAF collects
    pytest.param(
        DELEGABLE,
        PL,
        "2017-01-01",
        delegue(),
        id="a delegable contribution starting 2017-01-01 is delegated",
    ),
    pytest.param(
        DELEGABLE,
        PL,
        "2017-12-31",
        delegue(),
        id="a delegable contribution starting 2017-12-31 is delegated",
    ),
    pytest.param(
        DELEGABLE,
        PL,
        "2018-01-01",
        URSSAF,
        id="a delegable contribution starting 2018-01-01 is RECOUVREMENT_URSSAF",
    ),
    pytest.param(
        DELEGABLE,
        ARTISAN,
        "2018-01-01",
        URSSAF,
        id="a 2018 artisan is RECOUVREMENT_URSSAF not CATEGORIE_HORS_CHAMP",
    ),
    pytest.param(
        [],
        PL,
        "2018-03-01",
        URSSAF,
        id="a 2018 contribution without affiliation is RECOUVREMENT_URSSAF not parked",
    ),
    pytest.param(
        [F("org", forme=OSS), AFF],
        PL,
        "2018-01-01",
        URSSAF,
        id="a 2018 contribution to an ineligible organism is RECOUVREMENT_URSSAF",
    ),
    # 3. only professions libérales
    pytest.param(
        DELEGABLE,
        ARTISAN,
        "2017-01-01",
        HORS_CHAMP,
        id="a 2017 artisan is CATEGORIE_HORS_CHAMP collected by the URSSAF",
    ),
    pytest.param(
        DELEGABLE,
        COMMERCANT,
        "2017-12-31",
        HORS_CHAMP,
        id="a 2017 commercant is CATEGORIE_HORS_CHAMP collected by the URSSAF",
    ),
    pytest.param(
        [],
        ARTISAN,
        "2017-05-01",
        HORS_CHAMP,
        id="a 2017 artisan without affiliation is CATEGORIE_HORS_CHAMP not parked",
    ),
    pytest.param(
        [F("org", forme=OSS), AFF],
        COMMERCANT,
        "2017-05-01",
        HORS_CHAMP,
        id="a 2017 commercant of an ineligible organism is CATEGORIE_HORS_CHAMP",
    ),
    # 4. affiliation in force at the reference date, to a declared organism
    pytest.param(
        [ORG, CNV],
        PL,
        "2017-03-01",
        ATTENTE,
        id="a contribution without affiliation is parked AFFILIATION_INCONNUE",
    ),
    pytest.param(
        [AFF, CNV],
        PL,
        "2017-03-01",
        ATTENTE,
        id="a contribution affiliated to an undeclared organism is parked",
    ),
    pytest.param(
        [ORG, F("affiliation", du="2017-03-02"), CNV],
        PL,
        "2017-03-01",
        ATTENTE,
        id="an affiliation starting the day after the reference date is not in force",
    ),
    pytest.param(
        [ORG, F("affiliation", du="2017-03-01"), CNV],
        PL,
        "2017-03-01",
        delegue(),
        id="an affiliation starting on the reference date is in force",
    ),
    pytest.param(
        [ORG, F("affiliation", nir="285061305501226"), CNV],
        PL,
        "2017-03-01",
        ATTENTE,
        id="the affiliation of another NIR does not count",
    ),
    # 5. eligible legal form
    pytest.param(
        [F("org", forme=OSS), AFF, CNV],
        PL,
        "2017-03-01",
        INELIGIBLE,
        id="an ORGANISME_SECURITE_SOCIALE with a convention is ORGANISME_INELIGIBLE",
    ),
    pytest.param(
        [F("org", forme=OSS), AFF],
        PL,
        "2017-03-01",
        INELIGIBLE,
        id="an ineligible organism without convention is ORGANISME_INELIGIBLE first",
    ),
    pytest.param(
        [F("org", forme="SOCIETE_ASSURANCE"), AFF, CNV],
        PL,
        "2017-03-01",
        delegue(),
        id="a SOCIETE_ASSURANCE with a convention is delegated",
    ),
    pytest.param(
        [F("org", forme="GROUPEMENT_SOCIETES_ASSURANCE"), AFF, CNV],
        PL,
        "2017-03-01",
        delegue(),
        id="a GROUPEMENT_SOCIETES_ASSURANCE with a convention is delegated",
    ),
    # 6. a convention of the right object, in force, listing the caisse
    pytest.param(
        [ORG, AFF],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a mutuelle without convention is AUCUNE_CONVENTION",
    ),
    pytest.param(
        [ORG, AFF, F("convention", du="2017-03-01")],
        PL,
        "2017-03-01",
        delegue(),
        id="a convention is in force on its effet_du",
    ),
    pytest.param(
        [ORG, AFF, F("convention", du="2017-03-02")],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a convention is not in force the day before its effet_du",
    ),
    pytest.param(
        [ORG, AFF, F("convention", au="2017-03-01")],
        PL,
        "2017-03-01",
        delegue(),
        id="a convention is in force on its effet_au",
    ),
    pytest.param(
        [ORG, AFF, F("convention", au="2017-02-28")],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a convention is not in force the day after its effet_au",
    ),
    pytest.param(
        [*DELEGABLE, F("resiliation", au="2017-03-01")],
        PL,
        "2017-03-01",
        delegue(),
        id="a convention terminated on the reference date is still in force",
    ),
    pytest.param(
        [*DELEGABLE, F("resiliation", au="2017-02-28")],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a convention terminated the day before the reference date is not",
    ),
    pytest.param(
        [ORG, AFF, F("resiliation", au="2017-02-28"), CNV],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a termination recorded before its conclusion still applies",
    ),
    pytest.param(
        [ORG, AFF, F("resiliation", au="2017-03-01"), CNV],
        PL,
        "2017-03-01",
        delegue(),
        id="a termination recorded before its conclusion keeps its last day",
    ),
    pytest.param(
        [*DELEGABLE, F("resiliation", cid="CNV-9", au="2017-01-31")],
        PL,
        "2017-03-01",
        delegue(),
        id="the termination of another convention is ignored",
    ),
    pytest.param(
        [ORG, AFF, F("convention", caisses=("PL-PACA",))],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a convention not listing the caisse de base does not count",
    ),
    pytest.param(
        [ORG, AFF, F("convention", caisses=("PL-PACA", "PL-IDF"))],
        PL,
        "2017-03-01",
        delegue(),
        id="a convention listing the caisse among others counts",
    ),
    pytest.param(
        [ORG, AFF, F("convention", objet="VERSEMENT_PRESTATIONS_ESPECES")],
        PL,
        "2017-03-01",
        AUCUNE,
        id="a VERSEMENT_PRESTATIONS_ESPECES convention does not count for alinea 1",
    ),
    pytest.param(
        [ORG, F("org", oid=OC_B), AFF, F("convention", oid=OC_B)],
        PL,
        "2017-03-01",
        AUCUNE,
        id="the convention of another organism does not count",
    ),
    # the affiliation in force at periode.debut decides
    pytest.param(
        SWITCH_TO_B,
        PL,
        "2017-06-30",
        delegue(),
        id="the affiliation in force on periode.debut is used, before a switch",
    ),
    pytest.param(
        SWITCH_TO_B,
        PL,
        "2017-07-01",
        AUCUNE,
        id="the affiliation in force on periode.debut is used, on the switch day",
    ),
    pytest.param(
        SWITCH_FROM_B,
        PL,
        "2017-06-30",
        AUCUNE,
        id="an affiliation to a conventioned organism does not count before it starts",
    ),
    pytest.param(
        SWITCH_FROM_B,
        PL,
        "2017-07-01",
        delegue(),
        id="a switch to a conventioned organism counts from its effet_du",
    ),
    pytest.param(
        SWITCH_RECORDED_BACKWARDS,
        PL,
        "2017-06-30",
        delegue(),
        id="affiliations recorded out of date order are used by effective date",
    ),
    pytest.param(
        [
            F("org", forme=OSS),
            F("org", oid=OC_B, forme="MUTUELLE"),
            AFF,
            F("affiliation", oid=OC_B, du="2017-09-01"),
            F("convention", oid=OC_B),
        ],
        PL,
        "2017-03-01",
        INELIGIBLE,
        id="a later affiliation to an eligible organism does not count earlier",
    ),
]


def outbound_model(event_type: str) -> Any:
    return getattr(outbound, event_type)


@pytest.mark.parametrize(("facts", "categorie", "debut", "expected"), TABLE)
def test_alinea_1_decides_who_collects_a_contribution(
    b: type[Builders],
    facts: list[tuple[str, dict[str, Any]]],
    categorie: str,
    debut: str,
    expected: tuple[str, str | None, str | None, str | None, str | None],
) -> None:
    registry = b.registry(*(getattr(b, kind)(**kw) for kind, kw in facts))
    due = b.cotisation(categorie=categorie, debut=debut)

    decision = decide_contribution(due, registry, RULES_2017)

    event_type, motif, recouvreur, organisme, convention = expected
    payload = decision.payload
    assert decision.event_type == event_type
    assert payload.get("motif") == motif
    assert (payload.get("organisme_id"), payload.get("convention_id")) == (organisme, convention)
    if event_type == "EncaissementNonDelegue":
        assert "recouvreur" in payload
        assert payload["recouvreur"] == recouvreur
    if event_type == "EncaissementDelegue":
        assert payload["montant_cents"] == due.montant_cents
    if event_type == "DecisionEnAttente":
        assert payload["sujet_id"] == due.cotisation_id
    else:
        assert payload["cotisation_id"] == due.cotisation_id
    assert (payload["nir"], payload["caisse_de_base"]) == (due.nir, due.caisse_de_base)
    assert payload["regles_version"] == RULES_2017.version
    outbound_model(event_type).model_validate(payload)


@pytest.mark.parametrize(
    ("categorie", "debut", "bases"),
    [
        pytest.param(PL, "2016-12-31", [AL1], id="before 2017 cites alinea 1"),
        pytest.param(PL, "2018-01-01", ["Loi 2015-1702 art.13"], id="from 2018 cites LFSS 2016"),
        pytest.param(
            ARTISAN,
            "2017-05-01",
            [AL1, "CSS L133-6-2"],
            id="artisans cite the interlocuteur social unique",
        ),
        pytest.param(PL, "2017-05-01", [AL1], id="a delegation cites alinea 1"),
    ],
)
def test_each_decision_cites_its_legal_basis(
    b: type[Builders], categorie: str, debut: str, bases: list[str]
) -> None:
    decision = decide_contribution(
        b.cotisation(categorie=categorie, debut=debut), b.registry(*b.delegable())
    )
    assert list(decision.payload["base_legale"]) == bases


def test_a_delegation_carries_the_affiliation_organism_and_convention_it_relied_on(
    b: type[Builders],
) -> None:
    registry = b.registry(
        b.org(),
        b.affiliation(mode="OFFICE", du="2016-04-01"),
        b.convention(du="2017-01-01", au="2017-12-31"),
    )
    decision = decide_contribution(b.cotisation(debut="2017-05-01"), registry)
    assert decision.payload["faits_retenus"] == {
        "affiliation": {"organisme_id": b.OC, "mode": "OFFICE", "effet_du": "2016-04-01"},
        "organisme": {"organisme_id": b.OC, "forme_juridique": "MUTUELLE"},
        "convention": {
            "convention_id": b.CNV,
            "objet": b.ENC,
            "effet_du": "2017-01-01",
            "effet_au": "2017-12-31",
        },
    }


@pytest.mark.parametrize(
    ("forme", "facts_extra"),
    [
        pytest.param(OSS, True, id="ORGANISME_INELIGIBLE"),
        pytest.param("MUTUELLE", False, id="AUCUNE_CONVENTION"),
    ],
)
def test_a_refusal_for_the_organism_carries_the_affiliation_and_organism_but_no_convention(
    b: type[Builders], forme: str, facts_extra: bool
) -> None:
    facts = [b.org(forme=forme), b.affiliation()]
    if facts_extra:
        facts.append(b.convention())
    decision = decide_contribution(b.cotisation(debut="2017-05-01"), b.registry(*facts))
    faits = decision.payload["faits_retenus"]
    assert faits["organisme"] == {"organisme_id": b.OC, "forme_juridique": forme}
    assert faits["affiliation"]["organisme_id"] == b.OC
    assert "convention" not in faits


@pytest.mark.parametrize(
    ("categorie", "debut"),
    [
        pytest.param(PL, "2016-12-31", id="before 2017"),
        pytest.param(PL, "2018-01-01", id="from 2018"),
        pytest.param(ARTISAN, "2017-05-01", id="artisan"),
    ],
)
def test_a_decision_taken_before_reading_the_registry_carries_no_registry_fact(
    b: type[Builders], categorie: str, debut: str
) -> None:
    decision = decide_contribution(
        b.cotisation(categorie=categorie, debut=debut), b.registry(*b.delegable())
    )
    assert decision.payload.get("faits_retenus") is None


def test_the_dates_of_the_law_are_data_of_the_rule_set(b: type[Builders]) -> None:
    later_urssaf = replace(
        RULES_2017, version="al1-test", debut_recouvrement_urssaf=date(2019, 1, 1)
    )
    decision = decide_contribution(
        b.cotisation(debut="2018-06-01"), b.registry(*b.delegable()), later_urssaf
    )
    assert decision.event_type == "EncaissementDelegue"
    assert decision.payload["regles_version"] == "al1-test"


def test_deciding_twice_on_the_same_registry_gives_the_same_payload(b: type[Builders]) -> None:
    registry = b.registry(*b.delegable())
    due = b.cotisation()
    assert decide_contribution(due, registry) == decide_contribution(due, registry)


# -- follow-ups -------------------------------------------------------------------------------

FAITS = {"affiliation": {"organisme_id": "OC-MUT-01", "mode": "CHOIX", "effet_du": "2016-01-01"}}


def contribution(b: Any, *, delegated: bool = True, paid: int = 0, due: int = 195000) -> Any:
    return Contribution(
        cotisation_id="COT-1",
        nir=b.NIR,
        caisse_de_base=b.CAISSE,
        montant_cents=due,
        organisme_id=b.OC if delegated else None,
        paid_cents=paid,
        faits_retenus=FAITS if delegated else None,
    )


@pytest.mark.parametrize(
    ("paid", "amount", "solde"),
    [
        pytest.param(0, 50000, 145000, id="a first part payment leaves the rest"),
        pytest.param(145000, 50000, 0, id="the last payment leaves a zero balance"),
        pytest.param(
            150000, 50000, -5000, id="a payment past the due amount gives a negative balance"
        ),
        pytest.param(195000, 1000, -1000, id="a payment on a paid contribution is all overpaid"),
    ],
)
def test_a_payment_on_a_delegated_contribution_is_held_for_the_caisse(
    b: type[Builders], paid: int, amount: int, solde: int
) -> None:
    decision = decide_payment(b.paiement(montant=amount), contribution(b, paid=paid))
    assert decision.event_type == "PaiementEncaissePourCompte"
    assert decision.payload["solde_restant_cents"] == solde
    assert decision.payload["montant_cents"] == amount
    assert decision.payload["organisme_id"] == b.OC
    assert decision.payload["faits_retenus"] == FAITS
    outbound.PaiementEncaissePourCompte.model_validate(decision.payload)


def test_a_payment_on_a_non_delegated_contribution_is_not_imputed(b: type[Builders]) -> None:
    decision = decide_payment(b.paiement(), contribution(b, delegated=False))
    assert decision.event_type == "PaiementNonImpute"
    assert decision.payload["motif"] == "NON_DELEGUE"
    assert decision.payload["paiement_id"] == "PAY-1"
    outbound.PaiementNonImpute.model_validate(decision.payload)


def test_a_payment_before_its_contribution_is_parked_with_no_caisse_yet(b: type[Builders]) -> None:
    decision = decide_payment(b.paiement(pid="PAY-7"), None)
    assert decision.event_type == "DecisionEnAttente"
    assert decision.payload["motif"] == "COTISATION_INCONNUE"
    assert decision.payload["sujet_id"] == "PAY-7"
    assert decision.payload["caisse_de_base"] is None
    outbound.DecisionEnAttente.model_validate(decision.payload)


@pytest.mark.parametrize(
    ("paid", "expected", "motif", "restant"),
    [
        pytest.param(0, "ContentieuxDelegue", None, 195000, id="nothing paid: all of it"),
        pytest.param(150000, "ContentieuxDelegue", None, 45000, id="part paid: the balance"),
        pytest.param(195000, "ContentieuxSansObjet", "SOLDE_NUL", None, id="fully paid: SOLDE_NUL"),
        pytest.param(200000, "ContentieuxSansObjet", "SOLDE_NUL", None, id="overpaid: SOLDE_NUL"),
    ],
)
def test_an_unpaid_notice_on_a_delegated_contribution_goes_to_litigation_by_its_balance(
    b: type[Builders], paid: int, expected: str, motif: str | None, restant: int | None
) -> None:
    # the notice's own restant_du_cents is not what is litigated: the booked balance is
    decision = decide_unpaid(b.impaye(restant=999), contribution(b, paid=paid))
    assert decision.event_type == expected
    assert decision.payload.get("motif") == motif
    assert decision.payload.get("restant_du_cents") == restant
    if expected == "ContentieuxDelegue":
        assert decision.payload["organisme_id"] == b.OC
        assert decision.payload["faits_retenus"] == FAITS
    outbound_model(expected).model_validate(decision.payload)


def test_an_unpaid_notice_on_a_non_delegated_contribution_has_no_object(b: type[Builders]) -> None:
    decision = decide_unpaid(b.impaye(), contribution(b, delegated=False))
    assert decision.event_type == "ContentieuxSansObjet"
    assert decision.payload["motif"] == "NON_DELEGUE"


def test_an_unpaid_notice_before_its_contribution_is_parked(b: type[Builders]) -> None:
    decision = decide_unpaid(b.impaye(cid="COT-9"), None)
    assert decision.event_type == "DecisionEnAttente"
    assert (decision.payload["sujet_id"], decision.payload["motif"]) == (
        "COT-9",
        "COTISATION_INCONNUE",
    )
    outbound.DecisionEnAttente.model_validate(decision.payload)
