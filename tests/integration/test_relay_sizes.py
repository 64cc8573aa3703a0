"""Room for rejection copies: topics get explicit size limits, the largest record an inbound
topic accepts ends on the rejection topic untouched, and readers of big records skip none."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from support import Feed, cotisation, envelope, nir, read_topics

from services.adapters.kafka.topics import (
    INBOUND_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    REJECTION_HEADROOM,
    ensure_topics,
    topic_configs,
)
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


def largest_value(key: bytes, headers: list[tuple[str, bytes]], limit: int) -> int:
    """The longest value whose one-record batch is at most `limit` bytes."""
    size = limit
    while DefaultRecordBatchBuilder.estimate_size_in_bytes(key, b"x" * size, headers) > limit:
        size -= 1
    return size


async def configs_of(bootstrap: str, topic: str) -> dict[str, tuple[str, bool]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return await topic_configs(admin, topic)
    finally:
        await admin.close()


async def test_the_largest_inbound_record_is_rejected_byte_identical_with_its_reasons(
    settings: ServiceSettings,
) -> None:
    """A ~1 MiB value, as large as the inbound topic takes (not JSON: random bytes), with
    headers of its own: its rejection copy is the same key, value and headers, plus the
    reason headers, and the valid input behind it is decided (nothing stuck)."""
    s, key = settings, nir(5).encode()
    headers = [("trace", b"\x00\xffabc"), ("empty", b"")]
    size = largest_value(key, headers, INBOUND_MAX_MESSAGE_BYTES)
    value = os.urandom(size)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        inbound = await configs_of(s.kafka_bootstrap_servers, s.topic_cotisations)
        rejections = await configs_of(s.kafka_bootstrap_servers, s.topic_rejets_collection)
        assert inbound[MAX_MESSAGE_BYTES] == (str(INBOUND_MAX_MESSAGE_BYTES), True)
        assert rejections[MAX_MESSAGE_BYTES] == (
            str(INBOUND_MAX_MESSAGE_BYTES + REJECTION_HEADROOM),
            True,
        )
        big = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers,
            acks="all",
            max_request_size=4 * INBOUND_MAX_MESSAGE_BYTES,
        )
        await big.start()
        try:
            with pytest.raises(MessageSizeTooLargeError):  # the limit is the broker's too
                await big.send_and_wait(
                    s.topic_cotisations, value + b"x" * 1024, key=key, headers=headers
                )
            await big.send_and_wait(s.topic_cotisations, value, key=key, headers=headers)
        finally:
            await big.stop()
        fact = cotisation("COT-BIG-1", nir(5), debut="2018-01-01")
        await feed.producer.send_and_wait(s.topic_cotisations, envelope(*fact), key=key)
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations, s.topic_rejets_collection],
            lambda m: len(m) >= 2,
            timeout=60,
        )
    [rejected] = [m for m in got if m.topic == s.topic_rejets_collection]
    assert rejected.value == value and rejected.key == key
    assert rejected.headers["trace"] == b"\x00\xffabc" and rejected.headers["empty"] == b""
    assert rejected.headers["reject_reason"]
    assert rejected.headers["source_topic"] == s.topic_cotisations.encode()
    assert rejected.headers["source_offset"] == b"0"
    [decided] = [m for m in got if m.topic == s.topic_reglements_cotisations]
    assert decided.json["payload"]["cotisation_id"] == "COT-BIG-1"


async def test_an_existing_topic_gets_room_and_keeps_its_other_settings(
    kafka_bootstrap: str, unique: str
) -> None:
    """A deployment from before the limits: its rejection topic is raised, never lowered."""
    topic = f"t{unique}.old"
    common: dict[str, Any] = {"partitions": 1, "replication_factor": 1, "retention_ms": 86_400_000}
    await ensure_topics(kafka_bootstrap, [topic], **common)  # broker's default limit
    before = await configs_of(kafka_bootstrap, topic)
    assert before[MAX_MESSAGE_BYTES][1] is False  # inherited
    await ensure_topics(kafka_bootstrap, [topic], max_message_bytes={topic: 2_000_000}, **common)
    raised = await configs_of(kafka_bootstrap, topic)
    assert raised[MAX_MESSAGE_BYTES] == ("2000000", True)
    assert raised["retention.ms"] == ("86400000", True)
    await ensure_topics(kafka_bootstrap, [topic], max_message_bytes={topic: 100_000}, **common)
    assert (await configs_of(kafka_bootstrap, topic))[MAX_MESSAGE_BYTES] == ("2000000", True)


async def test_a_reader_with_a_smaller_fetch_size_still_reads_every_big_record(
    kafka_bootstrap: str, unique: str
) -> None:
    """aiokafka raises RecordTooLargeError and steps over an offset when a fetch returns
    only part of a batch; with this broker a record larger than max_partition_fetch_bytes
    is returned whole instead. This pins that down (readers of rejection topics also set
    a fetch size above the rejection limit, so they do not depend on it)."""
    topic = f"t{unique}.big"
    limit = INBOUND_MAX_MESSAGE_BYTES + REJECTION_HEADROOM
    await ensure_topics(
        kafka_bootstrap,
        [topic],
        partitions=3,
        replication_factor=1,
        retention_ms=-1,
        max_message_bytes={topic: limit},
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=limit)
    await producer.start()
    sent = []
    try:
        for i in range(9):
            value = os.urandom(1_100_000 if i % 2 else 200)
            await producer.send_and_wait(topic, value, partition=i % 3)
            sent.append(value)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_partition_fetch_bytes=256 * 1024,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < len(sent):
                for records in (await consumer.getmany(timeout_ms=300)).values():
                    got += [r.value for r in records if r.value is not None]
    finally:
        await consumer.stop()
    assert sorted(got) == sorted(sent)
