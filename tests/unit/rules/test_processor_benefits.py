"""The benefits processor: parking and unparking, duplicates, deterministic and valid decisions,
and a view that refolds to the same state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import BaseModel

from contracts import OUTBOUND_CLASSES
from services.domain.benefits.rules import RULES_2017
from services.domain.benefits.view import BenefitsView

if TYPE_CHECKING:
    # the fixtures' types: pytest imports conftest.py itself, a test module cannot import it
    # at run time; mypy knows the rules conftest under this name (see [tool.mypy])
    from unit.rules.conftest import Builders, Driver

pytestmark = pytest.mark.unit

VERS = "VERSEMENT_PRESTATIONS_ESPECES"


def kinds(events: list[Any]) -> list[str]:
    return [e.event_type for e in events]


def test_a_parked_benefit_is_decided_when_its_affiliation_arrives(
    b: type[Builders], benefits: Driver
) -> None:
    benefits.given(b.org(), b.convention(objet=VERS))
    parked = benefits.send(b.prestation(), correlation_id="CORR-B")
    [waiting] = benefits.decisions(parked)
    assert (waiting.event_type, waiting.payload["sujet_id"], waiting.payload["motif"]) == (
        "DecisionEnAttente",
        "PRE-1",
        "AFFILIATION_INCONNUE",
    )

    arrival = benefits.send(b.affiliation())

    [decided] = benefits.decisions(arrival)
    assert decided.event_type == "VersementDelegue"
    assert decided.metadata["causation_id"] == str(parked.events[0][2].event_id)
    assert decided.metadata["correlation_id"] == "CORR-B"
    assert decided.metadata["decided_on"] == str(arrival.events[0][2].event_id)
    assert kinds(benefits.all_decisions()) == ["DecisionEnAttente", "VersementDelegue"]
    assert benefits.view.parking.undecided == {}


def test_a_benefit_waiting_for_an_undeclared_organism_is_decided_when_it_is_declared(
    b: type[Builders], benefits: Driver
) -> None:
    benefits.given(b.affiliation(), b.prestation())
    [decided] = benefits.decisions(benefits.send(b.org()))
    assert (decided.event_type, decided.payload["motif"]) == (
        "VersementDirect",
        "AUCUNE_CONVENTION",
    )


@pytest.mark.parametrize(
    "fact",
    [
        pytest.param(lambda b: b.org(oid="OC-OTHER"), id="another organism declared"),
        pytest.param(lambda b: b.affiliation(nir=b.NIR2), id="another NIR affiliated"),
        pytest.param(lambda b: b.affiliation(du="2017-06-01"), id="an affiliation starting later"),
        pytest.param(lambda b: b.convention(cid="CNV-2", objet=VERS), id="a convention concluded"),
    ],
)
def test_an_unrelated_fact_does_not_repeat_the_decision_en_attente(
    b: type[Builders], benefits: Driver, fact: Callable[[type[Builders]], BaseModel]
) -> None:
    benefits.given(b.org(), b.prestation(le="2017-05-02"))
    assert benefits.decisions(benefits.send(fact(b))) == []
    assert kinds(benefits.all_decisions()) == ["DecisionEnAttente"]
    assert len(benefits.view.parking.parked()) == 1


def test_several_benefits_parked_on_one_nir_are_decided_by_prestation_id(
    b: type[Builders], benefits: Driver
) -> None:
    benefits.given(
        b.org(),
        b.convention(objet=VERS),
        b.prestation(pid="PRE-2"),
        b.prestation(pid="PRE-1", nature="IJ_MATERNITE"),
    )
    decided = benefits.decisions(benefits.send(b.affiliation()))
    assert [d.payload["prestation_id"] for d in decided] == ["PRE-1", "PRE-2"]  # domain.md


def test_a_decided_benefit_is_not_rewritten_a_later_registry_fact_revises_it(
    b: type[Builders], benefits: Driver
) -> None:
    """The decision stays on record; the termination that removes its convention is
    followed by a VersementRevise naming it; an affiliation to an organism not declared
    yet revises nothing (a revision never parks)."""
    benefits.given(*b.delegable(objet=VERS), b.prestation())
    [decision] = benefits.all_decisions()
    [revision] = benefits.decisions(benefits.send(b.resiliation(au="2017-01-31")))
    assert revision.event_type == "VersementRevise"
    assert revision.payload["decision_revisee_id"] == str(decision.event_id)
    assert revision.payload["apres"]["motif"] == "AUCUNE_CONVENTION"
    assert benefits.decisions(benefits.send(b.affiliation(oid="OC-B", du="2017-01-01"))) == []
    assert kinds(benefits.all_decisions()) == ["VersementDelegue", "VersementRevise"]


def test_a_second_benefit_under_the_same_id_with_other_content_is_refused(
    b: type[Builders], benefits: Driver
) -> None:
    benefits.given(*b.delegable(objet=VERS), b.prestation(nature="IJ_MATERNITE"))
    outcome = benefits.send(b.prestation(nature="IJ_PATERNITE"))
    assert outcome.events == [] and not outcome.duplicate
    assert outcome.refused is not None
    assert outcome.refused.field == "payload.prestation_id" and "nature" in outcome.refused.reason


def test_the_same_benefit_under_a_new_event_id_is_a_duplicate(
    b: type[Builders], benefits: Driver
) -> None:
    benefits.given(*b.delegable(objet=VERS), b.prestation())
    outcome = benefits.send(b.prestation())
    assert outcome.duplicate and outcome.events == [] and outcome.refused is None


def test_a_parked_benefit_resent_is_a_duplicate(b: type[Builders], benefits: Driver) -> None:
    benefits.given(b.prestation())
    assert benefits.send(b.prestation()).duplicate
    assert len(benefits.view.parking.parked()) == 1


def history(b: Any) -> list[Any]:
    """Every decision type of alinéa 2, with parking and unparking."""
    return [
        b.prestation(pid="PRE-1"),  # parked
        b.org(),
        b.convention(objet=VERS),
        b.affiliation(),  # VersementDelegue
        b.prestation(pid="PRE-2", le="2016-12-31"),  # PrestationNonTraitee
        b.prestation(pid="PRE-3", caisse="PL-PACA", categorie="ARTISAN"),  # VersementDirect
        b.prestation(pid="PRE-4", nir=b.NIR2, nature="IJ_PATERNITE"),  # parked
        b.affiliation(nir=b.NIR2, oid="OC-B"),  # org unknown: stays
        b.org(oid="OC-B", forme="ORGANISME_SECURITE_SOCIALE"),  # VersementDirect
    ]


def run(driver: Driver, payloads: list[Any]) -> list[Any]:
    for payload in payloads:
        driver.send(payload)
    return driver.log


def test_the_same_history_gives_identical_events_in_two_fresh_processors(
    b: type[Builders], new_driver: Callable[[str], Driver]
) -> None:
    first, second = new_driver("benefits"), new_driver("benefits")
    assert run(first, history(b)) == run(second, history(b))
    assert kinds(first.all_decisions()) == [
        "DecisionEnAttente",
        "VersementDelegue",
        "PrestationNonTraitee",
        "VersementDirect",
        "DecisionEnAttente",
        "VersementDirect",
    ]


def test_every_decision_is_a_valid_outbound_message_with_basis_version_and_facts(
    b: type[Builders], benefits: Driver
) -> None:
    run(benefits, history(b))
    for event in benefits.all_decisions():
        envelope = OUTBOUND_CLASSES[event.event_type].model_validate(
            {
                "event_id": event.event_id,
                "occurred_at": datetime(2017, 1, 1, tzinfo=UTC),
                "source": "benefits",
                "correlation_id": event.metadata["correlation_id"],
                "causation_id": event.metadata["causation_id"],
                "payload": event.payload,
            }
        )
        assert envelope.payload.base_legale
        assert envelope.payload.regles_version == RULES_2017.version
        if event.event_type == "VersementDelegue":
            faits = envelope.payload.faits_retenus
            assert faits is not None and faits.convention is not None
            assert faits.convention.objet == VERS


def refolded(log: list[Any]) -> BenefitsView:
    view = BenefitsView()
    for position, (stream_id, _, event) in enumerate(log, 1):
        view.position = position
        view.apply(stream_id, str(event.event_id), event.event_type, event.payload, event.metadata)
    return view


def state(view: BenefitsView) -> dict[str, Any]:
    return {
        "parked": {k: (w.waits_for, w.motif) for k, w in view.parking.parked().items()},
        "undecided": sorted(view.parking.undecided),
        "by_key": view.parking.by_key,
        "benefits": view.benefits,
        "versions": view.versions,
    }


@pytest.mark.parametrize("cut", [1, 7, None])
def test_folding_the_emitted_events_gives_the_processors_own_view(
    b: type[Builders], benefits: Driver, cut: int | None
) -> None:
    run(benefits, history(b)[:cut])
    assert state(refolded(benefits.log)) == state(benefits.view)
    assert state(benefits.view)["benefits"]
