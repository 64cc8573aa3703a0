"""The objects of start-up are frozen out of the collector's sight, once start-up is done."""

from __future__ import annotations

import gc

from services.adapters.runtime.heap import freeze_start_up


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_start_up_is_frozen_after_its_garbage_is_collected() -> None:
    kept = _Cycle()  # alive: frozen
    dropped = _Cycle()  # garbage already: collected first, not frozen for ever
    seen = []
    gc.callbacks.append(lambda phase, info: seen.append(info.get("collected", 0)))
    del dropped
    try:
        frozen = freeze_start_up()
        assert frozen == gc.get_freeze_count() > 0
        assert any(n >= 1 for n in seen)  # the dropped cycle went before the freeze
        assert kept.me is kept
        before = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() == before  # a collection leaves the frozen alone
    finally:
        gc.callbacks.pop()
        gc.unfreeze()  # the rest of the test run collects as usual
