"""The dashboard's aggregate, without Kafka: what it counts from the output topics."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from support import decision_payload

from services.tools.dashboard.board import Board

pytestmark = pytest.mark.unit


def decision(event_type: str, cause: str, *, event_id: str | None = None, **payload: Any) -> bytes:
    return json.dumps(
        {
            "event_id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": "2026-01-01T10:00:00Z",
            "source": "collection",
            "correlation_id": None,
            "causation_id": cause,
            "payload": decision_payload(event_type, **payload),
        }
    ).encode()


def test_decisions_are_counted_per_type_and_motif_once_each() -> None:
    board = Board()
    twice = decision("EncaissementDelegue", "in-1", organisme_id="OC-1", montant_cents=195000)
    assert board.on_decision("collection", twice) == "counted"
    assert board.on_decision("collection", twice) == "duplicate"  # published at least once
    board.on_decision(
        "collection", decision("EncaissementNonDelegue", "in-2", motif="RECOUVREMENT_URSSAF")
    )
    board.on_decision(
        "collection",
        decision("PaiementEncaissePourCompte", "in-3", organisme_id="OC-1", montant_cents=50000),
    )
    board.on_decision(
        "benefits",
        decision("VersementDirect", "in-4", montant_cents=326900, motif="AUCUNE_CONVENTION"),
    )
    state = board.snapshot()
    rows = {
        (r["event_type"], r["motif"]): r["count"]
        for r in state["services"]["collection"]["decisions"]
    }
    assert rows == {
        ("EncaissementDelegue", ""): 1,
        ("EncaissementNonDelegue", "RECOUVREMENT_URSSAF"): 1,
        ("PaiementEncaissePourCompte", ""): 1,
    }
    assert state["organisms"] == [
        {
            "organisme_id": "OC-1",
            "caisse_de_base": "PL-IDF",
            "delegated_count": 1,
            "held_count": 1,
            "litigation_count": 0,
            "paid_count": 0,
            "delegated_cents": 195000,
            "held_cents": 50000,
            "litigation_cents": 0,
            "paid_cents": 0,
        }
    ]
    assert state["totals"]["decisions"] == 4
    assert state["direct"] == [{"caisse_de_base": "PL-IDF", "cents": 326900}]


def test_a_parked_input_leaves_the_list_when_its_final_decision_comes() -> None:
    board = Board()
    board.on_decision(
        "collection",
        decision("DecisionEnAttente", "in-1", sujet_id="COT-1", motif="AFFILIATION_INCONNUE"),
    )
    board.on_decision(
        "benefits",
        decision("DecisionEnAttente", "in-1", sujet_id="PRE-1", motif="AFFILIATION_INCONNUE"),
    )
    state = board.snapshot()
    assert [(p["service"], p["sujet_id"]) for p in state["parked"]] == [
        ("collection", "COT-1"),
        ("benefits", "PRE-1"),
    ]  # oldest first, then by id
    board.on_decision(
        "collection", decision("EncaissementDelegue", "in-1", organisme_id="OC-1", montant_cents=1)
    )
    state = board.snapshot()
    assert [p["sujet_id"] for p in state["parked"]] == ["PRE-1"]
    assert state["totals"]["parked_now"] == 1
    assert state["totals"]["parked_events"] == 2


def test_a_rejection_keeps_its_reason_and_where_it_came_from() -> None:
    board = Board()
    headers = [
        ("event_id", b"original"),
        ("reject_reason", b"payload.nir: bad key"),
        ("source_topic", b"rsi.cotisations.v1"),
        ("source_partition", b"2"),
        ("source_offset", b"41"),
        ("reject_field", b"payload.nir"),
        ("event_type", b"Rejection"),
        ("event_id", b"rejection-1"),
    ]
    value = json.dumps({"event_type": "CotisationDue"}).encode()
    assert board.on_rejection("collection", headers, value, 1_700_000_000_000) == "counted"
    assert board.on_rejection("collection", headers, value) == "duplicate"
    assert board.on_rejection("benefits", [("reject_reason", b"not JSON")], b"{nope") == "counted"
    state = board.snapshot()
    assert state["totals"]["rejected"] == 2
    latest, first = state["rejections"]
    assert latest["reason"] == "not JSON" and latest["event_type"] is None
    assert (latest["value"], latest["value_bytes"]) == ("{nope", 5)
    assert first["reason"] == "payload.nir: bad key"
    assert (first["source_topic"], first["source_partition"], first["source_offset"]) == (
        "rsi.cotisations.v1",
        2,
        41,
    )
    assert first["field"] == "payload.nir" and first["event_type"] == "CotisationDue"


def test_an_unreadable_decision_is_counted_apart() -> None:
    board = Board()
    assert board.on_decision("benefits", b"\xff not json") == "unreadable"
    assert board.snapshot()["services"]["benefits"]["unreadable"] == 1


def test_a_decision_type_newer_than_this_contract_is_counted_after_the_known_ones() -> None:
    board = Board()
    board.on_decision("collection", decision("EncaissementDelegue", "in-1"))
    newer = json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "EncaissementSuspendu",
            "payload": {"motif": "CONVENTION_RESILIEE", "organisme_id": "OC-2"},
        }
    ).encode()
    assert board.on_decision("collection", newer) == "counted"
    rows = board.snapshot()["services"]["collection"]["decisions"]
    assert [r["event_type"] for r in rows] == ["EncaissementDelegue", "EncaissementSuspendu"]
    assert rows[1]["amount_cents"] == 0


def test_a_known_decision_type_that_breaks_the_contract_is_unreadable() -> None:
    board = Board()
    broken = json.loads(decision("EncaissementDelegue", "in-1"))
    broken["payload"]["montant_cents"] = -5
    assert board.on_decision("collection", json.dumps(broken).encode()) == "unreadable"
    assert board.snapshot()["services"]["collection"]["decisions"] == []
