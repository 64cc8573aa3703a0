"""Large revisions in steps (services/domain/kernel/tasks.py, domain.md "Large revisions"):
a fact about an organism opens a task; each step re-evaluates the subjects of a span of its
people; a follow-up on a subject the task has not reached yet is decided after its revision.

The processors are driven input by input over their own whole fold, steps recorded only
when a test asks (`Driver.steps = 0`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from contracts import make_nir
from services.domain.kernel.processing import Input
from services.domain.kernel.tasks import REVISION_SET_ASIDE, REVISION_STEP, EtapeDeRevision

if TYPE_CHECKING:
    from unit.rules.conftest import Builders, Driver

pytestmark = pytest.mark.unit

PEOPLE = sorted(make_nir(f"18001751{n:05d}") for n in range(5))


def _population(b: type[Builders], collection: Driver) -> list[UUID]:
    """Five people affiliated to the organism under its al.1 convention, a contribution each
    delegated to it; returns the ids of those decisions."""
    collection.steps = 0
    collection.given(b.org(), b.convention())
    decided = []
    for n, person in enumerate(PEOPLE):
        collection.given(b.affiliation(nir=person))
        [decision] = collection.decisions(
            collection.send(b.cotisation(cid=f"COT-{n}", nir=person, debut="2017-07-01"))
        )
        assert decision.event_type == "EncaissementDelegue"
        decided.append(decision.event_id)
    return decided


def _steps(collection: Driver, limit: int) -> list[list[str]]:
    """Record every step of the open tasks, `limit` people each; the event types of each."""
    recorded = []
    while (step := collection.processor.next_step(limit)) is not None:
        outcome = collection.processor.process(step)
        assert outcome.refused is None
        collection.log.extend(outcome.events)
        recorded.append([e.event_type for _, _, e in outcome.events])
    return recorded


def test_a_termination_opens_a_task_and_its_steps_revise_each_subject_once(
    b: type[Builders], collection: Driver
) -> None:
    decided = _population(b, collection)
    termination = collection.send(b.resiliation(au="2017-06-30"))
    assert [e.event_type for _, _, e in termination.events] == [
        "ConventionResiliee",
        "RevisionsOuvertes",
    ]
    opened = termination.events[1][2].payload
    assert opened == {"fait_id": str(termination.events[0][2].event_id), "organismes": [b.OC]}

    steps = _steps(collection, 2)
    assert steps == [
        [REVISION_STEP, "EncaissementRevise", "EncaissementRevise"],
        [REVISION_STEP, "EncaissementRevise", "EncaissementRevise"],
        [REVISION_STEP, "EncaissementRevise"],  # the last person: the span reaches the end
    ]
    spans = [e.payload for _, _, e in collection.log if e.event_type == REVISION_STEP]
    assert [(s["apres"], s["jusqu_a"]) for s in spans] == [
        ("", PEOPLE[1]),
        (PEOPLE[1], PEOPLE[3]),
        (PEOPLE[3], None),
    ]
    revisions = [e for _, _, e in collection.log if e.event_type == "EncaissementRevise"]
    assert sorted(UUID(r.payload["decision_revisee_id"]) for r in revisions) == sorted(decided)
    fact = str(termination.events[0][2].event_id)
    assert all(r.metadata["causation_id"] == fact for r in revisions)  # the cause: the fact
    step_ids = {str(e.event_id) for _, _, e in collection.log if e.event_type == REVISION_STEP}
    assert {r.metadata["decided_on"] for r in revisions} <= step_ids  # recorded by a step
    assert not collection.processor.view.tasks and _steps(collection, 2) == []


def test_a_follow_up_the_task_has_not_reached_is_decided_after_its_revision(
    b: type[Builders], collection: Driver
) -> None:
    """domain.md: until a subject's revision is recorded, a follow-up on it is decided after
    it, never on the superseded outcome; the step that reaches it later records nothing."""
    _population(b, collection)
    fact = collection.send(b.resiliation(au="2017-06-30")).events[0][2].event_id
    assert len(_steps_once(collection, 2)) == 3  # the first two people revised
    last = PEOPLE[4]
    payment = collection.send(b.paiement(cid="COT-4", nir=last))
    kinds = [e.event_type for _, _, e in payment.events]
    assert kinds == ["PaiementRecu", "EncaissementRevise", "PaiementNonImpute"]
    revision = payment.events[1][2]
    assert revision.metadata["causation_id"] == str(fact)
    assert revision.metadata["decided_on"] == str(payment.events[0][2].event_id)
    rest = _steps(collection, 2)
    assert rest == [
        [REVISION_STEP, "EncaissementRevise", "EncaissementRevise"],
        [REVISION_STEP],  # COT-4's revision is on record already
    ]


def _steps_once(collection: Driver, limit: int) -> list[str]:
    step = collection.processor.next_step(limit)
    assert step is not None
    outcome = collection.processor.process(step)
    collection.log.extend(outcome.events)
    return [e.event_type for _, _, e in outcome.events]


def test_a_decision_taken_after_the_fact_is_not_revised_by_its_task(
    b: type[Builders], collection: Driver
) -> None:
    """A contribution decided after the termination was decided knowing it: the task that
    reaches its person leaves it as it is (even though the registry changed since)."""
    collection.steps = 0
    collection.given(b.org(), b.convention(), b.affiliation())
    collection.send(b.resiliation(au="2017-06-30"))
    [decision] = collection.decisions(collection.send(b.cotisation(debut="2017-07-01")))
    assert decision.event_type == "EncaissementNonDelegue"
    assert _steps(collection, 10) == [[REVISION_STEP]]  # its one person: nothing to revise


def test_an_organism_nobody_was_affiliated_to_opens_no_task(
    b: type[Builders], collection: Driver
) -> None:
    collection.steps = 0
    outcome = collection.send(b.org(oid="OC-NEW"))
    assert [e.event_type for _, _, e in outcome.events] == ["OrganismeDeclare"]
    assert collection.processor.next_step(10) is None


@pytest.mark.parametrize(
    "change",
    [
        {"apres": "0"},  # not where the task stands
        {"organisme_id": "OC-OTHER"},
        {"fait_id": UUID(int=7)},  # no such task
    ],
)
def test_a_step_that_is_not_the_task_s_next_is_refused(
    b: type[Builders], collection: Driver, change: dict[str, object]
) -> None:
    _population(b, collection)
    collection.send(b.resiliation(au="2017-06-30"))
    step = collection.processor.next_step(2)
    assert step is not None and isinstance(step.payload, EtapeDeRevision)
    wrong = step.payload.model_copy(update=change)
    outcome = collection.processor.process(
        Input(step.event_id, step.event_type, wrong, step.metadata)
    )
    assert outcome.refused is not None and outcome.events == []
    assert outcome.refused.field == "payload.fait_id"


def test_benefits_are_revised_in_steps_too(b: type[Builders], benefits: Driver) -> None:
    benefits.steps = 0
    benefits.given(b.org(), b.convention(objet="VERSEMENT_PRESTATIONS_ESPECES"))
    for n, person in enumerate(PEOPLE):
        benefits.given(b.affiliation(nir=person), b.prestation(pid=f"PRE-{n}", nir=person))
    benefits.send(b.resiliation(au="2016-12-31"))
    revised = [k for kinds in _steps(benefits, 3) for k in kinds if k == "VersementRevise"]
    assert len(revised) == len(PEOPLE)


def test_a_subject_the_rules_fail_on_is_set_aside_and_the_step_goes_on(
    b: type[Builders], collection: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record that makes the revision raise (every time: pure code) would stop the task
    for everyone; it is set aside on record, with the error's class only, and the others
    are revised."""
    _population(b, collection)
    revision = collection.processor.revision

    def failing(state: Any, revised: UUID, rules: Any) -> Any:
        if state.due["cotisation_id"] == "COT-2":
            raise ArithmeticError("a value the rules cannot take: " + state.due["nir"])
        return revision(state, revised, rules)

    monkeypatch.setattr(collection.processor, "revision", failing)
    collection.send(b.resiliation(au="2017-06-30"))
    kinds = [k for step in _steps(collection, 10) for k in step]
    assert kinds.count("EncaissementRevise") == 4 and kinds.count(REVISION_SET_ASIDE) == 1
    [aside] = [e for _, _, e in collection.log if e.event_type == REVISION_SET_ASIDE]
    assert (
        aside.payload["cotisation_id"] == "COT-2" and aside.payload["erreur"] == "ArithmeticError"
    )
    assert PEOPLE[2] not in str(aside.payload)  # no personal value in the record of it
    assert collection.view.contributions["COT-2"].outcome["event_type"] == "EncaissementDelegue"
