"""Event ids are deterministic within a service and unique across services."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.domain.kernel.processing import decision_id, rejection_id

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
    place = "rsi.referentiel.v1/0/7/1700000000000"
    assert rejection_id("collection", place, b"k", b"v", []) != rejection_id(
        "benefits", place, b"k", b"v", []
    )


@given(
    key=st.none() | st.binary(max_size=20),
    value=st.none() | st.binary(max_size=50),
    headers=st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)), max_size=3),
    offset=st.integers(0, 2**40),
    timestamp=st.integers(0, 2**42),
)
def test_a_rejection_id_is_the_record_s_and_a_reused_offset_gives_another(
    key: bytes | None,
    value: bytes | None,
    headers: list[tuple[str, bytes | None]],
    offset: int,
    timestamp: int,
) -> None:
    """Redelivery of one record maps to one rejection; a new record at the same offset of a
    recreated topic (another timestamp, or other bytes) does not collide with it."""
    place = f"t/0/{offset}/{timestamp}"
    same = rejection_id("collection", place, key, value, headers)
    assert same == rejection_id("collection", place, key, value, list(headers))
    assert same != rejection_id("collection", f"t/0/{offset}/{timestamp + 1}", key, value, headers)
    assert same != rejection_id("collection", place, key, (value or b"") + b"x", headers)
    assert same != rejection_id("collection", place, key, value, [*headers, ("h", None)])
    # a null value and an empty one are different records
    assert rejection_id("collection", place, key, None, headers) != rejection_id(
        "collection", place, key, b"", headers
    )
