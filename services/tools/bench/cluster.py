"""`mandat bench cluster`: the collection service on three Kafka brokers, one killed mid-stream.

Starts a KRaft cluster of three nodes on loopback (each broker + controller; replication 3,
`min.insync.replicas` 2) in a temporary directory, runs the collection service against it
in this process (topics, group and store schema of the run's own), records the registry,
then streams contributions at `--rate`. Part way through it SIGKILLs the broker leading the
busiest input partition, keeps streaming, and restarts that broker `--down-seconds` later.
It then counts, from the store and from the settlement topic read committed: inputs,
decisions, duplicates, rejections; and times the recovery:

  recover   from the kill until every partition of the settlement topic has delivered a
            decision of an input sent after the kill (the whole path flows again);
  drain     from the kill until every input's decision has been read back;
  latency   per input, from its send to its decision read back (median, max).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import secrets
import shutil
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.kafka.topics import ensure_topics, size_limits
from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.settings import ServiceSettings
from services.domain.kernel.processing import REJECTION
from services.tools.bench.pipeline import (
    KINDS,
    Follower,
    Message,
    envelope,
    inputs,
    registry_facts,
    run_settings,
)
from services.tools.bench.shared import committed_reader, drop_schemas
from services.tools.devstack.kafka import KafkaCluster
from services.tools.options import JSON, Option, add_options, option_values

KIND = KINDS["collection"]
REGISTRY_TYPES = ("OrganismeDeclare", "ConventionConclue", "AffiliationEnregistree")
INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")  # group and relay coordinators
log = logging.getLogger(__name__)


OPTIONS = (
    Option("--inputs", 3000, "contributions (default 3000)"),
    Option("--rate", 200.0, "contributions per second (default 200)"),
    Option("--kill-at", 0.35, "fraction of the inputs sent when the leader is killed"),
    Option("--down-seconds", 6.0, "how long the killed broker stays down (default 6)"),
    Option("--heap-mb", 256, "heap of each broker"),
    Option("--timeout", 180.0, "give up waiting for the decisions after this many seconds"),
)
"""The options of the run, named as `measure` takes them."""


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, (*OPTIONS, JSON))


class Reader(Follower):
    """Reads the settlement topic (read committed) and notes when and where each final
    decision arrives, by the input that caused it."""

    def __init__(self, bootstrap: str, topic: str, final_types: frozenset[str]) -> None:
        self.final_types = final_types
        self.arrived: dict[str, tuple[float, int]] = {}  # input -> (when, partition)
        self.per_event: Counter[bytes] = Counter()
        self.consumer = committed_reader(topic, bootstrap)

    def _seen(self, record: Any, now: float, wall: float) -> None:
        headers = dict(record.headers)
        self.per_event[headers.get("event_id", b"")] += 1
        if headers.get("event_type", b"").decode() not in self.final_types:
            return
        cause = str(json.loads(record.value or b"{}").get("causation_id"))
        self.arrived.setdefault(cause, (now, record.partition))

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.per_event.values() if n > 1)


@dataclass
class ClusterRun:
    """What a run measured; `settings` and `ids` let a test check the outcome itself."""

    settings: ServiceSettings
    ids: list[str]
    report: dict[str, Any]


async def _until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def _store(dsn: str, schema: str) -> AsyncIterator[EventStore]:
    """The run's store, read as its owner (one connection, closed on exit)."""
    pool = await create_pool(dsn, schema, min_size=1, max_size=1, as_service_role=False)
    try:
        yield EventStore(pool, schema)
    finally:
        await pool.close()


async def _registry_recorded(dsn: str, schema: str, facts: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with _store(dsn, schema) as store:
            if await store.count_of_types(REGISTRY_TYPES) >= facts:
                return
        if time.monotonic() > deadline:
            raise TimeoutError("the registry was not recorded")
        await asyncio.sleep(0.3)


async def _leaders(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    """The leader of every partition of `topics`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        return {
            (t["topic"], int(p["partition"])): int(p["leader"])
            for t in described
            for p in t["partitions"]
        }
    finally:
        await admin.close()


def _producer(s: ServiceSettings, linger_ms: int) -> AIOKafkaProducer:
    """Acknowledged by all in-sync replicas, idempotent: it rides over the failover."""
    return AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
    )


async def _publish_registry(s: ServiceSettings, nirs: int) -> int:
    facts = registry_facts(nirs)
    producer = _producer(s, linger_ms=5)
    await producer.start()
    try:
        futures = [
            await producer.send(s.topic_referentiel, envelope(t, p, str(uuid.uuid4())), key=key)
            for key, t, p in facts
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(facts)


class Fault:
    """Kills the leader of the busiest input partition, and restarts it later."""

    def __init__(self, cluster: KafkaCluster, down_seconds: float) -> None:
        self.cluster = cluster
        self.down_seconds = down_seconds
        self.node = 0
        self.partition = -1
        self.led: list[str] = []  # every partition the killed broker led
        self.was_controller = False  # also the active controller of the cluster
        self.killed_at = 0.0
        self.restart_seconds = 0.0
        self._restart: asyncio.Task[None] | None = None

    async def kill(self, topic: str, sent_per_partition: Counter[int], others: list[str]) -> None:
        self.partition = sent_per_partition.most_common(1)[0][0]
        leaders = await _leaders(self.cluster.bootstrap, [topic, *others, *INTERNAL_TOPICS])
        self.node = leaders[(topic, self.partition)]
        self.was_controller = self.cluster.active_controller() == self.node
        self.led = sorted(f"{t}[{p}]" for (t, p), node in leaders.items() if node == self.node)
        await asyncio.to_thread(self.cluster.kill, self.node)
        self.killed_at = time.monotonic()
        log.info("killed broker %d, leader of %s[%d]", self.node, topic, self.partition)
        self._restart = asyncio.create_task(self._restart_later())

    async def _restart_later(self) -> None:
        await asyncio.sleep(self.down_seconds)
        started = time.monotonic()
        await asyncio.to_thread(self.cluster.restart, self.node)
        self.restart_seconds = time.monotonic() - started

    async def restarted(self) -> None:
        if self._restart is not None:
            await self._restart


async def _stream(
    s: ServiceSettings, work: list[Message], rate: float, kill_at: int, fault: Fault
) -> dict[str, float]:
    """Send the inputs at `rate`, killing the leader once `kill_at` are sent; their send
    times. Every send must be acknowledged (the producer rides over the failover)."""
    topic = KIND.input_topic(s)
    partitioner = DefaultPartitioner()
    sent: dict[str, float] = {}
    per_partition: Counter[int] = Counter()
    producer = _producer(s, linger_ms=2)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        futures = []
        start = time.monotonic()
        for i, message in enumerate(work):
            if i == kill_at:
                await fault.kill(topic, per_partition, s.all_topics())
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            per_partition[partitioner(message.key, partitions, partitions)] += 1
            sent[message.event_id] = time.monotonic()
            futures.append(await producer.send(topic, message.value, key=message.key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


def _recovery(
    reader: Reader, sent: dict[str, float], killed_at: float, partitions: int
) -> float | None:
    """Seconds from the kill until every settlement partition delivered a decision of an
    input sent after the kill (None if one never did)."""
    first: dict[int, float] = {}
    for cause, (arrived, partition) in reader.arrived.items():
        if sent.get(cause, 0.0) > killed_at:
            first[partition] = min(first.get(partition, arrived), arrived)
    if len(first) < partitions:
        return None
    return max(first.values()) - killed_at


async def scenario(
    cluster: KafkaCluster,
    dsn: str,
    *,
    count: int = 3000,
    rate: float = 200.0,
    kill_at: float = 0.35,
    down_seconds: float = 6.0,
    timeout: float = 180.0,
) -> ClusterRun:
    """The collection service on `cluster` through the loss of a leader; see the module."""
    s = await provision_services(
        run_settings(cluster.bootstrap, dsn, f"cluster{secrets.token_hex(4)}").model_copy(
            update={"topic_replication_factor": 3}
        ),
        ("collection",),
    )
    schema = KIND.schema(s)
    await ensure_topics(
        s.kafka_bootstrap_servers,
        s.all_topics(),
        partitions=s.topic_partitions,
        replication_factor=3,
        retention_ms=s.topic_retention_ms,
        max_message_bytes=size_limits(
            [s.topic_referentiel, s.topic_cotisations],
            [s.topic_reglements_cotisations],
            [s.topic_rejets_collection],
        ),
    )
    facts = await _publish_registry(s, count)
    work = inputs(KIND, count, count, "cl")
    fault = Fault(cluster, down_seconds)
    reader = Reader(s.kafka_bootstrap_servers, KIND.output_topic(s), KIND.final_types)
    async with reader as r, KIND.runtime(s).running():
        await _registry_recorded(dsn, schema, facts, timeout)
        started = time.monotonic()
        sent = await _stream(s, work, rate, round(count * kill_at), fault)
        streamed = time.monotonic() - started
        await _until(lambda: len(r.arrived) >= count, timeout, "every decision")
        await fault.restarted()
        await asyncio.sleep(2.0)  # a late duplicate would show up now
    report = await _report(s, dsn, schema, work, sent, r, fault, streamed)
    return ClusterRun(s, [m.event_id for m in work], report)


async def _report(
    s: ServiceSettings,
    dsn: str,
    schema: str,
    work: list[Message],
    sent: dict[str, float],
    r: Reader,
    fault: Fault,
    streamed: float,
) -> dict[str, Any]:
    async with _store(dsn, schema) as store:
        decided = dict(await store.count_by_causation(sorted(KIND.final_types)))
        rejected = await store.count_of_types([REJECTION])
    ids = {m.event_id for m in work}
    latencies = sorted(r.arrived[i][0] - sent[i] for i in ids if i in r.arrived and i in sent)
    drain = max((r.arrived[i][0] for i in ids if i in r.arrived), default=fault.killed_at)
    recover = _recovery(r, sent, fault.killed_at, s.topic_partitions)
    return {
        "inputs": len(work),
        "sent_seconds": round(streamed, 2),
        "killed_broker": fault.node,
        "killed_leader_of": f"{KIND.input_topic(s)}[{fault.partition}]",
        "killed_broker_led": fault.led,
        "killed_active_controller": fault.was_controller,
        "decided_in_store": len(ids & set(decided)),
        "store_duplicates": sum(n - 1 for n in decided.values() if n > 1),
        "store_unexpected": len(set(decided) - ids),
        "published": len(ids & set(r.arrived)),
        "topic_duplicates": r.duplicates,
        "rejected": rejected,
        "recover_seconds": None if recover is None else round(recover, 2),
        "drain_seconds": round(drain - fault.killed_at, 2),
        "broker_restart_seconds": round(fault.restart_seconds, 2),
        "latency_median_ms": round(statistics.median(latencies) * 1000, 1) if latencies else None,
        "latency_max_ms": round(latencies[-1] * 1000, 1) if latencies else None,
    }


async def _drop(dsn: str, s: ServiceSettings) -> None:
    await drop_schemas(dsn, s.collection_schema, s.benefits_schema)


def measure(
    dsn: str,
    *,
    inputs: int,
    rate: float,
    kill_at: float,
    down_seconds: float,
    heap_mb: int,
    timeout: float,
) -> dict[str, Any]:
    """Start a cluster, run the scenario, stop the cluster (always) and drop the schema."""
    run_dir = Path(tempfile.mkdtemp(prefix="mandat-bench-cluster-"))
    cluster = KafkaCluster(run_dir, heap_mb=heap_mb)
    try:
        started = time.monotonic()
        cluster.start()
        start_seconds = time.monotonic() - started

        async def go() -> dict[str, Any]:
            result = await scenario(
                cluster,
                dsn,
                count=inputs,
                rate=rate,
                kill_at=kill_at,
                down_seconds=down_seconds,
                timeout=timeout,
            )
            await _drop(dsn, result.settings)
            return result.report

        report = asyncio.run(go())
        return {
            "brokers": cluster.size,
            "cluster_start_seconds": round(start_seconds, 2),
            "rate": rate,
            **report,
        }
    finally:
        cluster.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    from services.tools.bench.cli import resolve_database_url
    from services.tools.bench.shared import warnings_only

    dsn = resolve_database_url(getattr(args, "database_url", None))
    for name in ("faststream", "faststream.access.kafka"):
        logging.getLogger(name).addFilter(warnings_only)
    # while a broker is down, aiokafka logs every failed connection (hundreds a second);
    # the report says what came of it
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    report = measure(dsn, **option_values(args, OPTIONS))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_report(report))
    ok = (
        report["decided_in_store"] == report["published"] == report["inputs"]
        and report["store_duplicates"] == report["topic_duplicates"] == 0
    )
    return 0 if ok else 1


def format_report(r: dict[str, Any]) -> str:
    recover = "never" if r["recover_seconds"] is None else f"{r['recover_seconds']:.2f} s"
    return "\n".join(
        [
            f"Kafka cluster: {r['brokers']} brokers (KRaft, replication 3, min.insync.replicas 2),"
            f" started in {r['cluster_start_seconds']:.1f} s",
            f"inputs            {r['inputs']:>8}  (CotisationDue at {r['rate']:g}/s, "
            f"sent in {r['sent_seconds']:.1f} s)",
            f"killed            broker {r['killed_broker']}, leader of {r['killed_leader_of']}; "
            f"restarted in {r['broker_restart_seconds']:.1f} s",
            f"                  it led {len(r['killed_broker_led'])} partitions (internal: "
            f"{', '.join(p for p in r['killed_broker_led'] if p.startswith('__')) or 'none'})"
            + ("; it was the active controller" if r["killed_active_controller"] else ""),
            f"decided (store)   {r['decided_in_store']:>8}  duplicates {r['store_duplicates']}",
            f"published         {r['published']:>8}  duplicates {r['topic_duplicates']}"
            " (settlement topic, read committed)",
            f"rejected          {r['rejected']:>8}",
            f"time to recover   {recover}  (until every settlement partition delivers a"
            " decision of an input sent after the kill)",
            f"drained           {r['drain_seconds']:.2f} s after the kill",
            f"latency           median {r['latency_median_ms']} ms, max {r['latency_max_ms']} ms",
        ]
    )
