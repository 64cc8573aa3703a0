"""The relay: publishes a service's committed events to Kafka, in store order, once.

One relay is active per service schema at a time, elected through PostgreSQL: the leader
holds a session advisory lock on a connection of its own, so its death (or its connection's)
frees the lock for a standby. Store order is safe to follow because positions become visible
strictly in order (see store.py).

The lock alone cannot stop a leader that lost it without noticing (a paused process, a
connection the server dropped while the relay was between two queries) from publishing
once more. Kafka fences that one: every batch goes out in a Kafka transaction under a
transactional id fixed per service and schema, so a new leader's producer bumps the id's
epoch, aborts whatever the deposed one left open, and makes its later sends and commits fail
(`ProducerFenced`). A fenced relay stands by again.

No loss: the checkpoint moves only after Kafka committed the batch's transaction. No
duplicate, even after a crash between committing and checkpointing: on taking the lead, the
relay reads the last committed message of every partition of its topics (each carries its
store position in a header, and readers see committed messages only) and skips what is
already there. Within one partition the producer keeps order, so "position <= last on its
partition" means "published".

Never backwards, never silently: a store whose head is below the checkpoint, or a Kafka tail
whose position is beyond the store or holds another event than the store's at that position,
stops the relay with an alarm (`stall_reason`) instead of skipping positions it has not
published. `stalled_seconds()` says how long the relay has made no progress while work is
pending; readiness and metrics are built on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import ProducerFenced
from aiokafka.partitioner import DefaultPartitioner

from services.adapters.eventstore.leases import RelayCheckpoints, still_connected, try_lead
from services.adapters.eventstore.store import EventStore

log = logging.getLogger(__name__)
_partitioner = DefaultPartitioner()

POSITION_HEADER = "store_position"
SHARD_HEADER = "store_shard"
"""On the messages of a store split into shards: the shard whose position `store_position` is."""
EVENT_ID_HEADER = "event_id"
DEFAULT_MAX_REQUEST_SIZE = 1_048_576
"""aiokafka's own default; a service passes room for its largest rejection copy."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A Kafka message to publish, and the store position it comes from."""

    topic: str
    key: bytes | None
    value: bytes | None  # a rejected tombstone stays a tombstone
    headers: Sequence[tuple[str, bytes | None]]
    position: int


@dataclass(frozen=True, slots=True)
class Tail:
    """The last committed message of a partition: its store position and event id."""

    position: int
    event_id: bytes | None
    offset: int = -1
    shard: bytes | None = None


class Router(Protocol):
    @property
    def topics(self) -> tuple[str, ...]: ...

    @property
    def event_types(self) -> frozenset[str]: ...

    def route(self, event: Any) -> Outgoing | None: ...


class RelayAlarm(RuntimeError):
    """The store and Kafka disagree about what was published: the relay must not guess."""


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
        transactional_id: str | None = None,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        ack_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        client_options: Mapping[str, Any] | None = None,
        around_publish: Callable[[Sequence[Any]], AbstractAsyncContextManager[object]]
        | None = None,
        shard: int | None = None,
    ) -> None:
        self.store = store
        # one shard of several: its messages say so, and its tails are found past its floors
        self.shard = None if shard is None else str(shard).encode()
        self._floors: dict[str, int] = {}  # "topic:partition" -> offset: found at the lead
        self._floors_raised = 0.0  # when the floors were last raised to the ends
        self.floor_seconds = 30.0  # how often a shard's relay raises its floors to the ends
        self.settle_timeout = 90.0  # > a transaction's timeout: open ones end before it
        self.connect = connect
        self.routes = routes
        self.bootstrap_servers = bootstrap_servers
        self.name = name
        self.batch = batch
        self.idle_poll = idle_poll
        self.standby_poll = standby_poll
        self.lock_key = zlib.crc32(f"mandat-relay:{store.schema}:{name}".encode())
        # stable per service and schema: a new leader's producer fences the previous one
        self.transactional_id = transactional_id or f"mandat-relay-{name}-{store.schema}"
        self.max_request_size = max_request_size
        self.ack_timeout = ack_timeout  # a batch Kafka does not commit in time is retried
        self.clock = clock
        self.client_options = dict(client_options or {})  # login (adapters/kafka/security.py)
        self.checkpoints = RelayCheckpoints(store.schema)
        # what wraps each batch's publication (mandat/adapters/runtime/tracing.py: its span)
        self.around_publish = around_publish or (lambda events: contextlib.nullcontext())
        self.leader = False
        self.publishing = False  # leads, its producer fenced any other, tails read
        self.published = 0  # store position up to which everything routable is on Kafka
        self.backoff = 0.2  # grows while publishing fails, back to 0.2 after a success
        self.stall_reason: str | None = None
        """Error class and message of the last failure since the last progress (no data)."""
        self._pending_since: float | None = None
        self._batch: str | None = None  # what is being published, for the stall reason
        self._written: dict[str, int] = {}  # our last offsets, to save with the checkpoint

    # ------------------------------------------------------------------- progress

    def stalled_seconds(self) -> float:
        """Seconds since the relay last made progress while work is pending; 0.0 when it
        is caught up or stands by for another leader. Time spent retrying a failed lead
        counts: a relay that keeps failing is stalled, not idle."""
        if self._pending_since is None:
            return 0.0
        return max(0.0, self.clock() - self._pending_since)

    def _saw(self, head: int) -> None:
        """Note the store head the relay just read (against what it has published)."""
        if head <= self.published:
            self._progressed()
        elif self._pending_since is None:
            self._pending_since = self.clock()

    def _progressed(self) -> None:
        self._pending_since = None
        self.stall_reason = None
        self.backoff = 0.2

    def _failed(self, exc: BaseException) -> None:
        where = f" while publishing {self._batch}" if self._batch else ""
        self.stall_reason = _reason(exc) + where
        self._batch = None
        if isinstance(exc, RelayAlarm) and self._pending_since is None:
            self._pending_since = self.clock()  # stopped on purpose: stalled by definition

    # ---------------------------------------------------------------- leadership

    async def run(self) -> None:
        """Stand by, lead when elected, publish; until cancelled. Failures are retried."""
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self.connect()
                if await try_lead(conn, self.lock_key):
                    self.leader = True
                    log.info("relay %s leads", self.name)
                    await self._lead(conn)
                else:
                    self._pending_since = None  # another instance is the one responsible
                    await asyncio.sleep(self.standby_poll)
            except asyncio.CancelledError:
                raise
            except ProducerFenced as exc:
                self._failed(exc)
                log.warning("relay %s fenced by a newer leader; standing by", self.name)
                await asyncio.sleep(self.standby_poll)
            except RelayAlarm as exc:
                self._failed(exc)
                log.error("relay %s stopped: %s", self.name, exc)
                await asyncio.sleep(5.0)
            except Exception as exc:
                self._failed(exc)
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
        self.published = await self._checkpoint(conn)
        head = await self.store.head()
        _check_head(head, self.published)
        self._saw(head)  # known before Kafka is reached: a broker down counts as a stall
        producer = self._producer()
        try:
            await producer.start()
            on_kafka = await self._tails(producer, conn)
            # read again: a deposed leader may have published past the first read before
            # this producer fenced it; nothing is published past this one any more
            await self._check_tails(producer, on_kafka, await self.store.head())
            if self.shard is not None:  # where to look next time, known before publishing
                await self.checkpoints.save_floors(conn, self.name, self._floors)
                self._floors_raised = self.clock()
            self.publishing = True
            while True:
                await still_connected(conn)  # still holding the lock
                events, complete_to = await self.store.read_types(
                    self.published, self.routes.event_types, self.batch
                )
                self._saw(complete_to)
                if complete_to <= self.published:
                    wake.clear()
                    with contextlib.suppress(TimeoutError):  # a NOTIFY wakes it sooner
                        await asyncio.wait_for(wake.wait(), self.idle_poll)
                    _check_head(await self.store.head(), self.published)
                    continue
                async with self.around_publish(events):
                    await self._publish(producer, events, on_kafka)
                self.published = complete_to
                await self._save_checkpoint(conn, self.published)
                if self.shard is not None and self._written:
                    await self.checkpoints.save_floors(conn, self.name, self._written)
                    self._written = {}
                if self.shard is not None:
                    await self._raise_floors(producer, conn)
                self._progressed()
        finally:
            self.publishing = False
            await _stop(producer)

    def _producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            transactional_id=self.transactional_id,
            transaction_timeout_ms=max(int(self.ack_timeout * 2000), 10_000),
            acks="all",
            linger_ms=2,
            max_batch_size=512 * 1024,
            max_request_size=self.max_request_size,
            client_id=f"relay-{self.name}",
            **self.client_options,
        )

    # ---------------------------------------------------------------- publishing

    async def _publish(
        self, producer: AIOKafkaProducer, events: list[Any], on_kafka: dict[tuple[str, int], Tail]
    ) -> None:
        """One Kafka transaction for the batch: all of it is committed, or none."""
        partitions = {t: sorted(await producer.partitions_for(t)) for t in self.routes.topics}
        todo: list[tuple[Outgoing, int]] = []
        for event in events:
            out = self.routes.route(event)
            if out is None:
                continue
            partition = _partition(out, partitions[out.topic])
            tail = on_kafka.get((out.topic, partition))
            if tail is not None and tail.position >= out.position:
                continue  # published before a crash, not checkpointed: do not repeat it
            todo.append((out, partition))
        if not todo:
            return
        self._batch = f"positions {todo[0][0].position}..{todo[-1][0].position}"
        await producer.begin_transaction()
        try:
            pending = [
                await producer.send(
                    out.topic,
                    out.value,
                    key=out.key,
                    partition=partition,
                    headers=out.headers
                    if self.shard is None
                    else [*out.headers, (SHARD_HEADER, self.shard)],
                )
                for out, partition in todo
            ]
            await self._acknowledged(pending)
            if self.shard is not None:  # our last message on each partition written
                for sent in pending:
                    meta = sent.result()
                    self._written[f"{meta.topic}:{meta.partition}"] = meta.offset
            await asyncio.wait_for(producer.commit_transaction(), self.ack_timeout)
        except Exception as exc:
            if not isinstance(exc, ProducerFenced):  # a fenced producer cannot abort
                await _abort(producer)
            raise
        self._batch = None

    async def _acknowledged(self, pending: list[asyncio.Future[Any]]) -> None:
        """Wait for every send of the batch; raise the first failure, or a timeout (the
        futures are not cancelled: they belong to the producer)."""
        done, late = await asyncio.wait(pending, timeout=self.ack_timeout)
        errors = [f.exception() for f in pending if f in done]  # retrieve every one
        for error in errors:
            if error is not None:
                raise error
        if late:
            raise TimeoutError(f"Kafka did not acknowledge a batch in {self.ack_timeout:g} s")

    # ---------------------------------------------------------------- checkpoint

    async def _checkpoint(self, conn: asyncpg.Connection) -> int:
        return await self.checkpoints.read(conn, self.name)

    async def _save_checkpoint(self, conn: asyncpg.Connection, position: int) -> None:
        """On the connection that holds the lead (a leader that lost it cannot write), and
        never backwards (a deposed leader's late write cannot undo a newer one)."""
        await self.checkpoints.save(conn, self.name, position)

    # --------------------------------------------------------------------- tails

    async def _tails(
        self, producer: AIOKafkaProducer, conn: asyncpg.Connection
    ) -> dict[tuple[str, int], Tail]:
        """The last committed message on each partition of the relay's topics (of its
        shard, for one shard of several: read from the floors its checkpoint keeps).

        Read after the producer started: starting it aborted (or waited for) whatever a
        previous leader left open, so "committed" is final. Fail-safe: a tail that cannot
        be read raises (the relay gives up the lead and tries again later) rather than
        being taken as empty, which would republish."""
        consumer = self._consumer()
        await consumer.start()
        try:
            parts = await self._partitions(producer)
            if self.shard is None:
                return await read_tails(consumer, parts)
            # another shard's transaction still open on a partition hides what follows it
            # from a committed read: wait until every partition's committed end reaches
            # its end as it is now (an open transaction ends within its timeout)
            await _settled(consumer, await self._ends(parts, committed=False), self.settle_timeout)
            floors = await self.checkpoints.read_floors(conn, self.name)
            tails, self._floors = await read_shard_tails(consumer, parts, self.shard, floors)
            return tails
        finally:
            await consumer.stop()

    def _consumer(self, committed: bool = True) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            isolation_level="read_committed" if committed else "read_uncommitted",
            # a record larger than this would be skipped by aiokafka, not returned
            max_partition_fetch_bytes=self.max_request_size + 64 * 1024,
            **self.client_options,
        )

    async def _partitions(self, producer: AIOKafkaProducer) -> list[TopicPartition]:
        parts = []
        for topic in self.routes.topics:
            parts += [
                TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))
            ]
        return parts

    async def _ends(self, parts: list[TopicPartition], *, committed: bool) -> dict[Any, int]:
        """Each partition's end: of what is committed (below any open transaction), or of
        everything written."""
        consumer = self._consumer(committed)
        await consumer.start()
        try:
            return dict(await consumer.end_offsets(parts)) if parts else {}
        finally:
            await consumer.stop()

    async def _raise_floors(self, producer: AIOKafkaProducer, conn: asyncpg.Connection) -> None:
        """Everything this shard's relay published is checkpointed: whatever it publishes
        next lands past each partition's end as it is now. Raised so, every
        `floor_seconds`, the floors keep the next leader's look back short, even on the
        partitions this shard does not write."""
        now = self.clock()
        if now - self._floors_raised < self.floor_seconds:
            return
        ends = await self._ends(await self._partitions(producer), committed=True)
        raised = {f"{tp.topic}:{tp.partition}": end for tp, end in ends.items()}
        await self.checkpoints.save_floors(conn, self.name, raised)
        self._floors_raised = now

    async def _check_tails(
        self, producer: AIOKafkaProducer, tails: dict[tuple[str, int], Tail], head: int
    ) -> None:
        """Each tail must be the store's event at its position, routed to its partition:
        otherwise the store was replaced or rolled back under a topic that outlived it, and
        skipping "already published" positions would lose events."""
        partitions = {t: sorted(await producer.partitions_for(t)) for t in self.routes.topics}
        for (topic, partition), tail in sorted(tails.items()):
            where = f"{topic}[{partition}] ends with store position {tail.position}"
            if tail.position > head:
                raise RelayAlarm(f"{where}, beyond the store head {head}")
            found = await self.store.read_all(tail.position - 1, 1)
            if not found or found[0].position != tail.position:
                raise RelayAlarm(f"{where}, which the store does not hold")
            out = self.routes.route(found[0])
            if out is None or (out.topic, _partition(out, partitions[out.topic])) != (
                topic,
                partition,
            ):
                raise RelayAlarm(f"{where}, whose event the store routes elsewhere")
            ours = dict(out.headers).get(EVENT_ID_HEADER)
            if tail.event_id is not None and ours is not None and ours != tail.event_id:
                raise RelayAlarm(f"{where}, published with another event id")


async def read_tails(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition], timeout: float = 30.0
) -> dict[tuple[str, int], Tail]:
    """The last message `consumer` can see on each of `parts` (none for an empty one).

    The last offsets of a transactional topic are commit and abort markers, and aborted
    messages may precede them: scan back from the end in growing windows until a
    message shows up or the start of the partition is reached."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    ends = await consumer.end_offsets(parts) if parts else {}
    begins = await consumer.beginning_offsets(parts) if parts else {}
    todo = {tp: (begins[tp], ends[tp]) for tp in parts if ends[tp] > begins[tp]}
    found: dict[tuple[str, int], Tail] = {}
    window = 16
    while todo:
        starts = {tp: max(begin, end - window) for tp, (begin, end) in todo.items()}
        last = await _scan(consumer, starts, {tp: end for tp, (_, end) in todo.items()}, deadline)
        for tp in list(todo):
            if tp in last:
                found[(tp.topic, tp.partition)] = last[tp]
                del todo[tp]
            elif starts[tp] <= todo[tp][0]:
                del todo[tp]  # nothing committed on it at all
        window *= 4
    return found


async def _settled(consumer: AIOKafkaConsumer, ends: dict[Any, int], timeout: float) -> None:
    """Wait until `consumer` (read committed) sees each partition's committed end reach
    `ends` (the ends of what was written); fail after `timeout` (the relay tries again)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while ends:
        committed = await consumer.end_offsets(list(ends))
        if all(committed[tp] >= end for tp, end in ends.items()):
            return
        if loop.time() > deadline:
            raise RuntimeError("a transaction on the output topics stayed open too long")
        await asyncio.sleep(0.2)


async def read_shard_tails(
    consumer: AIOKafkaConsumer,
    parts: list[TopicPartition],
    shard: bytes,
    floors: Mapping[str, int],
    timeout: float = 60.0,
) -> tuple[dict[tuple[str, int], Tail], dict[str, int]]:
    """The last message of `shard` on each of `parts`, looked for from its floor (the offset
    before which none of its messages can be unpublished by the store's reckoning), and the
    floors to keep: each partition's tail of the shard, else its end.

    No floor at all: the shard's relay never led (it records floors before it publishes),
    nothing is read. A partition without one, beside others that have one, was added since
    the floors were recorded: it is read from its start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    ends = await consumer.end_offsets(parts) if parts else {}
    begins = await consumer.beginning_offsets(parts) if parts and floors else {}
    starts = {
        tp: start
        for tp in parts
        if floors and (start := floors.get(f"{tp.topic}:{tp.partition}", begins[tp])) < ends[tp]
    }
    last = (
        await _scan(consumer, starts, {tp: ends[tp] for tp in starts}, deadline, shard)
        if starts
        else {}
    )
    tails = {(tp.topic, tp.partition): tail for tp, tail in last.items()}
    kept = {
        f"{tp.topic}:{tp.partition}": last[tp].offset if tp in last else ends[tp] for tp in parts
    }
    return tails, kept


async def _scan(
    consumer: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    ends: dict[TopicPartition, int],
    deadline: float,
    shard: bytes | None = None,
) -> dict[TopicPartition, Tail]:
    """The last message before `ends[tp]` (of `shard`, when given: one whose shard header
    says so), reading each partition from `starts[tp]`."""
    consumer.assign(list(starts))
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    last: dict[TopicPartition, Tail] = {}
    pending = set(starts)
    loop = asyncio.get_running_loop()
    while pending:
        if loop.time() > deadline:
            raise RuntimeError(f"could not read the last message of {sorted(map(str, pending))}")
        batch = await consumer.getmany(*pending, timeout_ms=300)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    headers = dict(record.headers)
                    if shard is not None and headers.get(SHARD_HEADER) != shard:
                        continue
                    position = int(headers.get(POSITION_HEADER, b"0"))
                    last[tp] = Tail(position, headers.get(EVENT_ID_HEADER), record.offset)
        for tp in list(pending):
            if await consumer.position(tp) >= ends[tp]:
                pending.discard(tp)
    return last


def _check_head(head: int, published: int) -> None:
    if head < published:
        raise RelayAlarm(f"store head {head} is below the relay checkpoint {published}")


def _partition(out: Outgoing, partitions: list[int]) -> int:
    """Kafka's default partition for the key (murmur2), computed here so the relay knows
    where each message lands; a keyless message goes by its store position."""
    if out.key is None:
        return partitions[out.position % len(partitions)]
    return int(_partitioner(out.key, partitions, partitions))


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_LONG_TOKEN = re.compile(r"[0-9][0-9A-Za-z]{12,}")


def _reason(exc: BaseException) -> str:
    """`ErrorClass: message`, with quoted text and long digit tokens (which could be a
    record's data: a NIR, a value) blanked out, and bounded."""
    name = type(exc).__name__
    text = str(exc).replace(name, "")  # aiokafka's repeat it: "[Error 10] NameOfError"
    text = _LONG_TOKEN.sub("…", _QUOTED.sub("…", text)).strip(" :")
    if len(text) > 160:
        text = text[:159] + "…"
    return f"{name}: {text}" if text else name


async def _abort(producer: AIOKafkaProducer) -> None:
    """Abort the open transaction at once, so readers need not wait for its timeout (if
    this fails, the next producer of the transactional id aborts it)."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.abort_transaction(), 10)


async def _stop(producer: AIOKafkaProducer) -> None:
    """Stop the producer, not waiting forever for batches a broker never acknowledges
    (the next producer of the transactional id fences them)."""
    try:
        await asyncio.wait_for(producer.stop(), 10)
    except Exception as exc:
        log.warning("relay producer did not stop cleanly: %r", exc)


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:
        conn.terminate()
