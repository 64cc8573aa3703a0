"""A record the Kafka client cannot decode -- here a header name that is not UTF-8, which
Kafka accepts from any producer -- neither stops the consuming task nor its partition: it is
quarantined by reference (its origin; its bytes stay on the topic), and the records before
and after it are decided exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from support import (
    Feed,
    assert_decided_exactly_once,
    cotisation,
    envelope,
    key_of,
    nir,
    publish_many,
    read_topics,
    store_events,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.handler import UNDECODABLE
from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration

FINAL = frozenset({"EncaissementDelegue", "EncaissementNonDelegue", "DecisionEnAttente"})

_PRODUCE = """
import asyncio, sys
from aiokafka import AIOKafkaProducer

class NotUtf8(str):  # the pure-Python record builder encodes header names with .encode()
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfe-name"

async def main(bootstrap, topic, key, partition="-1"):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        where = int(partition)
        await producer.send_and_wait(
            topic, b"{}", key=key.encode(), headers=[(NotUtf8("h"), b"v")],
            partition=None if where < 0 else where,
        )
    finally:
        await producer.stop()

asyncio.run(main(*sys.argv[1:]))
"""


def publish_undecodable(s: ServiceSettings, key: str, partition: int = -1) -> None:
    """One record with a header name that is not UTF-8 (a producer of its own: aiokafka's
    C extension would refuse to build it)."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            _PRODUCE,
            s.kafka_bootstrap_servers,
            s.topic_cotisations,
            key,
            str(partition),
        ],
        env=dict(os.environ, AIOKAFKA_NO_EXTENSIONS="1"),
        check=True,
        timeout=60,
    )


async def test_an_undecodable_record_is_quarantined_and_its_partition_goes_on(
    settings: ServiceSettings,
) -> None:
    s = settings.model_copy(update={"topic_partitions": 1})
    runtime = build_runtime("collection", s)
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        before = await publish_many(
            feed, s.topic_cotisations, [cotisation(f"COT-U{i}", nir(i)) for i in range(5)]
        )
        publish_undecodable(s, nir(99))
        after = await publish_many(
            feed, s.topic_cotisations, [cotisation(f"COT-U{i}", nir(i)) for i in range(5, 10)]
        )
        await assert_decided_exactly_once(
            s, s.collection_schema, s.topic_reglements_cotisations, FINAL, before + after
        )
        rejected = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: len(m) >= 1
        )
        state = await runtime.probe()
    assert state["ready"], state
    assert len(rejected) == 1
    assert rejected[0].headers["reject_kind"] == UNDECODABLE.encode()
    assert rejected[0].headers["source_offset"] == b"5"
    rows = await store_events(s.database_url.get_secret_value(), s.collection_schema)
    [quarantined] = [json.loads(r["payload"]) for r in rows if r["event_type"] == "MessageRejete"]
    assert quarantined["kind"] == UNDECODABLE and quarantined["value"] is None
    assert quarantined["offset"] == 5 and quarantined["digest"]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_compressed_batches_from_upstream_are_decided(
    settings: ServiceSettings, codec: str
) -> None:
    """Producers may compress with any codec Kafka knows: the service reads them all."""

    facts = [cotisation(f"COT-Z{i}", nir(200 + i)) for i in range(20)]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, compression_type=codec, linger_ms=50
    )
    async with build_runtime("collection", settings).running():
        await producer.start()
        try:
            ids, futures = [], []
            for fact in facts:
                ids.append(str(uuid.uuid4()))
                value = envelope(*fact, event_id=ids[-1])
                futures.append(
                    await producer.send(settings.topic_cotisations, value, key=key_of(fact[1]))
                )
            for future in futures:
                await future
        finally:
            await producer.stop()
        await assert_decided_exactly_once(
            settings,
            settings.collection_schema,
            settings.topic_reglements_cotisations,
            FINAL,
            ids,
        )


@pytest.mark.parametrize("bad", [0, 1])
async def test_an_undecodable_record_loses_nothing_on_the_other_partitions(
    settings: ServiceSettings, bad: int
) -> None:
    """The client takes records partition by partition: when the undecodable one comes after
    records it already took from another partition, those are read again, not skipped."""
    s = settings.model_copy(update={"topic_partitions": 2})
    async with build_runtime("collection", s).running():
        pass  # its topics
    ids: list[str] = []
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, linger_ms=20)
    await producer.start()
    try:
        for partition in (0, 1):
            for i in range(100):
                person = nir(partition * 1000 + i)
                ids.append(str(uuid.uuid4()))
                fact = cotisation(f"COT-M{partition}-{i}", person)
                await producer.send(
                    s.topic_cotisations,
                    envelope(*fact, event_id=ids[-1]),
                    key=person.encode(),
                    partition=partition,
                )
        await producer.flush()
    finally:
        await producer.stop()
    publish_undecodable(s, nir(5), bad)
    async with build_runtime("collection", s).running():
        await assert_decided_exactly_once(
            s, s.collection_schema, s.topic_reglements_cotisations, FINAL, ids
        )
        rejected = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: len(m) >= 1
        )
    assert [(m.headers["reject_kind"], m.headers["source_partition"]) for m in rejected] == [
        (UNDECODABLE.encode(), str(bad).encode())
    ]
