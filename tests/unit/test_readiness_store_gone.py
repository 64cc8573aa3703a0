"""Readiness when PostgreSQL goes away: the probe says `postgres: false, ready: false`
(it does not raise), and the gauges follow — `mandat_ready` drops to 0 — though the parked
count and the open revision tasks cannot be read."""

from __future__ import annotations

from typing import Any, cast

import pytest

from services.adapters.eventstore.memory import MemoryEventStore
from services.adapters.runtime.handler import BatchHandler
from services.adapters.runtime.serve import build
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION

pytestmark = pytest.mark.unit


class _GonePool:
    """An asyncpg pool whose server went away: every query fails as a refused connection."""

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("the database went away")

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("the database went away")

    async def fetch(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("the database went away")


async def test_readiness_with_the_database_gone_says_not_ready_rather_than_failing() -> None:
    runtime = build(
        "collection",
        ServiceSettings(
            kafka_bootstrap_servers="127.0.0.1:9",
            database_url="postgresql://u:p@127.0.0.1:9/none",
        ),
    )
    runtime.handler = BatchHandler(
        MemoryEventStore(), lambda view=None: COLLECTION.new_processor(view=view), {}
    )
    runtime.pool = cast(Any, _GonePool())

    async def no_kafka(timeout: float | None = 2.0) -> bool:
        return True

    runtime.broker.ping = no_kafka  # type: ignore[method-assign]
    runtime.metrics.ready.set(1)  # ready until now
    state = await runtime.probe()
    runtime.refresh_gauges(state)
    assert state["postgres"] is False and state["ready"] is False
    assert runtime.metrics.ready._value.get() == 0
