"""Building messages in code: envelopes, Kafka keys and headers, decisions on the wire."""

import json
from datetime import UTC, date, datetime
from uuid import UUID

import pytest
from pydantic import ValidationError

from contracts import (
    AffiliationRetenue,
    ContractError,
    ConventionResiliee,
    CotisationDueEvent,
    DecisionEnAttente,
    EncaissementDelegue,
    EncaissementDelegueEvent,
    EncaissementNonDelegue,
    FaitsRetenus,
    FormeJuridique,
    InboundPayload,
    ModeAffiliation,
    Motif,
    OrganismeDeclare,
    OutboundPayload,
    envelop,
    kafka_headers,
    parse_inbound,
    parse_outbound,
    partition_key,
    to_wire,
    topics,
)

pytestmark = pytest.mark.unit

NIR = "255081416802538"
EVENT_ID = UUID("7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10")
AT = datetime(2017, 2, 1, 9, 30, tzinfo=UTC)
COMMON = {
    "nir": NIR,
    "caisse_de_base": "PL-IDF",
    "base_legale": ("CSS L611-20 al.1 (v. 2017-01-01)",),
    "regles_version": "2017.1",
}


def delegated() -> EncaissementDelegue:
    return EncaissementDelegue(
        **COMMON,
        cotisation_id="COT-2017-000123",
        organisme_id="OC-MUT-01",
        convention_id="CNV-2017-001",
        montant_cents=195000,
        faits_retenus=FaitsRetenus(
            affiliation=AffiliationRetenue(
                organisme_id="OC-MUT-01", mode=ModeAffiliation.CHOIX, effet_du=date(2016, 1, 1)
            )
        ),
    )


def test_envelop_wraps_a_decision_in_the_envelope_of_its_type() -> None:
    event = envelop(
        delegated(), event_id=EVENT_ID, occurred_at=AT, source="collection", causation_id="c-1"
    )
    assert isinstance(event, EncaissementDelegueEvent)
    assert (event.event_type, event.schema_version, event.causation_id) == (
        "EncaissementDelegue",
        1,
        "c-1",
    )


def test_envelop_refuses_a_naive_occurred_at() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        envelop(delegated(), event_id=EVENT_ID, occurred_at=datetime(2017, 2, 1), source="x")


def test_a_decision_on_the_wire_is_compact_json_with_every_field_and_iso_dates() -> None:
    event = envelop(delegated(), event_id=EVENT_ID, occurred_at=AT, source="collection")
    wire = to_wire(event)
    assert b": " not in wire and b", " not in wire
    document = json.loads(wire)
    assert document["occurred_at"] == "2017-02-01T09:30:00Z"
    assert document["correlation_id"] is None
    assert document["payload"]["faits_retenus"] == {
        "affiliation": {"organisme_id": "OC-MUT-01", "mode": "CHOIX", "effet_du": "2016-01-01"},
        "organisme": None,
        "convention": None,
    }
    assert parse_outbound(wire, allowed=topics.COLLECTION_DECISION_TYPES) == event


def test_a_collection_decision_is_refused_where_benefits_decisions_are_expected() -> None:
    wire = to_wire(envelop(delegated(), event_id=EVENT_ID, occurred_at=AT, source="c"))
    with pytest.raises(ContractError, match="not allowed"):
        parse_outbound(wire, allowed=topics.BENEFITS_DECISION_TYPES)


def test_recouvreur_is_required_but_may_be_null() -> None:
    decision = EncaissementNonDelegue(
        **COMMON,
        cotisation_id="COT-2016-1",
        motif=Motif.PERIODE_ANTERIEURE_A_2017,
        recouvreur=None,
    )
    assert json.loads(decision.model_dump_json())["recouvreur"] is None
    with pytest.raises(ValidationError, match="recouvreur"):
        EncaissementNonDelegue.model_validate(
            {**COMMON, "cotisation_id": "C", "motif": "AUCUNE_CONVENTION"}
        )


def test_a_balance_may_be_negative_but_a_decision_needs_a_legal_basis() -> None:
    with pytest.raises(ValidationError, match="base_legale"):
        DecisionEnAttente(**{**COMMON, "base_legale": ()}, sujet_id="PAY-1", motif=Motif.SOLDE_NUL)


def test_models_are_frozen() -> None:
    with pytest.raises(ValidationError, match="frozen"):
        # mypy refuses the assignment too (frozen model): the test is that pydantic does
        delegated().montant_cents = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("payload", "key"),
    [
        (
            OrganismeDeclare(organisme_id="OC-1", nom="M", forme_juridique=FormeJuridique.MUTUELLE),
            "OC-1",
        ),
        (ConventionResiliee(convention_id="CNV-1", effet_au=date(2017, 6, 30)), "CNV-1"),
        (delegated(), NIR),
    ],
)
def test_the_kafka_key_is_the_organism_the_convention_or_the_nir(
    payload: InboundPayload | OutboundPayload, key: str
) -> None:
    event = envelop(payload, event_id=EVENT_ID, occurred_at=AT, source="s")
    assert partition_key(event) == key


def test_outbound_headers_carry_event_type_event_id_and_schema_version() -> None:
    event = envelop(delegated(), event_id=EVENT_ID, occurred_at=AT, source="s")
    assert kafka_headers(event) == [
        ("event_type", b"EncaissementDelegue"),
        ("event_id", str(EVENT_ID).encode()),
        ("schema_version", b"1"),
    ]


def test_an_inbound_envelope_built_in_code_parses_back_equal() -> None:
    wire = (
        b'{"event_id":"7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10","event_type":"CotisationDue",'
        b'"schema_version":1,"occurred_at":"2017-01-15T08:00:00+01:00","source":"s",'
        b'"payload":{"cotisation_id":"C","nir":"255081416802538","categorie":"ARTISAN",'
        b'"caisse_de_base":"PL-IDF","periode":{"debut":"2017-01-01","fin":"2017-01-01"},'
        b'"montant_cents":1,"exigible_le":"2017-02-05"}}'
    )
    event = parse_inbound(wire)
    assert isinstance(event, CotisationDueEvent)
    assert CotisationDueEvent(**dict(event)) == event
    assert parse_inbound(to_wire(event)) == event
