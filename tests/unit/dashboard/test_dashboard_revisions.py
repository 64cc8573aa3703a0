"""The dashboard's aggregate of revisions (EncaissementRevise, VersementRevise): counted per
type apart from the final decisions, who moved from which organism to which, and what each
organism leaving owes the caisse de base."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from support import decision_payload

from services.tools.dashboard.board import Board

pytestmark = pytest.mark.unit

FACT = "registry-fact-1"  # the causation id of a revision: the registry fact's event id


def delegated(organisme: str, convention: str) -> dict[str, Any]:
    return {
        "event_type": "EncaissementDelegue",
        "organisme_id": organisme,
        "convention_id": convention,
        "motif": None,
        "recouvreur": None,
    }


NOT_DELEGATED = {
    "event_type": "EncaissementNonDelegue",
    "organisme_id": None,
    "convention_id": None,
    "motif": "AUCUNE_CONVENTION",
    "recouvreur": "CAISSE_DE_BASE",
}


def paid_by(organisme: str | None) -> dict[str, Any]:
    if organisme is None:
        return {
            "event_type": "VersementDirect",
            "organisme_id": None,
            "convention_id": None,
            "motif": "AUCUNE_CONVENTION",
        }
    return {
        "event_type": "VersementDelegue",
        "organisme_id": organisme,
        "convention_id": f"CNV-{organisme}",
        "motif": None,
    }


def message(event_type: str, cause: str, **payload: Any) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": "2026-01-01T10:00:00Z",
            "source": "collection",
            "correlation_id": "input-1",
            "causation_id": cause,
            "payload": decision_payload(event_type, **payload),
        }
    ).encode()


def encaissement_revise(
    avant: dict[str, Any], apres: dict[str, Any], held: int = 0, litigation: bool = False
) -> bytes:
    return message(
        "EncaissementRevise",
        FACT,
        decision_revisee_id=str(uuid.uuid4()),
        avant=avant,
        apres=apres,
        deja_encaisse_cents=held,
        contentieux_transfere=litigation,
    )


def versement_revise(avant: str | None, apres: str | None) -> bytes:
    return message(
        "VersementRevise",
        FACT,
        decision_revisee_id=str(uuid.uuid4()),
        avant=paid_by(avant),
        apres=paid_by(apres),
        nature="IJ_MALADIE",
        montant_cents=5374,
    )


def test_revisions_are_counted_per_type_and_not_as_final_decisions() -> None:
    board = Board()
    board.on_decision("collection", message("EncaissementDelegue", "input-1", organisme_id="M"))
    revision = encaissement_revise(delegated("M", "C1"), NOT_DELEGATED, held=30000)
    assert board.on_decision("collection", revision) == "counted"
    assert board.on_decision("collection", revision) == "duplicate"
    assert board.on_decision("benefits", versement_revise("M", None)) == "counted"
    state = board.snapshot()
    collection, benefits = state["services"]["collection"], state["services"]["benefits"]
    assert (collection["final"], collection["revisions"]) == (1, 1)
    assert (benefits["final"], benefits["revisions"]) == (0, 1)
    assert state["totals"]["decisions"] == 1
    assert state["totals"]["revisions"] == 2
    rows = {(r["event_type"], r["count"], r["amount_cents"]) for r in collection["decisions"]}
    assert ("EncaissementRevise", 1, 30000) in rows  # its amount: what the organism owes
    # the registry fact decided nothing: it is not an input settled
    assert board.decided == {"collection:input-1"}


def test_a_revision_does_not_unpark_an_input_parked_under_the_same_id() -> None:
    """A hostile or confused publisher could reuse an id; a revision still settles nothing."""
    board = Board()
    parked = message("DecisionEnAttente", FACT, sujet_id="COT-9", motif="AFFILIATION_INCONNUE")
    board.on_decision("collection", parked)
    board.on_decision("collection", encaissement_revise(delegated("M", "C1"), NOT_DELEGATED))
    assert [p["sujet_id"] for p in board.snapshot()["parked"]] == ["COT-9"]


def test_moves_and_what_each_organism_leaving_owes_its_caisse() -> None:
    board = Board()
    for revision in (
        # example 2 of the law: M → M2, M had booked 300.00 € for the caisse
        encaissement_revise(delegated("M", "C1"), delegated("M2", "C2"), held=30000),
        # example 1: M's convention terminated, with litigation entrusted to it
        encaissement_revise(delegated("M", "C1"), NOT_DELEGATED, held=12050, litigation=True),
        # example 3: a convention concluded later; no organism leaves, nothing owed
        encaissement_revise(NOT_DELEGATED, delegated("M", "C3")),
        # only the convention changes: M stays, nothing owed
        encaissement_revise(delegated("M", "C1"), delegated("M", "C4")),
    ):
        board.on_decision("collection", revision)
    board.on_decision("benefits", versement_revise("M", None))
    board.on_decision("benefits", versement_revise("M", None))
    state = board.snapshot()
    assert state["moves"] == [
        {"service": "benefits", "from": "M", "to": None, "count": 2},
        {"service": "collection", "from": None, "to": "M", "count": 1},
        {"service": "collection", "from": "M", "to": None, "count": 1},
        {"service": "collection", "from": "M", "to": "M", "count": 1},
        {"service": "collection", "from": "M", "to": "M2", "count": 1},
    ]
    assert state["owed"] == [
        {
            "organisme_id": "M",
            "caisse_de_base": "PL-IDF",
            "revisions": 2,
            "cents": 42050,
            "litigation": 1,
        }
    ]
    assert state["totals"]["owed_cents"] == 42050
    # a benefit's revision owes nothing: the caisse pays from then on
    assert all(o["organisme_id"] == "M" for o in state["owed"])


def test_a_revision_that_breaks_the_contract_is_unreadable_and_counts_nothing() -> None:
    board = Board()
    same = encaissement_revise(delegated("M", "C1"), delegated("M", "C1"))  # avant == apres
    assert board.on_decision("collection", same) == "unreadable"
    state = board.snapshot()
    assert state["moves"] == [] and state["owed"] == []
    assert state["services"]["collection"]["revisions"] == 0


def test_distinct_moves_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.tools.dashboard.board.MAX_MOVES", 2)
    board = Board()
    for n in range(5):
        board.on_decision("benefits", versement_revise(f"M{n}", None))
    moves = board.snapshot()["moves"]
    assert len(moves) == 3
    assert {"service": "benefits", "from": "(other)", "to": "(other)", "count": 3} in moves
