"""A subject the rules fail on when revising it is set aside once per fact (domain.md
"Large revisions"), however many inputs about it come before the step that reaches it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest

from contracts import make_nir
from services.domain.kernel.tasks import REVISION_SET_ASIDE

if TYPE_CHECKING:
    from unit.rules.conftest import Builders, Driver

pytestmark = pytest.mark.unit

PEOPLE = sorted(make_nir(f"18001751{n:05d}") for n in range(3))


def _steps(collection: Driver, limit: int) -> None:
    while (step := collection.processor.next_step(limit)) is not None:
        outcome = collection.processor.process(step)
        assert outcome.refused is None
        collection.log.extend(outcome.events)


def test_a_subject_is_set_aside_once_per_fact_not_once_per_input_about_it(
    b: type[Builders], collection: Driver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A subject the rules fail on is set aside "on record" so that the fact goes on. With
    the task not at its person yet, each payment on it tries its revision first
    (`revise_pending`), fails, and records another `RevisionEcartee` for the same fact and
    subject; then the step that reaches the person records one more. One fact, one subject:
    one record of it set aside (and one error logged and counted), not one per input."""
    collection.steps = 0
    collection.given(b.org(), b.convention())
    for n, person in enumerate(PEOPLE):
        collection.given(b.affiliation(nir=person))
        collection.send(b.cotisation(cid=f"COT-{n}", nir=person, debut="2017-07-01"))
    revision = collection.processor.revision

    def failing(state: Any, revised: UUID, rules: Any) -> Any:
        if state.due["cotisation_id"] == "COT-2":
            raise ArithmeticError("a value the rules cannot take")
        return revision(state, revised, rules)

    monkeypatch.setattr(collection.processor, "revision", failing)
    collection.send(b.resiliation(au="2017-06-30"))
    for n in range(3):  # three payments on COT-2 before the task reaches its person
        collection.send(b.paiement(pid=f"PAY-{n}", cid="COT-2", nir=PEOPLE[2], montant=100))
    _steps(collection, 1)
    asides = [e for _, _, e in collection.log if e.event_type == REVISION_SET_ASIDE]
    assert [a.payload["cotisation_id"] for a in asides] == ["COT-2"], len(asides)
