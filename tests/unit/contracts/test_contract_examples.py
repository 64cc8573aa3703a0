"""The examples of the contract (contract-v1.md, also in docs/contract.md) parse, and the
models carry exactly the contract's fields."""

import json
from typing import Any

import pytest
from pydantic import BaseModel

from contracts import (
    INBOUND_CLASSES,
    OUTBOUND_CLASSES,
    CotisationDueEvent,
    parse_inbound,
    to_wire,
    topics,
)

pytestmark = pytest.mark.unit

ENVELOPE_EXAMPLE = """{
  "event_id": "7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10",
  "event_type": "CotisationDue",
  "schema_version": 1,
  "occurred_at": "2017-01-15T08:00:00Z",
  "source": "caisse-de-base/PL-IDF",
  "correlation_id": null,
  "causation_id": null,
  "payload": { }
}"""

# Copied verbatim from contract-v1.md, "Inbound payloads".
PAYLOAD_EXAMPLES = r"""
{"event_type": "OrganismeDeclare", "payload": {"organisme_id": "OC-MUT-01", "nom": "Mutuelle des Professions Libérales", "forme_juridique": "MUTUELLE"}}
{"event_type": "ConventionConclue", "payload": {"convention_id": "CNV-2017-001", "organisme_id": "OC-MUT-01", "objet": "ENCAISSEMENT_CONTENTIEUX_COTISATIONS", "caisses_de_base": ["PL-IDF", "PL-PACA"], "effet_du": "2017-01-01", "effet_au": null}}
{"event_type": "ConventionResiliee", "payload": {"convention_id": "CNV-2017-001", "effet_au": "2017-06-30"}}
{"event_type": "AffiliationEnregistree", "payload": {"nir": "255081416802538", "organisme_id": "OC-MUT-01", "mode": "CHOIX", "effet_du": "2016-01-01"}}
{"event_type": "CotisationDue", "payload": {"cotisation_id": "COT-2017-000123", "nir": "255081416802538", "categorie": "PROFESSION_LIBERALE", "caisse_de_base": "PL-IDF", "periode": {"debut": "2017-01-01", "fin": "2017-12-31"}, "montant_cents": 195000, "exigible_le": "2017-02-05"}}
{"event_type": "PaiementRecu", "payload": {"paiement_id": "PAY-88", "cotisation_id": "COT-2017-000123", "nir": "255081416802538", "montant_cents": 50000, "recu_le": "2017-02-03"}}
{"event_type": "CotisationImpayee", "payload": {"cotisation_id": "COT-2017-000123", "nir": "255081416802538", "restant_du_cents": 145000, "constatee_le": "2017-03-07"}}
{"event_type": "PrestationEspecesDue", "payload": {"prestation_id": "PRE-2017-42", "nir": "255081416802538", "categorie": "PROFESSION_LIBERALE", "caisse_de_base": "PL-IDF", "nature": "ALLOCATION_REPOS_MATERNEL", "fait_generateur_le": "2017-05-02", "periode": null, "montant_cents": 326900}}
"""  # noqa: E501
EXAMPLES: list[dict[str, Any]] = [json.loads(line) for line in PAYLOAD_EXAMPLES.split("\n") if line]

COMMON_DECISION_FIELDS = {"nir", "caisse_de_base", "base_legale", "regles_version"}
# contract-v1.md, "Outbound payloads": fields besides the common ones.
DECISION_FIELDS = {
    "EncaissementDelegue": {"cotisation_id", "organisme_id", "convention_id", "montant_cents"},
    "EncaissementNonDelegue": {"cotisation_id", "motif", "recouvreur"},
    "PaiementEncaissePourCompte": {
        "cotisation_id",
        "paiement_id",
        "organisme_id",
        "montant_cents",
        "solde_restant_cents",
    },
    "PaiementNonImpute": {"cotisation_id", "paiement_id", "motif"},
    "ContentieuxDelegue": {"cotisation_id", "organisme_id", "restant_du_cents"},
    "ContentieuxSansObjet": {"cotisation_id", "motif"},
    "DecisionEnAttente": {"sujet_id", "motif"},
    "VersementDelegue": {
        "prestation_id",
        "organisme_id",
        "convention_id",
        "nature",
        "montant_cents",
    },
    "VersementDirect": {"prestation_id", "nature", "montant_cents", "motif"},
    "PrestationNonTraitee": {"prestation_id", "motif"},
    # the revisions, additive in v1
    "EncaissementRevise": {
        "cotisation_id",
        "decision_revisee_id",
        "avant",
        "apres",
        "deja_encaisse_cents",
        "contentieux_transfere",
    },
    "VersementRevise": {
        "prestation_id",
        "decision_revisee_id",
        "avant",
        "apres",
        "nature",
        "montant_cents",
    },
}
# contract-v1.md, "Revisions": the fields of `avant` and `apres`
OUTCOME_FIELDS = {
    "EncaissementRevise": {"event_type", "organisme_id", "convention_id", "motif", "recouvreur"},
    "VersementRevise": {"event_type", "organisme_id", "convention_id", "motif"},
}


def enveloped(example: dict[str, Any]) -> bytes:
    document = json.loads(ENVELOPE_EXAMPLE)
    document.update(example)
    return json.dumps(document, ensure_ascii=False).encode()


def test_the_envelope_example_parses_as_a_cotisation_due() -> None:
    document = json.loads(ENVELOPE_EXAMPLE)
    document["payload"] = EXAMPLES[4]["payload"]
    event = parse_inbound(json.dumps(document).encode())
    assert isinstance(event, CotisationDueEvent)
    assert str(event.event_id) == "7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10"
    assert event.occurred_at.isoformat() == "2017-01-15T08:00:00+00:00"
    assert event.payload.periode.fin.isoformat() == "2017-12-31"


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["event_type"] for e in EXAMPLES])
def test_every_inbound_example_of_the_contract_parses_and_keeps_its_values(
    example: dict[str, Any],
) -> None:
    event = parse_inbound(enveloped(example))
    assert event.event_type == example["event_type"]
    assert json.loads(to_wire(event))["payload"] == example["payload"]


def test_the_examples_cover_every_inbound_event_type() -> None:
    assert {e["event_type"] for e in EXAMPLES} == set(INBOUND_CLASSES) == topics.INBOUND_EVENT_TYPES


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["event_type"] for e in EXAMPLES])
def test_inbound_payload_models_have_exactly_the_fields_of_the_example(
    example: dict[str, Any],
) -> None:
    payload_model = INBOUND_CLASSES[example["event_type"]].model_fields["payload"].annotation
    assert payload_model is not None
    assert set(payload_model.model_fields) == set(example["payload"])


@pytest.mark.parametrize("event_type", sorted(DECISION_FIELDS))
def test_decision_models_have_the_fields_of_the_contract_table_plus_faits_retenus(
    event_type: str,
) -> None:
    payload_model = OUTBOUND_CLASSES[event_type].model_fields["payload"].annotation
    assert payload_model is not None
    expected = COMMON_DECISION_FIELDS | DECISION_FIELDS[event_type] | {"faits_retenus"}
    assert set(payload_model.model_fields) == expected


@pytest.mark.parametrize("event_type", sorted(OUTCOME_FIELDS))
def test_the_outcomes_of_a_revision_have_the_fields_of_the_contract_all_required(
    event_type: str,
) -> None:
    payload_model = OUTBOUND_CLASSES[event_type].model_fields["payload"].annotation
    assert payload_model is not None
    for side in ("avant", "apres"):
        outcome = payload_model.model_fields[side].annotation
        assert isinstance(outcome, type) and issubclass(outcome, BaseModel)
        assert set(outcome.model_fields) == OUTCOME_FIELDS[event_type]
        assert all(f.is_required() for f in outcome.model_fields.values())


def test_decision_types_are_split_by_topic_as_in_the_contract() -> None:
    assert set(OUTBOUND_CLASSES) == set(DECISION_FIELDS) == topics.OUTBOUND_EVENT_TYPES
    assert "DecisionEnAttente" in topics.COLLECTION_DECISION_TYPES
    assert "DecisionEnAttente" in topics.BENEFITS_DECISION_TYPES
    assert "EncaissementRevise" not in topics.BENEFITS_DECISION_TYPES
    assert "VersementRevise" in topics.BENEFITS_DECISION_TYPES
    assert "VersementRevise" not in topics.COLLECTION_DECISION_TYPES


def test_topic_names_are_the_contract_defaults() -> None:
    assert topics.REFERENTIEL == "rsi.referentiel.v1"
    assert topics.COTISATIONS == "rsi.cotisations.v1"
    assert topics.PRESTATIONS == "rsi.prestations.v1"
    assert topics.REGLEMENTS_COTISATIONS == "rsi.reglements.cotisations.v1"
    assert topics.REGLEMENTS_PRESTATIONS == "rsi.reglements.prestations.v1"
    assert topics.REJETS_COLLECTION == "rsi.rejets.collection.v1"
    assert topics.REJETS_BENEFITS == "rsi.rejets.benefits.v1"
    assert topics.AUDIT_REPLAY == "rsi.audit.replay.v1"
