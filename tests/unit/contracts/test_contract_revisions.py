"""The revisions of contract v1 (EncaissementRevise, VersementRevise): they survive the wire,
and refuse what no service could mean: negative or oversized money, a boolean spelled
otherwise, an outcome whose fields contradict its type, a revision that changes nothing,
money held by an organism that does not leave."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import (
    SUM_MAX,
    ContractError,
    EncaissementRevise,
    VersementRevise,
    envelop,
    expected_key,
    parse_outbound,
    to_wire,
    topics,
)

pytestmark = pytest.mark.unit

NIR = "255081416802538"
DELEGATED = {
    "event_type": "EncaissementDelegue",
    "organisme_id": "OC-M",
    "convention_id": "CNV-C1",
    "motif": None,
    "recouvreur": None,
}
NOT_DELEGATED = {
    "event_type": "EncaissementNonDelegue",
    "organisme_id": None,
    "convention_id": None,
    "motif": "AUCUNE_CONVENTION",
    "recouvreur": "CAISSE_DE_BASE",
}
VERSEMENT_DELEGUE = {
    "event_type": "VersementDelegue",
    "organisme_id": "OC-M",
    "convention_id": "CNV-C2",
    "motif": None,
}
VERSEMENT_DIRECT = {
    "event_type": "VersementDirect",
    "organisme_id": None,
    "convention_id": None,
    "motif": "AUCUNE_CONVENTION",
}
COMMON = {
    "nir": NIR,
    "caisse_de_base": "PL-IDF",
    "base_legale": ["CSS L611-20 al.1 (v. 2017-01-01)"],
    "regles_version": "al1-2017.1",
    "faits_retenus": {
        "affiliation": {"organisme_id": "OC-M", "mode": "CHOIX", "effet_du": "2016-01-01"},
        "organisme": {"organisme_id": "OC-M", "forme_juridique": "MUTUELLE"},
        "convention": None,
    },
}


def encaissement(**changes: Any) -> dict[str, Any]:
    return (
        COMMON
        | {
            "cotisation_id": "COT-1",
            "decision_revisee_id": "7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10",
            "avant": DELEGATED,
            "apres": NOT_DELEGATED,
            "deja_encaisse_cents": 30000,
            "contentieux_transfere": True,
        }
        | changes
    )


def versement(**changes: Any) -> dict[str, Any]:
    return (
        COMMON
        | {
            "base_legale": ["CSS L611-20 al.2 (v. 2017-01-01)"],
            "regles_version": "al2-2017.1",
            "prestation_id": "PRE-1",
            "decision_revisee_id": "7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b11",
            "avant": VERSEMENT_DELEGUE,
            "apres": VERSEMENT_DIRECT,
            "nature": "ALLOCATION_REPOS_MATERNEL",
            "montant_cents": 326900,
        }
        | changes
    )


def on_the_wire(payload: EncaissementRevise | VersementRevise) -> bytes:
    event = envelop(
        payload,
        event_id=uuid.uuid4(),
        occurred_at=datetime(2017, 7, 2, tzinfo=UTC),
        source="collection",
        correlation_id="dossier-1",
        causation_id=str(uuid.uuid4()),
    )
    return to_wire(event)


@pytest.mark.parametrize(
    ("model", "fields", "allowed"),
    [
        (EncaissementRevise, encaissement(), topics.COLLECTION_DECISION_TYPES),
        (VersementRevise, versement(), topics.BENEFITS_DECISION_TYPES),
    ],
)
def test_a_revision_round_trips_on_its_topic_with_every_outcome_field_present(
    model: type[EncaissementRevise | VersementRevise], fields: dict[str, Any], allowed: Any
) -> None:
    payload = model.model_validate(fields)
    wire = on_the_wire(payload)
    parsed = parse_outbound(wire, allowed=allowed, key=NIR.encode())
    assert parsed.payload == payload and to_wire(parsed) == wire
    assert expected_key(parsed) == NIR.encode()
    document = json.loads(wire)["payload"]
    assert document["avant"] == fields["avant"] and document["apres"] == fields["apres"]
    other = (
        topics.BENEFITS_DECISION_TYPES
        if model is EncaissementRevise
        else (topics.COLLECTION_DECISION_TYPES)
    )
    with pytest.raises(ContractError, match="not allowed"):
        parse_outbound(wire, allowed=other)


def test_the_payload_of_a_revision_built_in_code_has_every_field() -> None:
    payload = EncaissementRevise.model_validate(encaissement()).payload
    assert set(payload["avant"]) == set(DELEGATED) and payload["avant"]["motif"] is None
    assert payload["deja_encaisse_cents"] == 30000 and payload["contentieux_transfere"] is True


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"deja_encaisse_cents": -1}, "greater than or equal to 0"),
        ({"deja_encaisse_cents": SUM_MAX + 1}, "less than or equal to"),
        ({"deja_encaisse_cents": 1.0}, "valid integer"),
        ({"deja_encaisse_cents": "30000"}, "valid integer"),
        ({"deja_encaisse_cents": True}, "valid integer"),
        ({"contentieux_transfere": 1}, "valid boolean"),
        ({"contentieux_transfere": "true"}, "valid boolean"),
        ({"contentieux_transfere": None}, "valid boolean"),
        ({"decision_revisee_id": "COT-1"}, "UUID"),
        ({"apres": DELEGATED}, "avant and apres are equal"),
        ({"avant": NOT_DELEGATED, "apres": DELEGATED}, "no organism leaves"),
        ({"apres": DELEGATED | {"convention_id": "CNV-C9"}}, "no organism leaves"),
        ({"apres": DELEGATED | {"organisme_id": None}}, "delegated outcome has"),
        ({"apres": NOT_DELEGATED | {"motif": None}}, "not delegated has a motif"),
        ({"apres": NOT_DELEGATED | {"organisme_id": "OC-M2"}}, "not delegated has a motif"),
        ({"apres": DELEGATED | {"recouvreur": "URSSAF", "organisme_id": "OC-M2"}}, "recouvreur"),
        ({"apres": NOT_DELEGATED | {"event_type": "PaiementNonImpute"}}, "event_type"),
        ({"apres": NOT_DELEGATED | {"motif": "PAS_UN_MOTIF"}}, "motif"),
        ({"apres": {k: v for k, v in NOT_DELEGATED.items() if k != "recouvreur"}}, "recouvreur"),
        ({"avant": None}, "avant"),
        ({"cotisation_id": " COT-1"}, "whitespace"),
    ],
)
def test_an_encaissement_revise_refuses(changes: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        EncaissementRevise.model_validate(encaissement(**changes))


def test_an_organism_that_only_changes_convention_carries_no_money() -> None:
    same_organism = DELEGATED | {"convention_id": "CNV-C0"}
    quiet = encaissement(apres=same_organism, deja_encaisse_cents=0, contentieux_transfere=False)
    assert EncaissementRevise.model_validate(quiet).apres.organisme_id == "OC-M"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"apres": VERSEMENT_DELEGUE}, "avant and apres are equal"),
        ({"montant_cents": 0}, "greater than 0"),
        ({"apres": VERSEMENT_DIRECT | {"event_type": "PrestationNonTraitee"}}, "event_type"),
        ({"apres": VERSEMENT_DIRECT | {"convention_id": "CNV-C2"}}, "not delegated has a motif"),
        ({"avant": VERSEMENT_DELEGUE | {"convention_id": None}}, "delegated outcome has"),
        ({"avant": VERSEMENT_DELEGUE | {"recouvreur": "URSSAF"}}, None),  # unknown: ignored
        ({"nature": "IJ_INCONNUE"}, "nature"),
    ],
)
def test_a_versement_revise_refuses(changes: dict[str, Any], why: str | None) -> None:
    if why is None:
        assert VersementRevise.model_validate(versement(**changes)).avant.motif is None
        return
    with pytest.raises(ValidationError, match=why):
        VersementRevise.model_validate(versement(**changes))


def test_a_revision_whose_outcome_misses_a_field_is_a_contract_breach_on_the_wire() -> None:
    wire = json.loads(on_the_wire(EncaissementRevise.model_validate(encaissement())))
    del wire["payload"]["apres"]["motif"]
    with pytest.raises(ContractError) as caught:
        parse_outbound(json.dumps(wire).encode())
    assert caught.value.field == "payload.apres.motif"
