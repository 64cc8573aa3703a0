"""A real Kafka broker started by services.tools.devstack.kafka serves aiokafka end to end."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from services.tools.devstack.kafka import is_running, start_kafka, stop_kafka

TOPIC = "devstack-check"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("mvn") is None,
        reason="needs Java 17 and Maven on PATH",
    ),
]


async def _create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=3, replication_factor=1)])
        (described,) = await admin.describe_topics([TOPIC])
        assert described["error_code"] == 0
        assert len(described["partitions"]) == 3
    finally:
        await admin.close()


async def _produce(bootstrap: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        meta = await producer.send_and_wait(TOPIC, b"hello", key=b"k1")
        return int(meta.partition)
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str) -> tuple[int, bytes | None, bytes | None]:
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="devstack-check",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), timeout=30)
        await consumer.commit()
        return msg.partition, msg.key, msg.value
    finally:
        await consumer.stop()


async def _roundtrip(bootstrap: str) -> None:
    await _create_topic(bootstrap)
    partition = await _produce(bootstrap)
    assert await _consume_one(bootstrap) == (partition, b"k1", b"hello")


def test_local_broker_serves_aiokafka_and_stops(tmp_path: Path) -> None:
    run_dir = tmp_path / "kafka"
    node = start_kafka(run_dir, port=0)
    try:
        assert node.bootstrap.startswith("127.0.0.1:")
        asyncio.run(_roundtrip(node.bootstrap))

        again = start_kafka(run_dir, port=0)
        assert (again.pid, again.bootstrap) == (node.pid, node.bootstrap)
        assert is_running(run_dir) == node
    finally:
        was_running = stop_kafka(run_dir)

    assert was_running
    assert is_running(run_dir) is None
    assert not (run_dir / "kafka.pid").exists()
    with pytest.raises(ProcessLookupError):
        os.kill(node.pid, 0)
    assert (run_dir / "data" / "meta.properties").is_file()
    assert stop_kafka(run_dir) is False
