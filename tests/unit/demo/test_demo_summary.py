"""The demo's bookkeeping: outputs matched to the scenario's inputs, and the summary."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.tools.demo.run import Collector, euros, summarise
from services.tools.demo.scenario import BENEFITS, COLLECTION, INPUT, Scenario, generate

pytestmark = pytest.mark.unit

OUTPUTS = {
    "dc": (COLLECTION, "decision"),
    "rc": (COLLECTION, "rejection"),
    "db": (BENEFITS, "decision"),
    "rb": (BENEFITS, "rejection"),
}


def _decision(event_type: str, cause: str | None, **payload: Any) -> bytes:
    return json.dumps(
        {"event_type": event_type, "causation_id": cause, "payload": payload}
    ).encode()


def _play(scenario: Scenario, *, skip: int | None = None) -> Collector:
    """What well-behaved services would publish for `scenario` (but for message `skip`)."""
    collector = Collector(scenario, OUTPUTS)
    for index, m in enumerate(scenario.messages):
        collector.produced_at((m.topic, 0, index), index)
    org = scenario.tagged("OC-MUT-01")
    for index, m in enumerate(scenario.messages):
        if index == skip:
            continue
        for service in m.rejected_by:
            headers = [
                ("reject_reason", b"payload.x: broken"),
                ("source_topic", m.topic.encode()),
                ("source_partition", b"0"),
                ("source_offset", str(index).encode()),
            ]
            collector.record("rc" if service == COLLECTION else "rb", m.key, m.value, headers)
        if m.kind != INPUT:
            continue
        topic = "dc" if COLLECTION in m.services else "db"
        if m.parks:
            collector.record(
                topic,
                m.key,
                _decision("DecisionEnAttente", m.event_id, motif="AFFILIATION_INCONNUE"),
                [],
            )
        final = {
            "CotisationDue": ("EncaissementDelegue", {"montant_cents": 100}),
            "PaiementRecu": ("PaiementEncaissePourCompte", {"montant_cents": 40}),
            "CotisationImpayee": ("ContentieuxDelegue", {"restant_du_cents": 60}),
            "PrestationEspecesDue": ("VersementDelegue", {"montant_cents": 7}),
        }[str(m.event_type)]
        collector.record(
            topic,
            m.key,
            _decision(final[0], m.event_id, organisme_id=org, caisse_de_base="PL-IDF", **final[1]),
            [],
        )
    return collector


def test_a_complete_run_is_summarised() -> None:
    scenario = generate(150, 5, "RSUM")
    summary = summarise(scenario, _play(scenario), 2.0)
    expected = scenario.expected()
    assert summary.complete and not summary.unexpected
    for service in (COLLECTION, BENEFITS):
        assert summary.decided[service] == expected[service]["decided"]
        assert sum(summary.parked[service].values()) == expected[service]["parked"]
        assert sum(summary.rejected[service].values()) == expected[service]["rejected"]
        assert summary.still_parked.get(service, 0) == 0
    dues = len(scenario.payloads("CotisationDue"))
    assert summary.delegated == {"OC-MUT-01": [dues, 100 * dues]}
    payments = len(scenario.payloads("PaiementRecu"))
    assert summary.reversements == {("OC-MUT-01", "PL-IDF"): [payments, 40 * payments]}
    assert summary.count(COLLECTION, "EncaissementDelegue") == dues
    text = summary.render()
    assert "every input got its decision or its rejection" in text
    assert "Mutuelle des Professions Libérales" in text and "RSUM" not in text
    assert json.loads(json.dumps(summary.to_json()))["complete"] is True


def test_what_is_missing_is_named() -> None:
    scenario = generate(150, 5, "RSUM")
    skipped = next(
        i
        for i, m in enumerate(scenario.messages)
        if m.kind == INPUT and m.event_type == "PrestationEspecesDue"
    )
    summary = summarise(scenario, _play(scenario, skip=skipped), 2.0)
    assert not summary.complete
    (missing,) = summary.missing
    assert missing.startswith("benefits: no decision for PrestationEspecesDue PRE-")


def test_a_rejection_read_before_its_produce_acknowledgement_is_matched_later() -> None:
    scenario = generate(150, 5, "RSUM")
    collector = Collector(scenario, OUTPUTS)
    index = next(i for i, m in enumerate(scenario.messages) if m.rejected_by == (COLLECTION,))
    headers = [
        ("source_topic", b"cotisations"),
        ("source_partition", b"2"),
        ("source_offset", b"17"),
        ("reject_reason", b"x"),
    ]
    collector.record("rc", None, b"", headers)
    assert collector.unmatched
    collector.produced_at(("cotisations", 2, 17), index)
    collector.rematch()
    assert (COLLECTION, index) in collector.rejected and not collector.unmatched


def test_outputs_of_other_runs_are_ignored() -> None:
    scenario = generate(150, 5, "RSUM")
    collector = Collector(scenario, OUTPUTS)
    collector.record("dc", None, _decision("EncaissementDelegue", "not-ours"), [])
    collector.record("dc", None, b"not json", [])
    assert collector.foreign == 2 and collector.received == 0


@pytest.mark.parametrize(
    ("cents", "text"),
    [(195_000, "1,950.00 €"), (5, "0.05 €"), (-12_345, "-123.45 €"), (0, "0.00 €")],
)
def test_euros(cents: int, text: str) -> None:
    assert euros(cents) == text
