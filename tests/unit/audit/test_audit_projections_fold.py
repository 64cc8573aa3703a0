"""The balance projections, as a pure fold of recorded decisions."""

from __future__ import annotations

import pytest
from audit_memory import MemoryRecord

from services.adapters.eventstore.projections import (
    SOMMES_DETENUES,
    VERSEMENTS_DELEGUES,
    ProjectionCheck,
    fold,
)
from services.domain.catalog import BENEFITS, COLLECTION
from services.tools.audit.sample import (
    MUTUELLE,
    NIR_A,
    NIR_B,
    NIR_C,
    benefit,
    due,
    payment,
    registry,
)

pytestmark = pytest.mark.unit


def _pairs(record: MemoryRecord) -> list[tuple[str, dict[str, object] | None]]:
    return [(e.event_type, e.payload) for e in record.events]


def test_money_held_is_summed_by_organism_and_caisse_from_delegated_payments_only() -> None:
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    record.record(due("COT-1", NIR_A, 2017, 100000))
    record.record(due("COT-2", NIR_A, 2017, 100000, caisse="PL-PACA"))
    record.record(due("COT-3", NIR_C, 2017, 100000))  # ineligible organism: not delegated
    record.record(payment("P1", "COT-1", NIR_A, 30000))
    record.record(payment("P2", "COT-1", NIR_A, 80000))  # over-payment: held all the same
    record.record(payment("P3", "COT-2", NIR_A, 5000))
    record.record(payment("P4", "COT-3", NIR_C, 7000))  # PaiementNonImpute
    assert fold(SOMMES_DETENUES, _pairs(record)) == {
        (MUTUELLE, "PL-IDF"): (110000, 2),
        (MUTUELLE, "PL-PACA"): (5000, 1),
    }
    assert fold(VERSEMENTS_DELEGUES, _pairs(record)) == {}


def test_benefits_paid_on_behalf_count_delegated_payments_only() -> None:
    record = MemoryRecord(BENEFITS)
    for fact in registry():
        record.record(fact)
    record.record(benefit("B1", NIR_A, "2017-05-02", 326900))
    record.record(benefit("B2", NIR_A, "2017-06-01", 100))
    record.record(benefit("B3", NIR_C, "2017-06-01", 5000))  # no convention: direct
    record.record(benefit("B4", NIR_B, "2017-06-01", 5000))  # parked
    assert fold(VERSEMENTS_DELEGUES, _pairs(record)) == {(MUTUELLE, "PL-IDF"): (327000, 2)}


def test_folding_in_two_parts_equals_folding_at_once_and_leaves_the_start_untouched() -> None:
    p = {"organisme_id": "O", "caisse_de_base": "C", "montant_cents": 10}
    events = [("PaiementEncaissePourCompte", p)] * 3
    start = fold(SOMMES_DETENUES, events[:1])
    assert fold(SOMMES_DETENUES, events[1:], start) == fold(SOMMES_DETENUES, events)
    assert start == {("O", "C"): (10, 1)}


def test_a_check_lists_the_rows_that_differ() -> None:
    check = ProjectionCheck(
        "sommes_detenues",
        10,
        12,
        live={("O", "C"): (10, 1)},
        rebuilt={("O", "C"): (10, 1), ("O", "D"): (5, 1)},
    )
    assert not check.ok
    assert check.differences == [
        {"organisme_id": "O", "caisse_de_base": "D", "live": None, "rebuilt": (5, 1)}
    ]
