"""Alinéa 2 as a pure rule: who pays a cash benefit, for every category and nature."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from contracts import outbound
from services.domain.benefits.rules import RULES_2017, decide_benefit

if TYPE_CHECKING:
    # the fixtures' types: pytest imports conftest.py itself, a test module cannot import it
    # at run time; mypy knows the rules conftest under this name (see [tool.mypy])
    from unit.rules.conftest import Builders

pytestmark = pytest.mark.unit

AL2 = "CSS L611-20 al.2 (v. 2017-01-01)"
L160_17 = "CSS L160-17 al.3"
CATEGORIES = ["ARTISAN", "COMMERCANT", "PROFESSION_LIBERALE"]
NATURES = ["IJ_MALADIE", "IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL", "IJ_PATERNITE"]
VERS = "VERSEMENT_PRESTATIONS_ESPECES"


def registry_for(b: Any, outcome: str) -> Any:
    if outcome == "VersementDelegue":
        return b.registry(*b.delegable(objet=VERS))
    if outcome == "VersementDirect":
        return b.registry(b.org(), b.affiliation())
    if outcome == "DecisionEnAttente":
        return b.registry(b.org(), b.convention(objet=VERS))
    return b.registry(*b.delegable(objet=VERS))  # PrestationNonTraitee: the date decides


OUTCOMES = {  # outcome: (fait_generateur_le, motif)
    "PrestationNonTraitee": ("2016-12-31", "PERIODE_ANTERIEURE_A_2017"),
    "DecisionEnAttente": ("2017-05-02", "AFFILIATION_INCONNUE"),
    "VersementDelegue": ("2017-05-02", None),
    "VersementDirect": ("2017-05-02", "AUCUNE_CONVENTION"),
}


@pytest.mark.parametrize("outcome", list(OUTCOMES))
@pytest.mark.parametrize("nature", NATURES)
@pytest.mark.parametrize("categorie", CATEGORIES)
def test_every_category_and_nature_gets_each_outcome_of_alinea_2(
    b: type[Builders], categorie: str, nature: str, outcome: str
) -> None:
    le, motif = OUTCOMES[outcome]
    benefit = b.prestation(categorie=categorie, nature=nature, le=le, montant=236456)

    decision = decide_benefit(benefit, registry_for(b, outcome))

    payload = decision.payload
    assert decision.event_type == outcome
    assert payload.get("motif") == motif
    assert (payload["nir"], payload["caisse_de_base"]) == (b.NIR, b.CAISSE)
    assert payload["regles_version"] == RULES_2017.version
    if outcome == "DecisionEnAttente":
        assert payload["sujet_id"] == "PRE-1"
    else:
        assert payload["prestation_id"] == "PRE-1"
    if outcome in ("VersementDelegue", "VersementDirect"):
        assert (payload["nature"], payload["montant_cents"]) == (nature, 236456)
    if outcome == "VersementDelegue":
        assert (payload["organisme_id"], payload["convention_id"]) == (b.OC, b.CNV)
        assert list(payload["base_legale"]) == [AL2, L160_17]
    else:
        assert list(payload["base_legale"]) == [AL2]
    getattr(outbound, outcome).model_validate(payload)


def F(kind: str, **kw: Any) -> tuple[str, dict[str, Any]]:
    return kind, kw


ORG, AFF = F("org"), F("affiliation")
CNV = F("convention", objet=VERS)
DELEGUE = ("VersementDelegue", None, "OC-MUT-01")
DIRECT = ("VersementDirect", "AUCUNE_CONVENTION", None)
NON_TRAITEE = ("PrestationNonTraitee", "PERIODE_ANTERIEURE_A_2017", None)
ATTENTE = ("DecisionEnAttente", "AFFILIATION_INCONNUE", None)
SWITCH = [ORG, F("org", oid="OC-B"), AFF, F("affiliation", oid="OC-B", du="2017-07-01"), CNV]

TABLE = [
    pytest.param(
        [ORG, AFF, F("convention", objet=VERS, du="2016-01-01")],
        "2016-12-31",
        NON_TRAITEE,
        id="a benefit of 2016-12-31 is not handled even with a convention",
    ),
    pytest.param(
        [],
        "2016-12-31",
        NON_TRAITEE,
        id="a benefit of 2016-12-31 without affiliation is not parked",
    ),
    pytest.param(
        [ORG, AFF, CNV],
        "2017-01-01",
        DELEGUE,
        id="a benefit of 2017-01-01 is delegated under a convention starting that day",
    ),
    pytest.param([ORG, AFF, CNV], "2018-06-01", DELEGUE, id="alinea 2 has no 2018 URSSAF cut-off"),
    pytest.param([ORG, CNV], "2017-05-02", ATTENTE, id="a benefit without affiliation is parked"),
    pytest.param(
        [AFF, CNV],
        "2017-05-02",
        ATTENTE,
        id="a benefit affiliated to an undeclared organism is parked",
    ),
    pytest.param(
        [ORG, F("affiliation", du="2017-05-03"), CNV],
        "2017-05-02",
        ATTENTE,
        id="an affiliation starting the day after the fait generateur is not in force",
    ),
    pytest.param(
        [ORG, AFF, F("convention")],
        "2017-05-02",
        DIRECT,
        id="an ENCAISSEMENT convention does not count for alinea 2",
    ),
    pytest.param(
        [ORG, AFF, F("convention", objet=VERS, caisses=("PL-PACA",))],
        "2017-05-02",
        DIRECT,
        id="a convention for another caisse de base does not count",
    ),
    pytest.param(
        [ORG, F("org", oid="OC-B"), AFF, F("convention", oid="OC-B", objet=VERS)],
        "2017-05-02",
        DIRECT,
        id="a convention of another organism does not count",
    ),
    pytest.param(
        [ORG, AFF, CNV, F("resiliation", au="2017-05-01")],
        "2017-05-02",
        DIRECT,
        id="a convention terminated the day before is AUCUNE_CONVENTION",
    ),
    pytest.param(
        [ORG, AFF, CNV, F("resiliation", au="2017-05-02")],
        "2017-05-02",
        DELEGUE,
        id="a convention terminated on the fait generateur is still in force",
    ),
    pytest.param(
        [ORG, AFF, F("resiliation", au="2017-05-01"), CNV],
        "2017-05-02",
        DIRECT,
        id="a termination recorded before its conclusion still applies",
    ),
    pytest.param(
        [ORG, AFF, F("convention", objet=VERS, du="2017-05-02")],
        "2017-05-02",
        DELEGUE,
        id="a convention is in force on its effet_du",
    ),
    pytest.param(
        [ORG, AFF, F("convention", objet=VERS, du="2017-05-03")],
        "2017-05-02",
        DIRECT,
        id="a convention is not in force before its effet_du",
    ),
    pytest.param(
        [ORG, AFF, F("convention", objet=VERS, au="2017-05-02")],
        "2017-05-02",
        DELEGUE,
        id="a convention is in force on its effet_au",
    ),
    pytest.param(
        [ORG, AFF, F("convention", objet=VERS, au="2017-05-01")],
        "2017-05-02",
        DIRECT,
        id="a convention is not in force after its effet_au",
    ),
    pytest.param(
        SWITCH,
        "2017-06-30",
        DELEGUE,
        id="before a mid-year switch the first organism pays under its convention",
    ),
    pytest.param(
        SWITCH,
        "2017-07-01",
        DIRECT,
        id="from a mid-year switch the new organism without convention decides",
    ),
    pytest.param(
        [
            ORG,
            F("org", oid="OC-B"),
            F("affiliation", oid="OC-B"),
            F("affiliation", du="2017-07-01"),
            CNV,
        ],
        "2017-07-01",
        DELEGUE,
        id="a switch to a conventioned organism counts from its effet_du",
    ),
]


@pytest.mark.parametrize(("facts", "le", "expected"), TABLE)
def test_alinea_2_decides_who_pays_a_cash_benefit(
    b: type[Builders],
    facts: list[tuple[str, dict[str, Any]]],
    le: str,
    expected: tuple[str, str | None, str | None],
) -> None:
    registry = b.registry(*(getattr(b, kind)(**kw) for kind, kw in facts))

    decision = decide_benefit(b.prestation(le=le), registry)

    event_type, motif, organisme = expected
    assert decision.event_type == event_type
    assert decision.payload.get("motif") == motif
    assert decision.payload.get("organisme_id") == organisme
    getattr(outbound, event_type).model_validate(decision.payload)


@pytest.mark.parametrize(
    "forme",
    [
        "MUTUELLE",
        "SOCIETE_ASSURANCE",
        "GROUPEMENT_SOCIETES_ASSURANCE",
        "ORGANISME_SECURITE_SOCIALE",
    ],
)
def test_alinea_2_has_no_legal_form_check_an_organism_of_any_form_with_the_convention_pays(
    b: type[Builders], forme: str
) -> None:
    decision = decide_benefit(b.prestation(), b.registry(*b.delegable(forme=forme, objet=VERS)))
    assert decision.event_type == "VersementDelegue"
    assert decision.payload["faits_retenus"]["organisme"]["forme_juridique"] == forme


def test_a_delegated_payment_carries_the_registry_facts_it_relied_on(b: type[Builders]) -> None:
    registry = b.registry(
        b.org(), b.affiliation(mode="OFFICE"), b.convention(objet=VERS, au="2017-12-31")
    )
    decision = decide_benefit(b.prestation(), registry)
    assert decision.payload["faits_retenus"] == {
        "affiliation": {"organisme_id": b.OC, "mode": "OFFICE", "effet_du": "2016-01-01"},
        "organisme": {"organisme_id": b.OC, "forme_juridique": "MUTUELLE"},
        "convention": {
            "convention_id": b.CNV,
            "objet": VERS,
            "effet_du": "2017-01-01",
            "effet_au": "2017-12-31",
        },
    }


def test_a_direct_payment_carries_the_affiliation_and_organism_but_no_convention(
    b: type[Builders],
) -> None:
    decision = decide_benefit(b.prestation(), b.registry(b.org(), b.affiliation()))
    faits = decision.payload["faits_retenus"]
    assert faits["organisme"]["organisme_id"] == b.OC
    assert "convention" not in faits


def test_a_benefit_before_2017_carries_no_registry_fact(b: type[Builders]) -> None:
    decision = decide_benefit(b.prestation(le="2016-12-31"), b.registry(*b.delegable(objet=VERS)))
    assert decision.payload.get("faits_retenus") is None
