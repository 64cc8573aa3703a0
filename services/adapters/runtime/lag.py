"""Consumer lag read from the broker: on each partition of a group's input topics, how many
records a `read_committed` consumer could read that the group has not committed yet.

Two clients do it, and neither is a member of the group: an admin client fetches the
group's committed offsets (OffsetFetch), a consumer without a group lists each partition's
first and last stable offsets (ListOffsets). So measuring never rebalances the service's
consumer nor moves its offsets, and works the same from inside the service (a gauge per
partition, at a modest cadence: `LagGauge`) and from outside (the dashboard, a total).

A partition where the group has committed nothing yet counts from its first offset: the
services start at the earliest offset (`auto_offset_reset="earliest"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CoordinatorLoadInProgressError, CoordinatorNotAvailableError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import Gauge

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """One partition of an input topic, as the broker sees the group on it."""

    topic: str
    partition: int
    committed: int | None  # None: the group committed nothing on it yet
    end: int  # last stable offset: where a read_committed consumer stops
    lag: int


class NoInputTopics(LookupError):
    """None of the topics asked about exists on the broker."""


def total(lags: Iterable[PartitionLag]) -> int:
    return sum(p.lag for p in lags)


class BrokerLag:
    """Measures consumer groups' lag on demand (one admin client, one group-less consumer).
    Usable as an async context manager; `start()` again after `close()` reconnects."""

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_options: Mapping[str, Any] | None = None,
        timeout_ms: int = 5000,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.client_options = dict(client_options or {})
        self.timeout_ms = timeout_ms
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        options = {
            "bootstrap_servers": self.bootstrap_servers,
            "request_timeout_ms": self.timeout_ms,
            **self.client_options,
        }
        try:
            self.admin = AIOKafkaAdminClient(client_id="mandat-lag", **options)
            await self.admin.start()
            self.consumer = AIOKafkaConsumer(
                group_id=None,
                enable_auto_commit=False,
                # end offsets are then last stable offsets: an open upstream transaction is
                # not yet something the service could have read
                isolation_level="read_committed",
                client_id="mandat-lag",
                **options,
            )
            await self.consumer.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for closing in (
            self.consumer.stop() if self.consumer else None,
            self.admin.close() if self.admin else None,
        ):
            if closing is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    await closing
        self.admin = self.consumer = None

    async def __aenter__(self) -> BrokerLag:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def partitions(self, topics: Sequence[str]) -> list[TopicPartition]:
        """Every partition of the `topics` that exist (NoInputTopics when none does)."""
        if self.admin is None:
            raise RuntimeError("not started")
        described = await self.admin.describe_topics(list(topics))
        found = sorted(
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if not d.get("error_code")
            for p in d["partitions"]
        )
        if not found:
            raise NoInputTopics(f"none of {len(topics)} input topics exists")
        return found

    async def measure(self, group: str, topics: Sequence[str]) -> list[PartitionLag]:
        """The lag of `group` on every partition of `topics`, in topic/partition order."""
        if self.admin is None or self.consumer is None:
            raise RuntimeError("not started")
        parts = await self.partitions(topics)
        ends = await self.consumer.end_offsets(parts)
        starts = await self.consumer.beginning_offsets(parts)
        committed = await self._committed(group, parts)
        lags = []
        for tp in parts:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            # records deleted by retention cannot be read: they are no lag
            read_from = max(offset if offset is not None else starts[tp], starts[tp])
            lag = max(0, ends[tp] - read_from)
            lags.append(PartitionLag(tp.topic, tp.partition, offset, ends[tp], lag))
        return lags

    async def _committed(
        self, group: str, parts: list[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets. A broker that has not placed its offsets topic
        yet (the first group it ever sees) says so for a moment: asked again, briefly."""
        assert self.admin is not None
        for attempt in range(_COORDINATOR_TRIES):
            try:
                found: dict[
                    TopicPartition, OffsetAndMetadata
                ] = await self.admin.list_consumer_group_offsets(group, partitions=parts)
                return found
            except (CoordinatorNotAvailableError, CoordinatorLoadInProgressError):
                if attempt + 1 == _COORDINATOR_TRIES:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


_COORDINATOR_TRIES = 6  # about 3 s in all


class LagGauge:
    """Keeps a service's consumer-lag gauges current: every `every` seconds it measures the
    group on its input topics and sets one series per partition (those of partitions that
    no longer exist are removed). A failed measure keeps the last values, reconnects next
    time, and leaves `checked` (the time of the last good measure) behind: a stale lag is
    visible as such."""

    def __init__(
        self,
        broker: BrokerLag,
        group: str,
        topics: Sequence[str],
        gauge: Gauge,
        checked: Gauge,
        *,
        every: float = 10.0,
    ) -> None:
        self.broker = broker
        self.group = group
        self.topics = list(topics)
        self.gauge = gauge
        self.checked = checked
        self.every = every
        self._shown: set[tuple[str, str]] = set()
        self._connected = False

    async def refresh(self) -> list[PartitionLag]:
        """Measure once and set the gauges (raises when the broker does not answer)."""
        if not self._connected:
            await self.broker.start()
            self._connected = True
        try:
            lags = await self.broker.measure(self.group, self.topics)
        except Exception:
            await self.broker.close()
            self._connected = False
            raise
        shown = set()
        for p in lags:
            labels = (p.topic, str(p.partition))
            self.gauge.labels(*labels).set(p.lag)
            shown.add(labels)
        for gone in self._shown - shown:
            with contextlib.suppress(KeyError):
                self.gauge.remove(*gone)
        self._shown = shown
        self.checked.set(time.time())
        return lags

    async def run(self) -> None:
        """Refresh at the cadence until cancelled; closes the clients when it ends."""
        try:
            while True:
                try:
                    await self.refresh()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # measured again next time
                    log.warning("consumer lag not measured: %s", type(exc).__name__)
                await asyncio.sleep(self.every)
        finally:
            await self.broker.close()
            self._connected = False
