"""The relay on real Kafka and PostgreSQL: fenced by its transactional id, blind to aborted
transactions, honest about a stall, and stopped (never skipping) when the store and Kafka
disagree about what was published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from support import Received, read_topics

from services.adapters.eventstore import EventStore, NewEvent, StoredEvent
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import create_pool
from services.adapters.kafka.relay import (
    EVENT_ID_HEADER,
    POSITION_HEADER,
    Outgoing,
    Relay,
    _partition,
)
from services.adapters.kafka.topics import MAX_MESSAGE_BYTES, ensure_topics, topic_configs

pytestmark = pytest.mark.integration

PARTITIONS = 3


@dataclass(frozen=True)
class ToTopic:
    """Routes every `Thing` to one topic, keyed by its stream, its payload as the value."""

    topic: str

    @property
    def topics(self) -> tuple[str, ...]:
        return (self.topic,)

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset({"Thing"})

    def route(self, event: StoredEvent) -> Outgoing:
        headers = [
            (EVENT_ID_HEADER, str(event.event_id).encode()),
            (POSITION_HEADER, str(event.position).encode()),
        ]
        value = json.dumps(event.payload).encode()
        return Outgoing(self.topic, event.stream_id.encode(), value, headers, event.position)


@pytest.fixture
async def store(database_url: str, unique: str) -> AsyncIterator[EventStore]:
    schema = f"rl_{unique}"
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, schema)
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema, max_size=4)
    try:
        yield EventStore(pool, schema)
    finally:
        await pool.close()


@pytest.fixture
async def topic(kafka_bootstrap: str, unique: str) -> str:
    name = f"t{unique}.relayed"
    await ensure_topics(
        kafka_bootstrap, [name], partitions=PARTITIONS, replication_factor=1, retention_ms=-1
    )
    return name


async def append(store: EventStore, count: int, blob: int = 10) -> list[int]:
    """`count` Things on distinct streams; their positions."""
    positions = []
    for _ in range(count):
        stream = f"s-{uuid.uuid4().hex[:8]}"
        event = NewEvent(event_id=uuid.uuid4(), event_type="Thing", payload={"b": "x" * blob})
        async with store.transaction() as tx:
            positions.append(tx.append_at(stream, 1, event))
    return positions


def relay(
    store: EventStore,
    database_url: str,
    topic: str,
    kafka_bootstrap: str,
    connections: list[asyncpg.Connection] | None = None,
    **options: Any,
) -> Relay:
    async def connect() -> asyncpg.Connection:
        conn = await asyncpg.connect(database_url)
        if connections is not None:
            connections.append(conn)
        return conn

    options = {"idle_poll": 0.2, "standby_poll": 0.2, **options}
    return Relay(store, connect, ToTopic(topic), kafka_bootstrap, name="things", **options)


@contextlib.asynccontextmanager
async def running(r: Relay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(r.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def published(kafka_bootstrap: str, topic: str, count: int) -> list[Received]:
    """What a read_committed reader sees on the topic, once `count` messages are there
    (and a moment more, for a duplicate to show)."""
    await read_topics(kafka_bootstrap, [topic], lambda m: len(m) >= count, timeout=30)
    await asyncio.sleep(1.0)
    return await read_topics(kafka_bootstrap, [topic], lambda m: False, timeout=2)


def positions_of(messages: list[Received]) -> Counter[int]:
    return Counter(int(m.headers[POSITION_HEADER]) for m in messages)


async def unlock(conn: asyncpg.Connection, key: int) -> None:
    """Give up an advisory lock on the relay's own session, behind the relay's back."""
    for _ in range(50):
        try:
            assert await conn.fetchval("SELECT pg_advisory_unlock($1)", key)
            return
        except asyncpg.InterfaceError:  # the relay is using its connection right now
            await asyncio.sleep(0.02)
    raise AssertionError("could not unlock")


async def test_a_deposed_relay_is_fenced_by_kafka_and_stands_by(
    store: EventStore,
    database_url: str,
    topic: str,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A loses its PostgreSQL lock without noticing (it still believes it leads); B takes
    the lead. When new events come, A tries to publish them and Kafka refuses: A stands
    by, B publishes; later A leads again when B goes. Every event is on Kafka once."""
    caplog.set_level(logging.INFO, logger="services.adapters.kafka.relay")
    a_conns: list[asyncpg.Connection] = []
    # A only wakes up on a NOTIFY, so it does not query its connection meanwhile
    a = relay(store, database_url, topic, kafka_bootstrap, a_conns, idle_poll=60)
    b = relay(store, database_url, topic, kafka_bootstrap)
    first = await append(store, 5)
    async with running(a) as a_task:
        await until(lambda: a.published >= first[-1])
        await unlock(a_conns[-1], a.lock_key)
        async with running(b):
            await until(lambda: b.publishing)  # B's producer started: A's epoch is old
            assert a.leader, "A must still believe it leads for this test to mean anything"
            second = await append(store, 5)
            await until(lambda: b.published >= second[-1])
            await until(lambda: not a.leader)
            fenced = [r for r in caplog.records if "fenced" in r.getMessage()]
            assert len(fenced) == 1 and "things" in fenced[0].getMessage()
            await asyncio.sleep(2.0)  # standing by: no more attempts, no more fencing
            assert not a.leader and not a_task.done()
            assert len([r for r in caplog.records if "fenced" in r.getMessage()]) == 1
            assert a.stalled_seconds() == 0.0  # standing by is not a stall
        await until(lambda: a.leader)  # B is gone: A leads again, with a new producer
        third = await append(store, 5)
        await until(lambda: a.published >= third[-1])
    got = positions_of(await published(kafka_bootstrap, topic, 15))
    assert sorted(got) == first + second + third
    assert set(got.values()) == {1}


async def stray_transaction(
    kafka_bootstrap: str, transactional_id: str, topic: str, count: int, *, abort: bool
) -> None:
    """What a deposed leader may leave: a transaction of the relay's id with messages
    claiming far-away store positions, aborted or never ended."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=transactional_id
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        futures = [
            await producer.send(
                topic,
                b"stray",
                partition=i % PARTITIONS,
                headers=[(POSITION_HEADER, b"999999"), (EVENT_ID_HEADER, b"stray")],
            )
            for i in range(count)
        ]
        await asyncio.gather(*futures)
        if abort:
            await producer.abort_transaction()
    finally:
        await producer.stop()


@pytest.mark.parametrize("abort", [True, False], ids=["aborted", "left-open"])
async def test_a_deposed_leaders_unfinished_transaction_makes_the_next_one_skip_nothing(
    store: EventStore, database_url: str, topic: str, kafka_bootstrap: str, abort: bool
) -> None:
    """Read uncommitted, the stray messages would be the partitions' tails, position
    999999: the relay would take every later event as published. Read committed, they do
    not exist (more of them than the first tail window, to make it look further back)."""
    first = await append(store, 4)
    r = relay(store, database_url, topic, kafka_bootstrap)
    async with running(r):
        await until(lambda: r.published >= first[-1])
    await stray_transaction(kafka_bootstrap, r.transactional_id, topic, 60, abort=abort)
    second = await append(store, 4)
    again = relay(store, database_url, topic, kafka_bootstrap)
    async with running(again):
        await until(lambda: again.published >= second[-1])
    messages = await published(kafka_bootstrap, topic, 8)
    assert not [m for m in messages if m.value == b"stray"]
    got = positions_of(messages)
    assert sorted(got) == first + second and set(got.values()) == {1}


async def test_a_message_the_broker_refuses_is_a_stall_with_its_reason_until_fixed(
    store: EventStore, database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    """The topic takes 4 KiB; the second event is 10 KiB. Nothing after it is published
    (store order), the relay says for how long and why; once the topic is given room
    (ensure_topics raises its limit, keeping its other settings) it goes on by itself."""
    topic = f"t{unique}.small"
    await ensure_topics(
        kafka_bootstrap,
        [topic],
        partitions=PARTITIONS,
        replication_factor=1,
        retention_ms=3_600_000,
        max_message_bytes={topic: 4096},
    )
    small = await append(store, 1)
    r = relay(store, database_url, topic, kafka_bootstrap)
    async with running(r):
        await until(lambda: r.published >= small[-1])
        big = await append(store, 1, blob=10_000)
        after = await append(store, 2)
        await until(lambda: r.stalled_seconds() > 2.0)
        stalled = r.stalled_seconds()
        await asyncio.sleep(0.5)
        assert r.stalled_seconds() > stalled  # it keeps growing
        assert r.stall_reason is not None
        assert r.stall_reason.startswith("MessageSizeTooLargeError")
        assert f"positions {big[0]}..{after[-1]}" in r.stall_reason
        assert "xxxx" not in r.stall_reason  # never the record's data
        assert r.published == small[-1]

        await ensure_topics(
            kafka_bootstrap,
            [topic],
            partitions=PARTITIONS,
            replication_factor=1,
            retention_ms=3_600_000,
            max_message_bytes={topic: 64 * 1024},
        )
        await until(lambda: r.published >= after[-1], timeout=30)
        await until(lambda: r.stalled_seconds() == 0.0)
        assert r.stall_reason is None
    got = positions_of(await published(kafka_bootstrap, topic, 4))
    assert sorted(got) == small + big + after and set(got.values()) == {1}
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        configs = await topic_configs(admin, topic)
    finally:
        await admin.close()
    assert configs[MAX_MESSAGE_BYTES] == (str(64 * 1024), True)
    assert configs["retention.ms"] == ("3600000", True)


async def test_a_caught_up_relay_is_not_stalled(
    store: EventStore, database_url: str, topic: str, kafka_bootstrap: str
) -> None:
    r = relay(store, database_url, topic, kafka_bootstrap)
    assert r.stalled_seconds() == 0.0 and r.stall_reason is None
    done = await append(store, 3)
    async with running(r):
        await until(lambda: r.published >= done[-1])
        await asyncio.sleep(1.0)
        assert r.leader and r.stalled_seconds() == 0.0 and r.stall_reason is None


async def admin_execute(database_url: str, schema: str, sql: str, *args: Any) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute(sql, *args)
    finally:
        await conn.close()


async def assert_stopped_with_alarm(r: Relay, words: str, before: int) -> None:
    await until(lambda: r.stall_reason is not None and words in r.stall_reason)
    assert r.stall_reason is not None and r.stall_reason.startswith("RelayAlarm")
    await until(lambda: r.stalled_seconds() > 1.0)
    assert r.published <= before


async def test_a_store_restored_from_an_older_backup_stops_the_relay_with_an_alarm(
    store: EventStore, database_url: str, topic: str, kafka_bootstrap: str
) -> None:
    """Positions 1-6 were published, then the store lost 4-6 (restored from an older
    backup; here, a superuser deletes them). The relay must neither wait for positions it
    believes published nor, once new events take positions 4-6 again, skip them as
    "already on Kafka": it stops with an alarm, both before and after they come."""
    done = await append(store, 6)
    r = relay(store, database_url, topic, kafka_bootstrap)
    async with running(r):
        await until(lambda: r.published >= done[-1])
    await admin_execute(
        database_url,
        store.schema,
        "ALTER TABLE events DISABLE TRIGGER USER;"
        f" DELETE FROM events WHERE position > {done[2]};"
        " ALTER TABLE events ENABLE TRIGGER USER",
    )
    stopped = relay(store, database_url, topic, kafka_bootstrap)
    async with running(stopped) as task:
        await assert_stopped_with_alarm(stopped, "below the relay checkpoint", done[-1])
        more = await append(store, 5)  # positions 4-6 again, other events; then 7-8
        assert more[:3] == done[3:]
        await assert_stopped_with_alarm(stopped, "ends with store position", done[-1])
        assert not task.done()
    messages = await read_topics(kafka_bootstrap, [topic], lambda m: False, timeout=2)
    assert sorted(positions_of(messages)) == done  # nothing of `more` went out


async def test_a_position_published_with_another_event_id_stops_the_relay(
    store: EventStore, database_url: str, topic: str, kafka_bootstrap: str
) -> None:
    """A message for position 2 is on Kafka, but not the store's event 2 (a topic that
    outlived its store): taking it as "published" would lose the store's event."""
    done = await append(store, 3)
    r = relay(store, database_url, topic, kafka_bootstrap)
    [second] = await store.read_all(done[1] - 1, 1)
    out = ToTopic(topic).route(second)
    partition = _partition(out, list(range(PARTITIONS)))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            b"other",
            key=out.key,
            partition=partition,
            headers=[
                (EVENT_ID_HEADER, str(uuid.uuid4()).encode()),
                (POSITION_HEADER, str(done[1]).encode()),
            ],
        )
    finally:
        await producer.stop()
    async with running(r):
        await assert_stopped_with_alarm(r, "another event id", 0)
    messages = await read_topics(kafka_bootstrap, [topic], lambda m: False, timeout=2)
    assert [m.value for m in messages] == [b"other"]


async def test_kafka_unreachable_is_a_stall_only_when_work_is_pending(
    store: EventStore, database_url: str, topic: str
) -> None:
    """The store is read before Kafka is reached: with nothing to publish, a broker that
    does not answer is no stall; with events waiting, it is, and the reason says why."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        nowhere = f"127.0.0.1:{s.getsockname()[1]}"
    r = relay(store, database_url, topic, nowhere)
    async with running(r):
        await asyncio.sleep(1.5)
        assert r.stalled_seconds() == 0.0
        await append(store, 2)
        await until(lambda: r.stalled_seconds() > 1.0)
        assert r.stall_reason is not None and r.stall_reason.startswith("KafkaConnectionError")
        assert not r.publishing and r.published == 0
