"""What a service measures for its metrics, against the real broker and store: consumer lag
read from the broker, the age of the oldest parked input, the rolling chain check, and
every metric the alert rules and the board read, exported on a running service's /metrics."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from monitored import metrics_named
from prometheus_client import CollectorRegistry, Gauge
from support import (
    REPO,
    Feed,
    affiliation,
    convention,
    cotisation,
    create_topics,
    free_port,
    nir,
    organisme,
    send_registry,
    service_env,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.lag import BrokerLag, LagGauge, NoInputTopics, PartitionLag, total
from services.adapters.runtime.monitoring import lag_gauge
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.trust.chainwatch import ChainWatch
from services.domain.catalog import BENEFITS, COLLECTION
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.sample import record_sample

pytestmark = pytest.mark.integration


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something true (or fail after `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got or time.monotonic() > deadline:
            assert got, f"still {got!r} after {timeout}s"
            return got
        await asyncio.sleep(0.3)


def gauge_values(registry: CollectorRegistry, name: str) -> dict[tuple[str, str], float]:
    return {
        (sample.labels["topic"], sample.labels["partition"]): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == name
    }


async def test_a_group_s_lag_rises_with_unconsumed_input_and_returns_to_zero(
    settings: ServiceSettings,
) -> None:
    s, group = settings, f"lag-{uuid.uuid4().hex[:8]}"
    await create_topics(s)
    topics = [s.topic_cotisations, s.topic_referentiel]
    registry = CollectorRegistry()
    gauge = Gauge("lag", "lag", ["topic", "partition"], registry=registry)
    checked = Gauge("checked", "checked", registry=registry)
    watch = LagGauge(BrokerLag(s.kafka_bootstrap_servers), group, topics, gauge, checked)
    async with BrokerLag(s.kafka_bootstrap_servers) as broker:
        lags = await broker.measure(group, topics)
        assert len(lags) == 2 * s.topic_partitions
        assert total(lags) == 0 and all(p.committed is None for p in lags)
        with pytest.raises(NoInputTopics):
            await broker.measure(group, [f"{s.topic_cotisations}.absent"])

        async with Feed(s.kafka_bootstrap_servers) as feed:
            for i in range(7):
                await feed.raw(s.topic_cotisations, b"record %d" % i, key=b"key %d" % i)
        try:
            lags = await watch.refresh()
            assert total(lags) == 7
            assert gauge_values(registry, "lag") == {
                (p.topic, str(p.partition)): float(p.lag) for p in lags
            }
            assert sum(gauge_values(registry, "lag").values()) == 7
            assert checked._value.get() > time.time() - 60

            # the group reads everything and commits: nothing is left
            await consume_and_commit(s.kafka_bootstrap_servers, s.topic_cotisations, group, 7)
            lags = await broker.measure(group, topics)
            assert total(lags) == 0
            on_input = [p for p in lags if p.topic == s.topic_cotisations]
            assert all(p.committed == p.end for p in on_input if p.end > 0)
            await watch.refresh()
            assert set(gauge_values(registry, "lag").values()) == {0.0}
        finally:
            await watch.broker.close()


async def consume_and_commit(bootstrap: str, topic: str, group: str, count: int) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        read = 0
        deadline = time.monotonic() + 60
        while read < count and time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=500)
            read += sum(len(records) for records in got.values())
        assert read == count
        await consumer.commit()
    finally:
        await consumer.stop()


async def test_a_service_s_lag_gauge_and_oldest_parked_age_follow_its_inputs(
    settings: ServiceSettings,
) -> None:
    """Inputs sent while the service is down are its lag; once it runs, the lag goes back
    to 0, they wait parked (no affiliation yet) and age; the affiliation clears them."""
    s, person = settings, nir(71)
    await create_topics(s)
    runtime = build_runtime("collection", s)
    watch = lag_gauge(runtime)
    try:
        async with Feed(s.kafka_bootstrap_servers) as feed:
            for i in range(5):
                await feed.send(s.topic_cotisations, cotisation(f"COT-L{i}", person))
            assert total(await watch.refresh()) == 5
            assert b"mandat_consumer_lag_messages{" in runtime.metrics.exposition()
            async with runtime.running():

                async def consumed() -> list[PartitionLag] | None:
                    lags = await watch.refresh()
                    return lags if total(lags) == 0 else None

                lags = await until(consumed)
                assert {p.topic for p in lags} == {s.topic_cotisations, s.topic_referentiel}
                exposed = runtime.metrics.exposition().decode()
                series = rf'partition="\d",topic="{s.topic_cotisations}"'
                assert re.search(rf"mandat_consumer_lag_messages{{{series}}} 0\.0", exposed)

                async def parked() -> dict[str, Any] | None:
                    state = await runtime.probe()
                    return state if state["parked"] == 5 else None

                await until(parked)
                await asyncio.sleep(1.2)
                state = await runtime.probe()
                runtime.refresh_gauges(state)
                assert 1.0 <= state["parked_oldest_seconds"] < 120
                assert runtime.metrics.parked_oldest._value.get() >= 1.0

                await send_registry(
                    feed,
                    s,
                    s.collection_schema,
                    organisme("OC-L"),
                    convention("CNV-L", "OC-L"),
                    affiliation(person, "OC-L"),
                )

                async def cleared() -> dict[str, Any] | None:
                    state = await runtime.probe()
                    return state if state["parked"] == 0 else None

                state = await until(cleared)
                assert state["parked_oldest_seconds"] == 0.0
    finally:
        await watch.broker.close()


async def test_the_rolling_chain_check_finds_a_tampered_row_and_clears_once_repaired(
    settings: ServiceSettings, database_url: str
) -> None:
    store = await prepare_store(database_url, settings.collection_schema)
    benefits = await prepare_store(database_url, settings.benefits_schema)
    seen: list[int | None] = []
    try:
        await record_sample(
            Feeder(store, COLLECTION, settings), Feeder(benefits, BENEFITS, settings)
        )
        head = await store.head()
        watch = ChainWatch(store, "collection", batch=7, on_change=lambda w: seen.append(w.broken))

        async def one_pass() -> None:
            """Step until the pass ends: at the head, or at a break (both start over)."""
            for _ in range(head):  # a pass takes head / batch steps, and one at the head
                await watch.step()
                if watch.checked == 0:
                    return

        await one_pass()
        assert (watch.passes, watch.broken) == (1, None)

        victim = head // 2
        await shift_recorded_at(database_url, store.schema, victim, "- interval '1 day'")
        await one_pass()
        assert watch.broken == victim and watch.passes == 1
        assert watch.checked == 0  # the next pass starts over from the genesis
        await one_pass()
        assert watch.broken == victim, "a break stays reported while it is there"

        await shift_recorded_at(database_url, store.schema, victim, "+ interval '1 day'")
        await one_pass()
        state: tuple[int, int | None] = (watch.passes, watch.broken)  # read again: it moved
        assert state == (2, None)
        assert victim in seen and seen[-1] is None
    finally:
        await store.pool.close()
        await benefits.pool.close()


async def shift_recorded_at(database_url: str, schema: str, position: int, shift: str) -> None:
    """Change one row's time behind the store's back, as a superuser could."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            await conn.execute(
                f"UPDATE events SET recorded_at = recorded_at {shift} WHERE position = $1",
                position,
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


def get(port: int, path: str) -> bytes:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
            return bytes(reply.read())
    except OSError:
        return b""


async def test_every_metric_the_rules_and_the_board_read_is_on_a_running_service_s_metrics(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    s, port = settings, free_port()
    await create_topics(s)
    named = metrics_named()
    assert len(named) >= 10
    env = service_env(s, port) | {
        "MANDAT_LAG_EVERY_SECONDS": "0.5",
        "MANDAT_CHAIN_CHECK_ROWS_PER_SECOND": "500",
    }
    with (tmp_path / "collection.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.tools.cli", "collection", "run"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        async with Feed(s.kafka_bootstrap_servers) as feed:
            await feed.send(s.topic_cotisations, cotisation("COT-M", nir(72)))  # parked
            await feed.raw(s.topic_cotisations, b"{not json", key=b"k")  # rejected

        async def complete() -> bytes | None:
            metrics = get(port, "/metrics")
            samples = {
                line.split(b"{")[0].split(b" ")[0].decode()
                for line in metrics.splitlines()
                if line and not line.startswith(b"#")
            }
            # every family named has at least one sample (a histogram: its _bucket series)
            missing = {m for m in named if m not in samples and f"{m}_bucket" not in samples}
            lagged = b"mandat_consumer_lag_messages{" in metrics
            return metrics if not missing and lagged and b"mandat_ready 1.0" in metrics else None

        metrics = await until(complete, timeout=90)
        assert b'mandat_chain_check_failed{check="rolling"} 0.0' in metrics
        assert b'mandat_chain_check_failed{check="anchorer"} 0.0' in metrics
    finally:
        process.terminate()
        process.wait(40)
