"""The collection processor: parking and unparking, follow-ups in order, business-id checks,
deterministic ids, contract-valid decisions, and a view that refolds to the same state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

import pytest
from pydantic import BaseModel

from contracts import OUTBOUND_CLASSES
from services.domain.collection.rules import RULES_2017
from services.domain.collection.view import CollectionView
from services.domain.kernel.processing import decision_id

if TYPE_CHECKING:
    # the fixtures' types: pytest imports conftest.py itself, a test module cannot import it
    # at run time; mypy knows the rules conftest under this name (see [tool.mypy])
    from unit.rules.conftest import Builders, Driver

pytestmark = pytest.mark.unit


def kinds(events: list[Any]) -> list[str]:
    return [e.event_type for e in events]


def test_a_parked_contribution_is_decided_when_its_affiliation_arrives(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.convention())
    parked = collection.send(b.cotisation(), correlation_id="CORR-1")
    [waiting] = collection.decisions(parked)
    assert (waiting.event_type, waiting.payload["motif"]) == (
        "DecisionEnAttente",
        "AFFILIATION_INCONNUE",
    )
    parked_id = parked.events[0][2].event_id

    arrival = collection.send(b.affiliation())

    affiliation_id = arrival.events[0][2].event_id
    [decided] = collection.decisions(arrival)
    assert decided.event_type == "EncaissementDelegue"
    assert decided.metadata["causation_id"] == str(parked_id)
    assert decided.metadata["correlation_id"] == "CORR-1"
    assert decided.metadata["decided_on"] == str(affiliation_id)
    # the DecisionEnAttente stays on record, followed by the decision
    assert kinds(collection.all_decisions()) == ["DecisionEnAttente", "EncaissementDelegue"]
    assert collection.view.parking.undecided == {}


def test_a_contribution_waiting_for_an_undeclared_organism_is_decided_when_it_is_declared(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.affiliation(), b.convention())
    [waiting] = collection.decisions(collection.send(b.cotisation()))
    assert waiting.event_type == "DecisionEnAttente"

    [decided] = collection.decisions(collection.send(b.org()))

    assert decided.event_type == "EncaissementDelegue"
    assert decided.metadata["causation_id"] == waiting.metadata["causation_id"]


@pytest.mark.parametrize(
    "fact",
    [
        pytest.param(lambda b: b.org(oid="OC-OTHER"), id="another organism declared"),
        pytest.param(lambda b: b.affiliation(nir=b.NIR2), id="another NIR affiliated"),
        pytest.param(lambda b: b.affiliation(du="2017-06-01"), id="an affiliation starting later"),
        pytest.param(lambda b: b.convention(cid="CNV-2"), id="a convention concluded"),
        pytest.param(lambda b: b.resiliation(), id="a convention terminated"),
    ],
)
def test_an_unrelated_fact_does_not_repeat_the_decision_en_attente(
    b: type[Builders], collection: Driver, fact: Callable[[type[Builders]], BaseModel]
) -> None:
    collection.given(b.org(), b.convention(), b.cotisation(debut="2017-03-01"))

    outcome = collection.send(fact(b))

    assert collection.decisions(outcome) == []
    assert kinds(collection.all_decisions()) == ["DecisionEnAttente"]
    assert len(collection.view.parking.parked()) == 1


def test_payments_before_their_contribution_are_parked_then_handled_in_arrival_order(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention())
    first = collection.send(b.paiement(pid="PAY-1", montant=100000))
    second = collection.send(b.paiement(pid="PAY-2", montant=120000))
    for outcome, pid in ((first, "PAY-1"), (second, "PAY-2")):
        [waiting] = collection.decisions(outcome)
        assert (waiting.event_type, waiting.payload["motif"], waiting.payload["sujet_id"]) == (
            "DecisionEnAttente",
            "COTISATION_INCONNUE",
            pid,
        )
        assert waiting.payload["caisse_de_base"] is None

    arrival = collection.send(b.cotisation(montant=195000))

    decided = collection.decisions(arrival)
    assert kinds(decided) == [
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
        "PaiementEncaissePourCompte",
    ]
    assert [(d.payload["paiement_id"], d.payload["solde_restant_cents"]) for d in decided[1:]] == [
        ("PAY-1", 95000),
        ("PAY-2", -25000),
    ]
    assert [d.metadata["causation_id"] for d in decided[1:]] == [
        str(first.events[0][2].event_id),
        str(second.events[0][2].event_id),
    ]
    assert collection.view.contributions["COT-1"].paid_cents == 220000


def test_an_unpaid_notice_before_its_contribution_is_decided_after_earlier_payments(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(
        b.org(),
        b.affiliation(),
        b.convention(),
        b.paiement(pid="PAY-1", montant=150000),
        b.impaye(restant=45000),
        b.paiement(pid="PAY-2", montant=45000),
    )

    decided = collection.decisions(collection.send(b.cotisation(montant=195000)))

    assert kinds(decided) == [
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
        "ContentieuxDelegue",
        "PaiementEncaissePourCompte",
    ]
    assert decided[2].payload["restant_du_cents"] == 45000
    assert decided[3].payload["solde_restant_cents"] == 0


def test_payments_on_a_delegated_contribution_track_the_balance_down_past_zero(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation(montant=195000))
    soldes = []
    for n, amount in enumerate((50000, 100000, 60000)):
        [d] = collection.decisions(collection.send(b.paiement(pid=f"PAY-{n}", montant=amount)))
        assert d.event_type == "PaiementEncaissePourCompte"
        soldes.append(d.payload["solde_restant_cents"])
    assert soldes == [145000, 45000, -15000]

    [litigation] = collection.decisions(collection.send(b.impaye()))
    assert (litigation.event_type, litigation.payload["motif"]) == (
        "ContentieuxSansObjet",
        "SOLDE_NUL",
    )


def test_an_unpaid_delegated_contribution_goes_to_litigation_for_its_balance(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(
        b.org(),
        b.affiliation(),
        b.convention(),
        b.cotisation(montant=195000),
        b.paiement(montant=50000),
    )
    [litigation] = collection.decisions(collection.send(b.impaye(restant=1)))
    assert litigation.event_type == "ContentieuxDelegue"
    assert litigation.payload["restant_du_cents"] == 145000
    assert litigation.payload["organisme_id"] == b.OC


def test_follow_ups_of_a_non_delegated_contribution_are_not_imputed_nor_litigated(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.cotisation(categorie="ARTISAN"))
    [payment] = collection.decisions(collection.send(b.paiement()))
    [unpaid] = collection.decisions(collection.send(b.impaye()))
    assert (payment.event_type, payment.payload["motif"]) == ("PaiementNonImpute", "NON_DELEGUE")
    assert (unpaid.event_type, unpaid.payload["motif"]) == ("ContentieuxSansObjet", "NON_DELEGUE")


def test_a_payment_on_a_contribution_parked_for_its_affiliation_is_parked_and_decided_after(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.convention(), b.cotisation())
    [waiting] = collection.decisions(collection.send(b.paiement(pid="PAY-5")))
    assert (waiting.event_type, waiting.payload["sujet_id"], waiting.payload["motif"]) == (
        "DecisionEnAttente",
        "PAY-5",
        "AFFILIATION_INCONNUE",
    )
    assert waiting.payload["caisse_de_base"] == b.CAISSE

    decided = collection.decisions(collection.send(b.affiliation()))

    assert kinds(decided) == ["EncaissementDelegue", "PaiementEncaissePourCompte"]
    assert decided[1].payload["solde_restant_cents"] == 145000
    assert collection.view.parking.undecided == {}


def test_a_payment_parked_before_a_contribution_that_gets_parked_waits_for_both(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.convention(), b.paiement())
    arrival = collection.send(b.cotisation())
    assert kinds(collection.decisions(arrival)) == ["DecisionEnAttente"]  # the contribution's

    decided = collection.decisions(collection.send(b.affiliation()))

    assert kinds(decided) == ["EncaissementDelegue", "PaiementEncaissePourCompte"]
    assert kinds(collection.all_decisions()) == [
        "DecisionEnAttente",
        "DecisionEnAttente",
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
    ]


def test_a_decided_contribution_is_not_rewritten_a_later_registry_fact_revises_it(
    b: type[Builders], collection: Driver
) -> None:
    """The termination revises it (no convention in force any more); an affiliation to an
    organism not declared yet, and a correction of the old organism's form while that
    affiliation is in force, revise nothing (a revision never parks); the next payment
    follows the revised outcome."""
    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation(debut="2017-03-01"))
    [decision] = collection.all_decisions()

    later = [
        collection.decisions(collection.send(f))
        for f in (
            b.resiliation(au="2017-01-31"),
            b.affiliation(oid="OC-B", du="2017-01-01"),
            b.org(forme="ORGANISME_SECURITE_SOCIALE"),
        )
    ]

    [[revision], [], []] = later
    assert revision.payload["decision_revisee_id"] == str(decision.event_id)
    assert revision.payload["apres"]["motif"] == "AUCUNE_CONVENTION"
    [payment] = collection.decisions(collection.send(b.paiement()))
    assert (payment.event_type, payment.payload["motif"]) == ("PaiementNonImpute", "NON_DELEGUE")


def test_a_contribution_without_convention_is_revised_when_a_retroactive_one_arrives(
    b: type[Builders], collection: Driver
) -> None:
    """domain.md, revisions, example 3: the decision stays on record, a revision follows it,
    and the next payment is held by the organism."""
    collection.given(b.org(), b.affiliation(), b.cotisation(debut="2017-03-01"))
    [revision] = collection.decisions(collection.send(b.convention(du="2017-01-01")))
    assert (revision.event_type, revision.payload["apres"]["organisme_id"]) == (
        "EncaissementRevise",
        b.OC,
    )
    [payment] = collection.decisions(collection.send(b.paiement()))
    assert (payment.event_type, payment.payload["organisme_id"]) == (
        "PaiementEncaissePourCompte",
        b.OC,
    )
    assert kinds(collection.all_decisions()) == [
        "EncaissementNonDelegue",
        "EncaissementRevise",
        "PaiementEncaissePourCompte",
    ]


def test_an_unpaid_notice_on_a_parked_contribution_waits_and_is_litigated_after(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.convention(), b.cotisation(montant=195000))
    [waiting] = collection.decisions(collection.send(b.impaye()))
    assert (waiting.event_type, waiting.payload["sujet_id"], waiting.payload["motif"]) == (
        "DecisionEnAttente",
        "COT-1",
        "AFFILIATION_INCONNUE",
    )

    decided = collection.decisions(collection.send(b.affiliation()))

    assert kinds(decided) == ["EncaissementDelegue", "ContentieuxDelegue"]
    assert decided[1].payload["restant_du_cents"] == 195000


def test_a_second_contribution_under_the_same_id_with_other_content_is_refused(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation(montant=195000))
    before = len(collection.log)

    outcome = collection.send(b.cotisation(montant=195001))

    assert outcome.events == [] and not outcome.duplicate
    assert outcome.refused is not None
    assert outcome.refused.field == "payload.cotisation_id"
    assert "montant_cents" in outcome.refused.reason
    assert len(collection.log) == before
    assert collection.view.contributions["COT-1"].due["montant_cents"] == 195000


def test_the_same_contribution_under_a_new_event_id_is_a_duplicate(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation())
    outcome = collection.send(b.cotisation())
    assert outcome.duplicate and outcome.events == [] and outcome.refused is None


def test_a_parked_contribution_resent_is_a_duplicate_not_a_second_wait(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.cotisation())
    outcome = collection.send(b.cotisation())
    assert outcome.duplicate and outcome.events == []
    assert len(collection.view.parking.parked()) == 1


def test_a_payment_id_reused_with_other_content_is_refused_and_resent_is_a_duplicate(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation(), b.paiement())
    assert collection.send(b.paiement()).duplicate
    refused = collection.send(b.paiement(montant=1))
    assert refused.refused is not None and refused.refused.field == "payload.paiement_id"
    assert "montant_cents" in refused.refused.reason
    assert collection.view.contributions["COT-1"].paid_cents == 50000


def test_a_follow_up_naming_another_nir_than_its_contribution_is_refused(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation())
    for follow_up in (b.paiement(nir=b.NIR2), b.impaye(nir=b.NIR2)):
        outcome = collection.send(follow_up)
        assert outcome.events == []
        assert outcome.refused is not None and outcome.refused.field == "payload.nir"


def test_a_payment_naming_another_nir_is_not_booked_whichever_arrives_first(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention(), b.paiement(nir=b.NIR2))
    decided = collection.decisions(collection.send(b.cotisation()))
    assert "PaiementEncaissePourCompte" not in kinds(decided)


def test_a_decision_carries_the_correlation_id_of_its_input_or_its_event_id(
    b: type[Builders], collection: Driver
) -> None:
    collection.given(b.org(), b.affiliation(), b.convention())
    with_corr = collection.decisions(collection.send(b.cotisation(), correlation_id="C-9"))
    without = collection.send(b.cotisation(cid="COT-2"))
    assert with_corr[0].metadata["correlation_id"] == "C-9"
    assert collection.decisions(without)[0].metadata["correlation_id"] == str(
        without.events[0][2].event_id
    )
    assert "decided_on" not in with_corr[0].metadata


def history(b: Any) -> list[Any]:
    """Every decision type of alinéa 1, with parking and unparking on the way."""
    return [
        b.paiement(pid="PAY-0", cid="COT-1", montant=100000),  # parked: no contribution
        b.org(),
        b.convention(),
        b.cotisation(cid="COT-1"),  # parked: no affiliation
        b.paiement(pid="PAY-1", cid="COT-1", montant=50000),  # parked behind it
        b.affiliation(),  # unparks all three
        b.paiement(pid="PAY-2", cid="COT-1", montant=90000),  # negative balance
        b.impaye(cid="COT-1"),  # SOLDE_NUL
        b.cotisation(cid="COT-2", montant=100000),
        b.impaye(cid="COT-2"),  # ContentieuxDelegue
        b.cotisation(cid="COT-3", debut="2016-12-31"),
        b.cotisation(cid="COT-4", debut="2018-01-01"),
        b.cotisation(cid="COT-5", categorie="COMMERCANT"),
        b.paiement(pid="PAY-5", cid="COT-5"),
        b.impaye(cid="COT-5"),  # NON_DELEGUE both
        b.org(oid="OC-SS", forme="ORGANISME_SECURITE_SOCIALE"),
        b.affiliation(nir=b.NIR2, oid="OC-SS"),
        b.cotisation(cid="COT-6", nir=b.NIR2),  # ORGANISME_INELIGIBLE
        b.cotisation(cid="COT-7", caisse="PL-PACA"),  # AUCUNE_CONVENTION
    ]


def run(driver: Driver, payloads: list[Any]) -> list[tuple[str, int, Any]]:
    for payload in payloads:
        driver.send(payload)
    return driver.log


def test_the_same_history_gives_identical_events_in_two_fresh_processors(
    b: type[Builders], new_driver: Callable[[str], Driver]
) -> None:
    first, second = new_driver("collection"), new_driver("collection")
    assert run(first, history(b)) == run(second, history(b))
    assert len(first.all_decisions()) >= 15


def test_decision_ids_derive_from_the_trigger_and_rank(
    b: type[Builders], collection: Driver
) -> None:
    run(collection, history(b))
    inputs = {e.event_id for _, _, e in collection.log if e.event_type not in OUTBOUND_CLASSES}
    ids = [e.event_id for _, _, e in collection.log]
    assert len(set(ids)) == len(ids)
    trigger = None
    for rank, (_, _, event) in enumerate(collection.log):
        if event.event_id in inputs:
            trigger, start = event.event_id, rank
        else:
            assert trigger is not None  # the log starts with an input
            assert event.event_id == decision_id(trigger, rank - start, "collection")


def test_every_decision_is_a_valid_outbound_message_with_basis_version_and_facts(
    b: type[Builders], collection: Driver
) -> None:
    run(collection, history(b))
    decisions = collection.all_decisions()
    assert set(kinds(decisions)) == {
        "EncaissementDelegue",
        "EncaissementNonDelegue",
        "PaiementEncaissePourCompte",
        "PaiementNonImpute",
        "ContentieuxDelegue",
        "ContentieuxSansObjet",
        "DecisionEnAttente",
    }
    for event in decisions:
        envelope = OUTBOUND_CLASSES[event.event_type].model_validate(
            {
                "event_id": event.event_id,
                "occurred_at": datetime(2017, 1, 1, tzinfo=UTC),
                "source": "collection",
                "correlation_id": event.metadata["correlation_id"],
                "causation_id": event.metadata["causation_id"],
                "payload": event.payload,
            }
        )
        assert envelope.payload.base_legale
        assert envelope.payload.regles_version == RULES_2017.version
        if event.event_type in (
            "EncaissementDelegue",
            "PaiementEncaissePourCompte",
            "ContentieuxDelegue",
        ):
            faits = envelope.payload.faits_retenus
            assert faits is not None and faits.convention is not None
            assert faits.organisme is not None and faits.affiliation is not None
            assert faits.convention.convention_id == b.CNV


def refolded(log: list[tuple[str, int, Any]]) -> CollectionView:
    view = CollectionView()
    for position, (stream_id, _, event) in enumerate(log, 1):
        view.position = position
        view.apply(stream_id, str(event.event_id), event.event_type, event.payload, event.metadata)
    return view


def state(view: CollectionView) -> dict[str, Any]:
    return {
        "parked": {
            k: (w.event_type, w.waits_for, w.motif) for k, w in view.parking.parked().items()
        },
        "undecided": sorted(view.parking.undecided),
        "by_key": view.parking.by_key,
        "contributions": view.contributions,
        "payments": view.payments,
        "versions": view.versions,
    }


@pytest.mark.parametrize("cut", [4, 5, 6, None])
def test_folding_the_emitted_events_gives_the_processors_own_view(
    b: type[Builders], collection: Driver, cut: int | None
) -> None:
    run(collection, history(b)[:cut])
    assert state(refolded(collection.log)) == state(collection.view)
    assert state(collection.view)["contributions"]  # something was folded


def test_the_refolded_view_decides_the_next_input_like_the_live_one(
    b: type[Builders], collection: Driver, new_driver: Callable[[str], Driver]
) -> None:
    run(collection, history(b)[:5])  # COT-1 and two payments parked
    assert len(collection.view.parking.parked()) == 3
    replayed = new_driver("collection")
    replayed.processor.view = refolded(collection.log)
    event_id = UUID("00000000-0000-4000-8000-000000000001")
    live = collection.send(b.affiliation(), event_id=event_id)
    again = replayed.send(b.affiliation(), event_id=event_id)
    assert live.events == again.events
    assert kinds(collection.decisions(live)) == [
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
        "PaiementEncaissePourCompte",
    ]


def test_payments_whose_sum_would_leave_64_bits_are_refused_where_the_sum_is_made(
    b: type[Builders], collection: Driver
) -> None:
    """Each amount is within the contract, but their sum on one contribution is bounded too:
    the payment that would pass the bound is refused, the balance never overflows."""
    from services.domain.collection.processor import MAX_PAID_CENTS

    collection.given(b.org(), b.affiliation(), b.convention(), b.cotisation(montant=1))
    big = 10**11  # the largest amount the contract allows
    for n in range(MAX_PAID_CENTS // big):
        [d] = collection.decisions(collection.send(b.paiement(pid=f"PAY-{n}", montant=big)))
    assert d.payload["solde_restant_cents"] == 1 - MAX_PAID_CENTS
    outcome = collection.send(b.paiement(pid="PAY-OVER", montant=1))
    assert outcome.refused is not None and outcome.refused.field == "payload.montant_cents"
    assert outcome.events == []
