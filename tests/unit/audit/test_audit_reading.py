"""Steps group each recorded input with the decisions that follow it; selections choose
what a command reports on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from audit_memory import T0, MemoryRecord

from services.domain.catalog import COLLECTION
from services.tools.audit.reading import Selection, steps, subjects_of
from services.tools.audit.sample import NIR_A, NIR_B, due, payment, registry, unpaid

pytestmark = pytest.mark.unit


def _history() -> MemoryRecord:
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    record.record(due("COT-1", NIR_A, 2017, 100000))
    record.record(payment("PAY-1", "COT-1", NIR_A, 40000))
    record.reject()
    record.record(due("COT-B", NIR_B, 2017, 50000))
    record.record(payment("PAY-B", "COT-B", NIR_B, 1000))
    record.record(
        (
            "AffiliationEnregistree",
            {"nir": NIR_B, "organisme_id": "OC-MUT-01", "mode": "CHOIX", "effet_du": "2017-01-01"},
        )
    )
    record.record(unpaid("COT-1", NIR_A, 60000))
    return record


def test_each_input_or_rejection_heads_a_step_holding_the_decisions_after_it() -> None:
    record = _history()
    found = list(steps(record.events))
    assert [s.head.position for s in found] == [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 13, 15, 17, 20]
    assert sum(1 + len(s.decisions) for s in found) == len(record.events)
    unblocking = next(
        s
        for s in found
        if s.head.event_type == "AffiliationEnregistree" and s.head.payload["nir"] == NIR_B
    )
    assert [d.event_type for d in unblocking.decisions] == [
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
    ]
    assert [s.rejection for s in found].count(True) == 1
    assert found[-1].last_position == len(record.events)


def test_a_position_range_covers_its_bounds_only() -> None:
    events = _history().events
    selection = Selection(from_position=9, to_position=11)
    assert [e.position for e in events if selection.covers(e)] == [9, 10, 11]


def test_a_date_range_is_on_the_recording_time() -> None:
    events = _history().events
    selection = Selection(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=5))
    assert [e.position for e in events if selection.covers(e)] == [3, 4]


def test_a_subject_covers_decisions_naming_it_and_decisions_of_its_inputs() -> None:
    events = _history().events
    selection = Selection(subject="COT-B")
    covered = []
    for event in events:
        selection.note_input(event)
        if selection.covers(event):
            covered.append((event.event_type, event.payload.get("sujet_id")))
    # the parked payment's DecisionEnAttente names the payment, not its contribution
    assert covered == [
        ("CotisationDue", None),
        ("DecisionEnAttente", "COT-B"),
        ("PaiementRecu", None),
        ("DecisionEnAttente", "PAY-B"),
        ("EncaissementDelegue", None),
        ("PaiementEncaissePourCompte", None),
    ]


def test_subjects_of_a_payload_are_its_business_ids_and_nir() -> None:
    assert subjects_of(payment("PAY-1", "COT-1", NIR_A, 1)[1]) == {"PAY-1", "COT-1", NIR_A}
