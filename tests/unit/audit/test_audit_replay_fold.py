"""Replay as a pure fold: recorded decisions are recomputed from the recorded inputs, in
order, with the registry as it was and the rule set each decision names."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from audit_memory import MemoryRecord

from contracts.inbound import CotisationDue
from services.adapters.eventstore import StoredEvent
from services.domain.catalog import BENEFITS, COLLECTION, ServiceDescription
from services.domain.collection.rules import RULES_2017, RuleSet, decide_contribution
from services.domain.collection.view import CollectionView
from services.tools.audit.reading import Selection, steps
from services.tools.audit.replay import Mode, Replayer, ReplaySummary
from services.tools.audit.sample import (
    ASSUREUR,
    MUTUELLE,
    NIR_A,
    NIR_B,
    NIR_C,
    benefit,
    due,
    payment,
    registry,
    unpaid,
)

pytestmark = pytest.mark.unit

URSSAF_MID_2017 = replace(
    RULES_2017, version="al1-2017.2", debut_recouvrement_urssaf=date(2017, 7, 1)
)


def _replay(
    events: list[StoredEvent],
    *,
    service: ServiceDescription = COLLECTION,
    mode: Mode = "verify",
    rules: RuleSet | None = None,
    selection: Selection | None = None,
) -> ReplaySummary:
    replayer = Replayer(service, mode=mode, rules=rules, selection=selection)
    for step in steps(events):
        replayer.step(step)
    return replayer.summary


def _collection_history() -> MemoryRecord:
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    record.record(due("COT-A", NIR_A, 2017, 195000))
    record.record(payment("PAY-A1", "COT-A", NIR_A, 50000))
    record.record(payment("PAY-A2", "COT-A", NIR_A, 25000))
    record.record(unpaid("COT-A", NIR_A, 120000))
    record.record(due("COT-A18", NIR_A, 2018, 1000))
    record.record(due("COT-C", NIR_C, 2017, 98000))
    record.record(payment("PAY-C1", "COT-C", NIR_C, 10000))
    record.reject()
    record.record(due("COT-B", NIR_B, 2017, 120000))
    record.record(payment("PAY-B1", "COT-B", NIR_B, 30000))
    record.record(payment("PAY-X", "COT-X", NIR_A, 100))
    record.record(
        (
            "AffiliationEnregistree",
            {"nir": NIR_B, "organisme_id": MUTUELLE, "mode": "CHOIX", "effet_du": "2017-01-01"},
        )
    )
    return record


def _decisions(events: list[StoredEvent]) -> list[StoredEvent]:
    return [e for e in events if e.metadata.get("service")]


def test_a_faithful_record_replays_decision_for_decision() -> None:
    record = _collection_history()
    summary = _replay(record.events)
    assert summary.ok, summary.mismatches
    assert summary.events_read == len(record.events)
    assert summary.decisions_checked == summary.matched == len(_decisions(record.events))
    assert summary.inputs == len(record.events) - summary.matched - 1
    assert summary.rejections == 1


def test_the_benefits_record_replays_too() -> None:
    record = MemoryRecord(BENEFITS)
    for fact in registry():
        record.record(fact)
    record.record(benefit("PRE-A", NIR_A, "2017-05-02", 326900))
    record.record(benefit("PRE-B", NIR_B, "2017-05-02", 1000))
    record.record(
        (
            "AffiliationEnregistree",
            {"nir": NIR_B, "organisme_id": MUTUELLE, "mode": "CHOIX", "effet_du": "2017-01-01"},
        )
    )
    summary = _replay(record.events, service=BENEFITS)
    assert summary.ok and summary.matched == 3


def test_an_altered_decision_is_reported_at_its_position_with_the_fields_that_differ() -> None:
    record = _collection_history()
    target = record.of_type("PaiementEncaissePourCompte")[0]
    forged = replace(
        target, payload=target.payload | {"organisme_id": ASSUREUR, "montant_cents": 5000}
    )
    events = [forged if e.position == target.position else e for e in record.events]
    summary = _replay(events)
    assert len(summary.mismatches) == 1
    found = summary.mismatches[0]
    assert (found.kind, found.position, found.input_position, found.event_type) == (
        "altered",
        target.position,
        target.position - 1,
        "PaiementEncaissePourCompte",
    )
    assert [(d.path, d.recorded, d.replayed) for d in found.diffs] == [
        ("payload.montant_cents", 5000, 50000),
        ("payload.organisme_id", ASSUREUR, MUTUELLE),
    ]
    assert summary.matched == len(_decisions(events)) - 1  # the rest still holds


def test_a_changed_event_type_or_metadata_is_a_mismatch_too() -> None:
    record = _collection_history()
    target = record.of_type("ContentieuxDelegue")[0]
    forged = replace(target, metadata=target.metadata | {"correlation_id": "forged"})
    summary = _replay([forged if e.position == target.position else e for e in record.events])
    assert [d.path for m in summary.mismatches for d in m.diffs] == ["metadata.correlation_id"]


def test_a_decision_naming_an_unknown_rule_set_is_reported_as_such() -> None:
    record = _collection_history()
    target = record.of_type("EncaissementDelegue")[0]
    forged = replace(target, payload=target.payload | {"regles_version": "al1-2099.1"})
    summary = _replay([forged if e.position == target.position else e for e in record.events])
    [found] = summary.mismatches
    assert found.kind == "unknown_rules" and "al1-2099.1" in found.note
    assert [d.path for d in found.diffs] == ["payload.regles_version"]


def test_an_input_the_contract_refuses_on_replay_is_reported_and_folded_as_recorded() -> None:
    record = _collection_history()
    target = record.of_type("PaiementRecu")[0]
    forged = replace(target, payload=target.payload | {"nir": "123"})
    summary = _replay([forged if e.position == target.position else e for e in record.events])
    [found] = summary.mismatches
    assert (found.kind, found.position) == ("refused", target.position)
    assert "ValidationError" in found.note


def test_a_registry_fact_recorded_after_a_decision_does_not_change_its_replay() -> None:
    record = _collection_history()
    [decided] = [
        e for e in record.of_type("EncaissementDelegue") if e.payload["cotisation_id"] == "COT-A"
    ]
    # later, retroactively: NIR_A moves to an organism without convention, and the
    # convention COT-A was delegated under is terminated before it started
    record.record(
        (
            "AffiliationEnregistree",
            {"nir": NIR_A, "organisme_id": ASSUREUR, "mode": "OFFICE", "effet_du": "2016-01-01"},
        )
    )
    record.record(("ConventionResiliee", {"convention_id": "CNV-ENC-01", "effet_au": "2016-12-31"}))
    [cotisation] = [
        e for e in record.of_type("CotisationDue") if e.payload["cotisation_id"] == "COT-A"
    ]
    view = record.processor.view
    assert isinstance(view, CollectionView)
    today = decide_contribution(CotisationDue.model_validate(cotisation.payload), view.registry)
    assert (today.event_type, today.payload["motif"]) == (
        "EncaissementNonDelegue",
        "AUCUNE_CONVENTION",
    )
    summary = _replay(record.events)
    assert summary.ok, summary.mismatches
    assert decided.payload["organisme_id"] == MUTUELLE


def test_verify_uses_the_rule_set_each_decision_recorded() -> None:
    record = _collection_history()
    record.processor.rules = URSSAF_MID_2017  # a correction deployed mid-history
    record.record(due("COT-D", NIR_A, 2017, 1000))
    late = due("COT-E", NIR_A, 2017, 1000)[1] | {
        "periode": {"debut": "2017-09-01", "fin": "2017-12-31"}
    }
    record.record(("CotisationDue", late))
    both = replace(COLLECTION, rule_sets={r.version: r for r in (RULES_2017, URSSAF_MID_2017)})
    assert _replay(record.events, service=both).ok
    summary = _replay(record.events)  # a registry that lost the new rule set
    assert {m.kind for m in summary.mismatches} == {"unknown_rules"}
    assert len(summary.mismatches) == 2


def test_what_if_lists_exactly_the_decisions_other_rules_would_change() -> None:
    record = _collection_history()
    record.record(due("COT-J", NIR_A, 2017, 100000))  # from January: unchanged
    july = due("COT-L", NIR_A, 2017, 100000)[1] | {
        "periode": {"debut": "2017-07-01", "fin": "2017-12-31"}
    }
    record.record(("CotisationDue", july))
    record.record(payment("PAY-L1", "COT-L", NIR_A, 40000))
    record.record(unpaid("COT-L", NIR_A, 60000))
    expected = [
        e.position for e in _decisions(record.events) if e.payload.get("cotisation_id") == "COT-L"
    ]
    summary = _replay(record.events, mode="what-if", rules=URSSAF_MID_2017)
    assert [m.position for m in summary.mismatches] == expected
    changes = [(m.event_type, m.replayed_type) for m in summary.mismatches]
    assert changes == [
        ("EncaissementDelegue", "EncaissementNonDelegue"),
        ("PaiementEncaissePourCompte", "PaiementNonImpute"),
        ("ContentieuxDelegue", "ContentieuxSansObjet"),
    ]
    first = {d.path: d.replayed for d in summary.mismatches[0].diffs}
    assert first["payload.motif"] == "RECOUVREMENT_URSSAF"
    assert first["payload.base_legale[0]"] == "Loi 2015-1702 art.13"
    assert summary.matched == summary.decisions_checked - 3


def test_what_if_with_the_rules_in_force_changes_nothing() -> None:
    summary = _replay(_collection_history().events, mode="what-if")
    assert summary.ok and summary.matched > 0


def test_only_the_selected_decisions_are_checked_and_reported() -> None:
    record = _collection_history()
    target = record.of_type("PaiementNonImpute")[0]  # COT-C's payment
    forged = replace(target, payload=target.payload | {"motif": "SOLDE_NUL"})
    events = [forged if e.position == target.position else e for e in record.events]
    about_b = _replay(events, selection=Selection(subject="COT-B"))
    assert about_b.ok and about_b.decisions_checked == 4  # 2 parked, then decided
    about_c = _replay(events, selection=Selection(subject="COT-C"))
    assert [m.position for m in about_c.mismatches] == [target.position]
    before = _replay(events, selection=Selection(to_position=target.position - 1))
    assert before.ok
    assert before.decisions_checked == len(
        [e for e in _decisions(events) if e.position < target.position]
    )
