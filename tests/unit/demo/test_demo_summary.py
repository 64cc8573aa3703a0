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
    """A decision caused by `cause`; `event_id=...` among the fields is its event id."""
    document = {"event_type": event_type, "causation_id": cause, "payload": payload}
    if "event_id" in payload:
        document["event_id"] = payload.pop("event_id")
    return json.dumps(document).encode()


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


def _outcome(organisme: str | None) -> dict[str, Any]:
    return {
        "event_type": "EncaissementDelegue" if organisme else "EncaissementNonDelegue",
        "organisme_id": organisme,
    }


def test_revisions_settle_no_input_and_are_counted_apart() -> None:
    """A revision is caused by a registry fact: every input is still decided once, the
    revision is counted by service, with the money moved, the move and what is owed."""
    scenario = generate(150, 5, "RSUM")
    collector = _play(scenario)
    due = next(m for m in scenario.messages if m.event_type == "CotisationDue")
    decision_id = "decision-of-the-due"
    collector.record(
        "dc", None, _decision("EncaissementDelegue", due.event_id, event_id=decision_id), []
    )
    fact = next(m for m in scenario.messages if m.phase == 4)
    m, m2 = scenario.tagged("OC-MUT-01"), scenario.tagged("OC-GSA-01")
    revisions = [
        ("dc", "r1", _outcome(m), _outcome(m2), 30000),
        ("dc", "r2", _outcome(m2), _outcome(None), 0),
        ("db", "r3", _outcome(None), _outcome(m), 0),
    ]
    for topic, event_id, avant, apres, held in revisions:
        document = _decision(
            "EncaissementRevise" if topic == "dc" else "VersementRevise",
            fact.event_id,
            event_id=event_id,
            decision_revisee_id=decision_id,
            avant=avant,
            apres=apres,
            deja_encaisse_cents=held,
        )
        collector.record(topic, None, document, [])
    summary = summarise(scenario, collector, 2.0)
    assert summary.unexpected == [f"collection decided CotisationDue {due.subject} 2 times"]
    assert summary.decided == {s: scenario.expected()[s]["decided"] for s in (COLLECTION, BENEFITS)}
    assert summary.revisions == {COLLECTION: [2, 30000], BENEFITS: [1, 0]}
    assert summary.count(COLLECTION, "EncaissementRevise") == 2
    assert summary.moves == {
        (BENEFITS, "", "OC-MUT-01"): 1,
        (COLLECTION, "OC-GSA-01", ""): 1,
        (COLLECTION, "OC-MUT-01", "OC-GSA-01"): 1,
    }
    assert summary.owed == {"OC-MUT-01": [1, 30000]}
    text = summary.render()
    assert "collection       2 revisions  300.00 € moved" in text
    assert json.loads(json.dumps(summary.to_json()))["revisions"][COLLECTION] == {
        "count": 2,
        "deja_encaisse_cents": 30000,
    }


def test_a_revision_of_an_input_or_of_an_unseen_decision_is_unexpected() -> None:
    scenario = generate(150, 5, "RSUM")
    collector = _play(scenario)
    due = next(m for m in scenario.messages if m.event_type == "CotisationDue")
    revision = _decision(
        "EncaissementRevise",
        due.event_id,
        event_id="r1",
        decision_revisee_id="never-published",
        avant=_outcome(None),
        apres=_outcome(scenario.tagged("OC-MUT-01")),
    )
    collector.record("dc", None, revision, [])
    collector.record("dc", None, revision, [])
    unexpected = summarise(scenario, collector, 2.0).unexpected
    assert len(unexpected) == 3
    assert unexpected[0].startswith("collection revised on CotisationDue")
    assert unexpected[1].startswith("collection revised a decision not seen")
    assert unexpected[2] == "collection published revision r1 twice"


@pytest.mark.parametrize(
    ("cents", "text"),
    [(195_000, "1,950.00 €"), (5, "0.05 €"), (-12_345, "-123.45 €"), (0, "0.00 €")],
)
def test_euros(cents: int, text: str) -> None:
    assert euros(cents) == text
