"""The relays of a store in shards share the output topics: each publishes its shard once,
in order, even when it fails between Kafka's commit and its checkpoint while another
shard's messages land after its own on the same partitions."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from test_relay_transactions import PARTITIONS, ToTopic, append, published, running, until

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.leases import RelayCheckpoints
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import create_pool
from services.adapters.kafka.relay import POSITION_HEADER, SHARD_HEADER, Relay

pytestmark = pytest.mark.integration


@pytest.fixture
async def shards(database_url: str, unique: str) -> AsyncIterator[list[EventStore]]:
    stores = []
    for k in range(2):
        schema = f"rs_{unique}_s{k}"
        conn = await asyncpg.connect(database_url)
        try:
            await apply_migrations(conn, schema)
        finally:
            await conn.close()
        stores.append(EventStore(await create_pool(database_url, schema, max_size=4), schema))
    try:
        yield stores
    finally:
        for store in stores:
            await store.pool.close()


def shard_relay(
    store: EventStore, shard: int, database_url: str, topic: str, bootstrap: str
) -> Relay:
    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(database_url)

    options: dict[str, Any] = {"idle_poll": 0.1, "standby_poll": 0.2, "shard": shard}
    return Relay(store, connect, ToTopic(topic), bootstrap, name="things", **options)


class FailsOnce(RelayCheckpoints):
    """A checkpoint that fails once, after Kafka committed the batch it would record: what
    a relay killed between the two leaves behind."""

    def __init__(self, schema: str) -> None:
        super().__init__(schema)
        self.failed = False

    async def save(self, conn: asyncpg.Connection, relay: str, position: int) -> None:
        if position > 0 and not self.failed:
            self.failed = True
            raise ConnectionResetError("lost between Kafka's commit and the checkpoint")
        await super().save(conn, relay, position)


async def test_each_shard_is_published_once_despite_a_failure_before_its_checkpoint(
    shards: list[EventStore], database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    from services.adapters.kafka.topics import ensure_topics

    topic = f"t{unique}.sharded"
    await ensure_topics(
        kafka_bootstrap, [topic], partitions=PARTITIONS, replication_factor=1, retention_ms=-1
    )
    a, b = shards
    first = [await append(a, 6), await append(b, 6)]
    ra, rb = (shard_relay(s, k, database_url, topic, kafka_bootstrap) for k, s in enumerate(shards))
    async with running(ra), running(rb):
        await until(lambda: ra.published >= first[0][-1] and rb.published >= first[1][-1])
    # shard 0 publishes its next batch and fails before its checkpoint; shard 1 publishes
    # after it, on the same partitions, before shard 0's relay leads again
    failing = FailsOnce(a.schema)
    ra = shard_relay(a, 0, database_url, topic, kafka_bootstrap)
    ra.checkpoints = failing
    second_a = await append(a, 6)
    async with running(ra):
        await until(lambda: failing.failed)
    second_b = await append(b, 6)
    rb = shard_relay(b, 1, database_url, topic, kafka_bootstrap)
    async with running(rb):
        await until(lambda: rb.published >= second_b[-1])
    ra = shard_relay(a, 0, database_url, topic, kafka_bootstrap)
    async with running(ra):
        await until(lambda: ra.published >= second_a[-1])
    messages = await published(kafka_bootstrap, topic, 24)
    got = Counter(
        (m.headers[SHARD_HEADER].decode(), int(m.headers[POSITION_HEADER])) for m in messages
    )
    expected = {("0", p) for p in first[0] + second_a} | {("1", p) for p in first[1] + second_b}
    assert set(got) == expected and set(got.values()) == {1}, got
    # each shard in its order on each partition
    for shard in ("0", "1"):
        for partition in range(PARTITIONS):
            order = [
                int(m.headers[POSITION_HEADER])
                for m in messages
                if m.headers[SHARD_HEADER].decode() == shard and m.partition == partition
            ]
            assert order == sorted(order)


async def test_a_transaction_left_open_by_another_writer_does_not_hide_a_shards_messages(
    shards: list[EventStore], database_url: str, kafka_bootstrap: str, unique: str
) -> None:
    """A committed read ends where the oldest open transaction begins: a shard's messages
    committed after another writer's transaction still open (another shard's relay, killed
    mid-batch) are not seen by a new leader that does not wait for it to end, which would
    publish them again."""
    from aiokafka import AIOKafkaProducer

    from services.adapters.kafka.topics import ensure_topics

    topic = f"t{unique}.open"
    await ensure_topics(
        kafka_bootstrap, [topic], partitions=PARTITIONS, replication_factor=1, retention_ms=-1
    )
    a = shards[0]
    first = await append(a, 6)
    ra = shard_relay(a, 0, database_url, topic, kafka_bootstrap)
    async with running(ra):
        await until(lambda: ra.published >= first[-1])
    stray = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=f"open-{unique}")
    await stray.start()
    try:
        failing = FailsOnce(a.schema)
        ra = shard_relay(a, 0, database_url, topic, kafka_bootstrap)
        ra.checkpoints = failing
        async with running(ra):
            await until(lambda: ra.publishing)  # leads; then another writer's transaction
            await stray.begin_transaction()  # opens on every partition, before its batch
            for partition in range(PARTITIONS):
                await stray.send_and_wait(topic, b"open", partition=partition)
            second = await append(a, 6)
            await until(lambda: failing.failed)
        ra = shard_relay(a, 0, database_url, topic, kafka_bootstrap)
        async with running(ra):
            await asyncio.sleep(3)  # the new leader waits for the open transaction...
            assert ra.published < second[-1]
            await stray.commit_transaction()  # ... which ends
            await until(lambda: ra.published >= second[-1])
    finally:
        await stray.stop()
    read = await published(kafka_bootstrap, topic, 12 + PARTITIONS)
    messages = [m for m in read if m.value != b"open"]
    got = Counter(int(m.headers[POSITION_HEADER]) for m in messages)
    assert sorted(got) == first + second and set(got.values()) == {1}, got
