"""What a service process measures for its metrics besides its batches: the consumer lag
read from the broker, the rolling check of its store's hash chain, and the age of its oldest
parked input. Started by `serve` (a process that exposes /metrics), not by `running()`:
tests, the demo and benchmarks that run a service in process do not pay for them."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

import asyncpg

from services.adapters.eventstore import EventStore
from services.adapters.kafka.security import client_options, role_of
from services.adapters.runtime.lag import BrokerLag, LagGauge
from services.domain.kernel.statekinds import PARKED
from services.domain.kernel.tasks import TASKS

if TYPE_CHECKING:
    from services.adapters.runtime.service import ServiceRuntime
    from services.adapters.trust.chainwatch import ChainWatch


def lag_gauge(runtime: ServiceRuntime) -> LagGauge:
    """The consumer-lag gauges of `runtime`'s group on its input topics."""
    s, m = runtime.settings, runtime.metrics
    return LagGauge(
        BrokerLag(
            s.kafka_bootstrap_servers,
            client_options=client_options(s, role_of(runtime.spec.name)),
        ),
        runtime.spec.group_id,
        sorted(runtime.spec.inputs),
        m.consumer_lag,
        m.consumer_lag_checked,
        every=s.lag_every_seconds,
    )


def monitors(runtime: ServiceRuntime) -> list[Coroutine[Any, Any, None]]:
    """The background tasks of a started service that keep its metrics current."""
    tasks = [lag_gauge(runtime).run()]
    rate = runtime.settings.chain_check_rows_per_second
    if rate > 0 and runtime.handler is not None:
        tasks.append(chain_watch(runtime, rate).run())
    return tasks


def chain_watch(runtime: ServiceRuntime, rate: float) -> ChainWatch:
    """The rolling check of `runtime`'s store, shown by its chain gauges."""
    from services.adapters.trust.chainwatch import ChainWatch

    assert runtime.handler is not None
    m = runtime.metrics
    failed = m.chain_check_failed.labels(check="rolling")
    failed.set(0)
    shown = 0  # passes already counted

    def show(watch: ChainWatch) -> None:
        nonlocal shown
        failed.set(1 if watch.broken is not None else 0)
        m.chain_checked.set(watch.checked)
        m.chain_passes.inc(watch.passes - shown)
        shown = watch.passes

    assert runtime.pool is not None  # a started service
    store = EventStore(runtime.pool, runtime.spec.schema)
    return ChainWatch(store, runtime.spec.name, rows_per_second=rate, on_change=show)


async def parked_age(store: EventStore) -> tuple[int | None, float | None]:
    """How many inputs are parked, and seconds since the oldest was committed to the store
    (0.0 when none is; None when the store does not answer): read from the decision state's
    index of parked inputs, then one lookup by the unique event id."""
    try:
        count, oldest = await store.tagged_summary(PARKED)
        if oldest is None:
            return count, 0.0
        return count, await store.age_of(oldest)
    except (asyncpg.PostgresError, OSError, ValueError):
        return None, None


async def open_tasks(store: EventStore) -> int | None:
    """How many revision tasks are open (None when the store does not answer)."""
    try:
        count, _ = await store.tagged_summary(TASKS)
        return count
    except (asyncpg.PostgresError, OSError, ValueError):
        return None
