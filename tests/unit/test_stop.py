"""Stopping a service's workers never hangs on one that missed its cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from services.adapters.runtime.service import cancel_all

pytestmark = pytest.mark.unit


async def _misses_one_cancellation(ended: list[str]) -> None:
    """A worker whose first cancellation is lost (as `asyncio.wait_for` on Python 3.11 may
    lose one that meets its timeout): it goes on as if nothing happened."""
    with contextlib.suppress(asyncio.CancelledError):  # lost
        await asyncio.sleep(60)
    try:
        await asyncio.sleep(60)
    finally:
        ended.append("stopped")


async def test_a_worker_that_missed_its_cancellation_is_cancelled_again() -> None:
    ended: list[str] = []
    workers = [asyncio.create_task(_misses_one_cancellation(ended)) for _ in range(3)]
    workers.append(asyncio.create_task(asyncio.sleep(60)))
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_all(workers, every=0.05), timeout=5)
    assert ended == ["stopped"] * 3 and all(w.done() for w in workers)


async def test_cancelling_them_once_and_waiting_would_hang() -> None:
    """What the service did before: one cancellation each, then wait."""
    worker = asyncio.create_task(_misses_one_cancellation([]))
    await asyncio.sleep(0)
    worker.cancel()
    done, _ = await asyncio.wait({worker}, timeout=0.3)
    assert not done
    await cancel_all([worker], every=0.05)
