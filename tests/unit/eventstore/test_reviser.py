"""The reviser's pace: the people per step follow how long steps take."""

from __future__ import annotations

import pytest

from services.adapters.runtime.reviser import MAX_PEOPLE, MIN_PEOPLE, _next_limit

pytestmark = pytest.mark.unit


def test_steps_that_take_long_get_fewer_people_and_quick_ones_more() -> None:
    assert _next_limit(200, 0.4, 0.1) == 100  # four times too long: half as many
    assert _next_limit(200, 0.025, 0.1) == 400
    assert _next_limit(200, 0.1, 0.1) == 200
    assert _next_limit(15, 10.0, 0.1) == MIN_PEOPLE  # never stuck at nothing
    assert _next_limit(1900, 0.0, 0.1) == MAX_PEOPLE  # nor unbounded
