"""Event ids are deterministic within a service and unique across services."""

from __future__ import annotations

import uuid

import pytest

from services.runtime.processing import decision_id, rejection_id

pytestmark = pytest.mark.unit


def test_the_same_trigger_gives_the_same_decision_id_in_one_service() -> None:
    trigger = uuid.uuid4()
    assert decision_id(trigger, 1, "collection") == decision_id(trigger, 1, "collection")
    assert decision_id(trigger, 1, "collection") != decision_id(trigger, 2, "collection")


def test_two_services_deciding_on_one_registry_fact_mint_different_ids() -> None:
    """Both consume the registry: an affiliation that unparks an input in each service must
    not give two different decisions one event id (dashboards deduplicate by event id)."""
    affiliation = uuid.uuid4()
    assert decision_id(affiliation, 1, "collection") != decision_id(affiliation, 1, "benefits")
    assert rejection_id("collection", "rsi.referentiel.v1", 0, 7) != rejection_id(
        "benefits", "rsi.referentiel.v1", 0, 7
    )
