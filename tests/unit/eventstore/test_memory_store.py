"""The store behaviour suite (tests/store_behaviour.py) on the in-memory store."""

from __future__ import annotations

import pytest
import store_behaviour
from store_behaviour import *  # noqa: F403 -- the suite's tests, collected here

from services.adapters.eventstore.memory import MemoryEventStore

pytestmark = pytest.mark.unit


@pytest.fixture
def store() -> MemoryEventStore:
    return MemoryEventStore(clock=store_behaviour.stepping_clock())


def test_every_test_of_the_suite_is_collected_here() -> None:
    assert all(name in globals() for name in store_behaviour.all_tests())
