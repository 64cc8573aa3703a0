"""Every producer of inbound records in the repository keeps the contract: each valid message
it makes passes the door under the Kafka key it is sent with (the demo scenario, the
benchmark's data, the audit's sample feed and republished inputs, the integration tests'
helpers). A producer that keyed a record by the wrong field would fail here, not at a
consumer that refuses it."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import support

from contracts import ContractError, parse_inbound, topics
from services.adapters.eventstore import StoredEvent
from services.tools.audit import sample
from services.tools.audit.feed import envelope as feed_envelope
from services.tools.audit.republish import input_message
from services.tools.bench import pipeline
from services.tools.demo.scenario import BREACH, COTISATIONS, PRESTATIONS, REFERENTIEL, generate

pytestmark = pytest.mark.unit

ALLOWED = {
    REFERENTIEL: topics.REFERENTIEL_EVENT_TYPES,
    COTISATIONS: topics.COTISATIONS_EVENT_TYPES,
    PRESTATIONS: topics.PRESTATIONS_EVENT_TYPES,
}
BY_TYPE = {t: types for types in ALLOWED.values() for t in types}


def _keeps_the_contract(value: bytes | None, key: bytes | None) -> None:
    event = parse_inbound(value, key=key)
    parse_inbound(value, allowed=BY_TYPE[event.event_type], key=key)


def test_the_demo_scenario_sends_every_valid_message_under_its_contract_key() -> None:
    scenario = generate(3000, 7, "R1234567ABCDEFGH")  # the longest run tag there is
    valid = [m for m in scenario.messages if m.kind != BREACH]
    assert len(valid) > 3000
    for m in valid:
        parse_inbound(m.value, allowed=ALLOWED[m.topic], key=m.key)


def test_the_demo_breaches_are_refused_for_what_they_break_not_for_their_key() -> None:
    for m in generate(3000, 7, "RK").messages:
        if m.kind == BREACH:
            with pytest.raises(ContractError) as refused:
                parse_inbound(m.value, allowed=ALLOWED[m.topic], key=m.key)
            assert refused.value.field != "key", m.note


def test_the_benchmark_sends_its_registry_and_inputs_under_their_contract_keys() -> None:
    for key, event_type, payload in pipeline.registry_facts(120):
        _keeps_the_contract(pipeline.envelope(event_type, payload, str(uuid.uuid4())), key)
    for kind in pipeline.KINDS.values():
        for message in pipeline.inputs(kind, 200, 50, "tp"):
            _keeps_the_contract(message.value, message.key)


def _support_facts() -> list[tuple[str, dict[str, Any]]]:
    n = support.nir(7)
    return [
        support.organisme("OC-1"),
        support.convention("CNV-1", "OC-1", caisses=("PL-IDF", "PL-PACA"), au="2017-12-31"),
        ("ConventionResiliee", {"convention_id": "CNV-1", "effet_au": "2017-06-30"}),
        support.affiliation(n, "OC-1"),
        support.cotisation("COT-1", n),
        support.paiement("PAY-1", "COT-1", n, 1000),
        (
            "CotisationImpayee",
            {
                "cotisation_id": "COT-1",
                "nir": n,
                "restant_du_cents": 1,
                "constatee_le": "2017-03-01",
            },
        ),
        support.prestation("PRE-1", n),
    ]


@pytest.mark.parametrize("fact", _support_facts(), ids=lambda f: f[0])
def test_the_integration_tests_feed_keys_each_fact_as_the_contract_says(
    fact: tuple[str, dict[str, Any]],
) -> None:
    _keeps_the_contract(support.envelope(*fact), support.key_of(fact[1]))


def _audit_facts() -> list[tuple[str, dict[str, Any]]]:
    return [
        *sample.registry(),
        (
            "CotisationDue",
            {
                "cotisation_id": "COT-A-2017",
                "nir": sample.NIR_A,
                "categorie": "PROFESSION_LIBERALE",
                "caisse_de_base": "PL-IDF",
                "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
                "montant_cents": 195000,
                "exigible_le": "2017-02-05",
            },
        ),
    ]


def test_the_audit_feed_and_republished_inputs_are_keyed_as_the_contract_says() -> None:
    for position, (event_type, payload) in enumerate(_audit_facts(), start=1):
        key = payload.get("nir") or payload.get("convention_id") or payload.get("organisme_id")
        assert key is not None
        event_id = uuid.uuid4()
        _keeps_the_contract(feed_envelope(event_type, payload, event_id=event_id), key.encode())
        stored = StoredEvent(
            position,
            "s",
            1,
            event_id,
            event_type,
            1,
            json.loads(json.dumps(payload)),
            {
                "occurred_at": "2017-01-15T08:00:00+00:00",
                "source": "audit-feed",
                "correlation_id": None,
                "causation_id": None,
            },
            datetime(2017, 1, 15, tzinfo=UTC),
            b"",
        )
        out = input_message(stored, "audit")
        _keeps_the_contract(out.value, out.key)
