"""The objects of start-up are frozen out of the collector's sight, once start-up is done."""

from __future__ import annotations

import gc
import weakref

import pytest

from services.adapters.runtime.heap import freeze_start_up

pytestmark = pytest.mark.unit


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_is_frozen_after_its_garbage_is_collected() -> None:
    kept = _Cycle()  # alive: frozen
    dropped = _Cycle()  # garbage already: collected first, not frozen for ever
    gone = weakref.ref(dropped)
    del dropped
    try:
        frozen = freeze_start_up()
        assert frozen == gc.get_freeze_count() > 0
        assert gone() is None  # the dropped cycle was collected before the freeze
        assert not any(o is kept for o in gc.get_objects())  # out of the collector's sight
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual
    assert any(o is kept for o in gc.get_objects())
