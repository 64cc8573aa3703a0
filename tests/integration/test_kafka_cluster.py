"""Three Kafka brokers, the leader of the busiest input partition killed mid-stream and
restarted: the collection service decides every input exactly once, in its store and on the
settlement topic (read committed), and rejects nothing. Bounded: 1,500 inputs at 150/s."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from support import assert_decided_exactly_once, read_topics

from services.domain.catalog import COLLECTION
from services.tools.bench.cluster import scenario
from services.tools.devstack.kafka import KafkaCluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("java") is None or shutil.which("mvn") is None,
        reason="needs Java 17 and Maven on PATH",
    ),
]

FINAL = COLLECTION.final_types  # a revision settles no input


async def test_the_leader_of_a_busy_partition_killed_and_restarted_loses_and_duplicates_nothing(
    database_url: str, tmp_path: Path
) -> None:
    cluster = KafkaCluster(tmp_path / "cluster", heap_mb=256)
    try:
        await asyncio.to_thread(cluster.start)
        async with asyncio.timeout(170):
            run = await scenario(
                cluster, database_url, count=1500, rate=150.0, kill_at=0.3, down_seconds=5.0
            )
            report = run.report
            assert report["decided_in_store"] == report["published"] == 1500, report
            assert report["store_duplicates"] == report["topic_duplicates"] == 0, report
            assert report["store_unexpected"] == 0 and report["rejected"] == 0, report
            assert report["recover_seconds"] is not None, report
            # and the suite's own exactly-once check, on the cluster still running
            s = run.settings
            await assert_decided_exactly_once(
                s, s.collection_schema, s.topic_reglements_cotisations, FINAL, run.ids
            )
            rejected = await read_topics(
                s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: False, 2
            )
            assert rejected == []
        print(f"\nthree brokers, leader killed: {report}")
    finally:
        await asyncio.to_thread(cluster.stop)
    assert all(cluster.pid(i) is None for i in cluster.nodes)
