"""Topics are created explicitly, with the partitions, replication and retention of the
settings, instead of by the broker's auto-creation (which the local broker disables)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    retention_ms: int,
) -> list[str]:
    """Create the topics that do not exist yet; returns those created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(names) - existing)
        if not missing:
            return []
        config = {
            "retention.ms": str(retention_ms),
            "min.insync.replicas": str(min(2, replication_factor)),
        }
        new = [NewTopic(n, partitions, replication_factor, topic_configs=config) for n in missing]
        with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile elsewhere
            await admin.create_topics(new)
        return missing
    finally:
        await admin.close()
