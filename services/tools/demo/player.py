"""Plays a scenario through Kafka: feeds each phase, reads the outputs of both services into
a `Collector`, and waits for what each phase must produce."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.adapters.kafka.security import client_options
from services.adapters.kafka.topics import ensure_topics
from services.adapters.runtime.settings import ServiceSettings
from services.tools.demo.collector import Collector
from services.tools.demo.model import (
    BENEFITS,
    COLLECTION,
    COTISATIONS,
    PRESTATIONS,
    REFERENTIEL,
    Scenario,
)
from services.tools.demo.progress import Progress
from services.tools.tasks import stop_task

_CHUNK = 1000  # messages sent before waiting for their acknowledgements


class Player:
    """The Kafka clients of a run (an async context manager), and its phases' steps."""

    def __init__(
        self, scenario: Scenario, settings: ServiceSettings, progress: Progress, deadline: float
    ) -> None:
        s = settings
        self.scenario = scenario
        self.settings = settings
        self.progress = progress
        self.deadline = deadline
        self.topics = {
            REFERENTIEL: s.topic_referentiel,
            COTISATIONS: s.topic_cotisations,
            PRESTATIONS: s.topic_prestations,
        }
        outputs = {
            s.topic_reglements_cotisations: (COLLECTION, "decision"),
            s.topic_rejets_collection: (COLLECTION, "rejection"),
            s.topic_reglements_prestations: (BENEFITS, "decision"),
            s.topic_rejets_benefits: (BENEFITS, "rejection"),
        }
        self.collector = Collector(scenario, outputs)
        bootstrap = s.kafka_bootstrap_servers
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            isolation_level="read_committed",  # the relay publishes in transactions
            **client_options(s, "reader"),  # it watches the outputs
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
            **client_options(s, "upstream"),  # it plays the upstream agencies
        )
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(s, "reader"))
        self.registry_start: dict[TopicPartition, int] = {}
        self.partitions: dict[str, list[int]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Player:
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers,
            s.all_topics(),
            partitions=s.topic_partitions,
            replication_factor=s.topic_replication_factor,
            retention_ms=s.topic_retention_ms,
            client_options=client_options(s, "admin"),
        )
        await self.admin.start()
        await self.consumer.start()
        described = await self.admin.describe_topics(
            [*self.collector.outputs, self.topics[REFERENTIEL]]
        )
        self.partitions = {
            d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described
        }
        # outputs are read from their current ends: earlier runs' outputs are not ours
        outputs = [tp for t in self.collector.outputs for tp in self._partitions(t)]
        self.consumer.assign(outputs)
        for tp, offset in (await self.consumer.end_offsets(outputs)).items():
            self.consumer.seek(tp, offset)
        self.registry_start = await self._ends(self.topics[REFERENTIEL])
        await self.producer.start()
        self.reader = asyncio.create_task(self._read(), name="demo-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_task(self.reader)
        for closing in (self.producer.stop(), self.consumer.stop(), self.admin.close()):
            with contextlib.suppress(Exception):
                await closing

    def _partitions(self, topic: str) -> list[TopicPartition]:
        found = self.partitions.get(topic)
        if not found:
            raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
        return [TopicPartition(topic, p) for p in found]

    async def _ends(self, topic: str) -> dict[TopicPartition, int]:
        return dict(await self.consumer.end_offsets(self._partitions(topic)))

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                for r in records:
                    self.collector.record(tp.topic, r.key, r.value, r.headers)
            if self.collector.unmatched:
                self.collector.rematch()

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.monotonic()

    async def feed(self, phase: int, label: str) -> None:
        """Publish the messages of `phase`, noting where each was produced."""
        batch = self.scenario.phase(phase)
        sent = 0
        for start in range(0, len(batch), _CHUNK):
            chunk = batch[start : start + _CHUNK]
            futures = [
                await self.producer.send(self.topics[m.topic], m.value, key=m.key) for _, m in chunk
            ]
            for (index, _m), meta in zip(chunk, await asyncio.gather(*futures), strict=True):
                self.collector.produced_at((meta.topic, meta.partition, meta.offset), index)
            sent += len(chunk)
            self.progress.update(label, sent, len(batch))
        self.progress.finish(label, sent, len(batch))

    async def wait_registry(self, label: str = "registry recorded") -> bool:
        """Until both services' groups committed the registry topic up to its end (the
        services commit a record's offset once what it caused is in their store)."""
        ends = await self._ends(self.topics[REFERENTIEL])
        total = sum(ends[tp] - self.registry_start.get(tp, 0) for tp in ends)
        groups = (self.settings.collection_group, self.settings.benefits_group)

        async def recorded() -> int:  # by the slower of the two groups
            done = total
            for group in groups:
                done = min(done, await self._committed(group, ends))
            return done

        return await self._until(label, total, recorded, pause=0.2)

    async def _committed(self, group: str, ends: dict[TopicPartition, int]) -> int:
        """Registry messages of this run that `group` committed."""
        committed = await self.admin.list_consumer_group_offsets(group, partitions=list(ends))
        seen = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            seen += max(0, min(offset, end) - self.registry_start.get(tp, 0))
        return seen

    async def wait_outcomes(self, phase: int, *, parked_counts: bool, label: str) -> bool:
        """Until every tracked message of phases <= `phase` got its outcome (a parking
        counts when `parked_counts`)."""
        total = self.collector.tracked(phase)

        async def answered() -> int:
            self.collector.rematch()
            return total - self.collector.outstanding(phase, parked_counts=parked_counts)

        return await self._until(label, total, answered, pause=0.1)

    async def drain(self) -> bool:
        """Until every output published so far is read: called once the last inputs are
        decided, it lets the revisions recorded before them (published before them, in
        store order, but maybe on other partitions) reach the collector."""
        outputs = [tp for t in self.collector.outputs for tp in self._partitions(t)]
        ends = await self.consumer.end_offsets(outputs)

        async def read() -> int:
            positions = [await self.consumer.position(tp) for tp in outputs]
            return sum(p >= ends[tp] for tp, p in zip(outputs, positions, strict=True))

        return await self._until("reading the revisions", len(outputs), read, pause=0.1)

    async def _until(
        self, label: str, total: int, done: Callable[[], Awaitable[int]], *, pause: float
    ) -> bool:
        """Poll `done` every `pause` s until it reaches `total` or the deadline passes."""
        while True:
            count = await done()
            self.progress.update(label, count, total)
            if count >= total or self.left() <= 0:
                break
            await asyncio.sleep(pause)
        self.progress.finish(label, count, total, "" if count >= total else "(timed out)")
        return count >= total
