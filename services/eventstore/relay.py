"""The relay: publishes a service's committed events to Kafka, in store order, once.

One relay is active per service schema at a time, elected through PostgreSQL: the leader
holds a session advisory lock on a connection of its own, so its death (or its connection's)
frees the lock for a standby. Store order is safe to follow because positions become visible
strictly in order (see store.py).

No loss: the checkpoint moves only after Kafka acknowledged every message up to it
(idempotent producer, acks=all). No duplicate, even after a crash between publishing and
checkpointing: on taking the lead, the relay reads the last message of every partition of
its topics (each carries its store position in a header) and skips what is already there.
Within one partition the idempotent producer keeps order, so "position <= last on its
partition" means "published".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from services.eventstore.store import EventStore

log = logging.getLogger(__name__)
_partitioner = DefaultPartitioner()

POSITION_HEADER = "store_position"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A Kafka message to publish, and the store position it comes from."""

    topic: str
    key: bytes | None
    value: bytes | None  # a rejected tombstone stays a tombstone
    headers: Sequence[tuple[str, bytes | None]]
    position: int


class Router(Protocol):
    @property
    def topics(self) -> tuple[str, ...]: ...

    @property
    def event_types(self) -> frozenset[str]: ...

    def route(self, event: Any) -> Outgoing | None: ...


class Relay:
    """Publishes the events `routes` selects, from the store to Kafka."""

    def __init__(
        self,
        store: EventStore,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        routes: Router,
        bootstrap_servers: str,
        *,
        name: str,
        batch: int = 1000,
        idle_poll: float = 0.5,
        standby_poll: float = 1.0,
    ) -> None:
        self.store = store
        self.connect = connect
        self.routes = routes
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.batch = batch
        self.idle_poll = idle_poll
        self.standby_poll = standby_poll
        self.lock_key = zlib.crc32(f"mandat-relay:{store.schema}:{name}".encode())
        self.leader = False
        self.published = 0  # store position up to which everything routable is on Kafka
        self.backoff = 0.2  # grows while publishing fails, back to 0.2 after a success

    async def run(self) -> None:
        """Stand by, lead when elected, publish; until cancelled. Failures are retried."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect()
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                    self.leader = True
                    log.info("relay %s leads", self.name)
                    await self._lead(conn)
                else:
                    await asyncio.sleep(self.standby_poll)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("relay %s: %r; retrying in %.1fs", self.name, exc, self.backoff)
                await asyncio.sleep(self.backoff)
                self.backoff = min(self.backoff * 2, 5.0)
            finally:
                self.leader = False
                if conn is not None:
                    await _close(conn)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        wake = asyncio.Event()
        await conn.add_listener(self.store.channel, lambda *_: wake.set())
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            linger_ms=2,
            max_batch_size=512 * 1024,
            client_id=f"relay-{self.name}",
        )
        await producer.start()
        try:
            self.published = await self._checkpoint(conn)
            on_kafka = await self._tails(producer)
            while True:
                await conn.fetchval("SELECT 1")  # still holding the lock (connection alive)
                events, complete_to = await self.store.read_types(
                    self.published, self.routes.event_types, self.batch
                )
                if complete_to <= self.published:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):  # a NOTIFY wakes it sooner
                        await asyncio.wait_for(wake.wait(), self.idle_poll)
                    continue
                await self._publish(producer, events, on_kafka)
                self.published = complete_to
                await self._save_checkpoint(conn, self.published)
                self.backoff = 0.2
        finally:
            await producer.stop()

    async def _publish(
        self, producer: AIOKafkaProducer, events: list[Any], on_kafka: dict[tuple[str, int], int]
    ) -> None:
        pending = []
        partitions = {t: sorted(await producer.partitions_for(t)) for t in self.routes.topics}
        for event in events:
            out = self.routes.route(event)
            if out is None:
                continue
            partition = _partition(out, partitions[out.topic])
            if on_kafka.get((out.topic, partition), 0) >= out.position:
                continue  # published before a crash, not checkpointed: do not repeat it
            pending.append(
                await producer.send(
                    out.topic, out.value, key=out.key, partition=partition, headers=out.headers
                )
            )
        for future in pending:
            await future

    async def _checkpoint(self, conn: asyncpg.Connection) -> int:
        value = await conn.fetchval(
            f'SELECT position FROM "{self.store.schema}".relay_checkpoints WHERE relay = $1',
            self.name,
        )
        return int(value or 0)

    async def _save_checkpoint(self, conn: asyncpg.Connection, position: int) -> None:
        """On the connection that holds the lead (a leader that lost it cannot write), and
        never backwards (a deposed leader's late write cannot undo a newer one)."""
        await conn.execute(
            f'INSERT INTO "{self.store.schema}".relay_checkpoints AS c (relay, position)'
            " VALUES ($1, $2) ON CONFLICT (relay) DO UPDATE"
            " SET position = EXCLUDED.position, updated_at = now()"
            " WHERE c.position < EXCLUDED.position",
            self.name,
            position,
        )

    async def _tails(self, producer: AIOKafkaProducer) -> dict[tuple[str, int], int]:
        """The store position of the last message on each partition of the relay's topics.

        Fail-safe: a tail that cannot be read raises (the relay gives up the lead and tries
        again later) rather than being taken as empty, which would republish."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            parts = []
            for topic in self.routes.topics:
                ids = sorted(await producer.partitions_for(topic))
                parts += [TopicPartition(topic, p) for p in ids]
            ends = await consumer.end_offsets(parts) if parts else {}
            return await _read_last(consumer, {tp: e - 1 for tp, e in ends.items() if e > 0})
        finally:
            await consumer.stop()


async def _read_last(
    consumer: AIOKafkaConsumer, last: dict[TopicPartition, int], timeout: float = 15.0
) -> dict[tuple[str, int], int]:
    """The store position carried by the record at offset `last[tp]` of each partition."""
    found: dict[tuple[str, int], int] = {}
    if not last:
        return found
    consumer.assign(list(last))
    for tp, offset in last.items():
        consumer.seek(tp, offset)
    pending = set(last)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while pending:
        if loop.time() > deadline:
            raise RuntimeError(f"could not read the last message of {sorted(map(str, pending))}")
        batch = await consumer.getmany(*pending, timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                if tp in pending and record.offset >= last[tp]:
                    position = dict(record.headers).get(POSITION_HEADER, b"0")
                    found[(tp.topic, tp.partition)] = int(position)
                    pending.discard(tp)
    return found


def _partition(out: Outgoing, partitions: list[int]) -> int:
    """Kafka's default partition for the key (murmur2), computed here so the relay knows
    where each message lands; a keyless message goes by its store position."""
    if out.key is None:
        return partitions[out.position % len(partitions)]
    return int(_partitioner(out.key, partitions, partitions))


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:
        conn.terminate()


# TODO-MERGE: placeholder until the relay branch lands
def _stalled_seconds(self: Relay) -> float:
    return 0.0


Relay.stalled_seconds = _stalled_seconds  # type: ignore[attr-defined]
Relay.stall_reason = None  # type: ignore[attr-defined]
