"""A trail points each decision at the recorded registry facts it relied on."""

from __future__ import annotations

import pytest
from audit_memory import MemoryRecord

from services.domain.catalog import COLLECTION
from services.tools.audit.sample import MUTUELLE, NIR_A, NIR_C, due, registry
from services.tools.audit.trail import TrailEntry, relied_on

pytestmark = pytest.mark.unit


def test_a_delegation_relied_on_the_organism_the_convention_and_the_affiliation() -> None:
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    record.record(
        (
            "OrganismeDeclare",
            {"organisme_id": MUTUELLE, "nom": "Renamed", "forme_juridique": "MUTUELLE"},
        )
    )
    _, decision = record.record(due("COT-1", NIR_A, 2017, 1000))
    later = record.record(
        (
            "OrganismeDeclare",
            {"organisme_id": MUTUELLE, "nom": "Later", "forme_juridique": "MUTUELLE"},
        )
    )
    facts = [
        e
        for e in record.events
        if e.event_type in ("OrganismeDeclare", "ConventionConclue", "AffiliationEnregistree")
    ]
    # the latest declaration before the decision, never one recorded after it
    assert relied_on(decision, facts) == (4, 6, 8)
    assert later[0].position not in relied_on(decision, facts)


def test_a_decision_without_a_convention_relies_on_two_facts() -> None:
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    _, decision = record.record(due("COT-C", NIR_C, 2017, 1000))
    assert decision.payload["motif"] == "ORGANISME_INELIGIBLE"
    assert relied_on(decision, record.events) == (3, 7)
    lines = TrailEntry("decision", decision, (3, 7), 8).lines()
    assert "règles al1-2017.1" in lines[1] and "cause #8" in lines[1]
    assert lines[2].endswith("(#3, #7)")
