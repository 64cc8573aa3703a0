"""Topics are created explicitly, with the partitions, replication, retention and size limit
of the settings, instead of by the broker's auto-creation (which the local broker disables).

Size limits are explicit because a rejection is the refused record relayed untouched plus
its reason headers: if the rejection topic took no more than the inbound one, the largest
record an upstream may send could never be rejected, and the relay would stall on it. So
inbound topics get a set `max.message.bytes` and rejection topics that plus
:data:`REJECTION_HEADROOM`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

INBOUND_MAX_MESSAGE_BYTES = 1_048_576
"""Default `max.message.bytes` of the inbound topics (1 MiB, about the broker's default)."""
REJECTION_HEADROOM = 64 * 1024
"""What a rejection copy may add to the refused record: reason, origin and id headers."""
MAX_MESSAGE_BYTES = "max.message.bytes"
_TOPIC_OVERRIDE = 1  # DescribeConfigs config_source DYNAMIC_TOPIC_CONFIG: set on the topic


class TopicsMissing(RuntimeError):
    """Topics a client may not create (or not see: no DESCRIBE right) are not there."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"Kafka topics missing or not visible to this principal: {', '.join(missing)};"
            " create them as the admin (`mandat kafka provision`) and check the ACLs"
        )
        self.missing = missing


def rejection_max_message_bytes(inbound_max: int = INBOUND_MAX_MESSAGE_BYTES) -> int:
    """`max.message.bytes` of a rejection topic fed from inbound topics of `inbound_max`."""
    return inbound_max + REJECTION_HEADROOM


def size_limits(
    inbound: Iterable[str],
    decisions: Iterable[str],
    rejections: Iterable[str],
    inbound_max: int = INBOUND_MAX_MESSAGE_BYTES,
) -> dict[str, int]:
    """The `max.message.bytes` of each of a service's topics (decisions are small: the
    inbound limit is plenty for a batch of them)."""
    limits = dict.fromkeys(inbound, inbound_max)
    limits |= dict.fromkeys(decisions, inbound_max)
    limits |= dict.fromkeys(rejections, rejection_max_message_bytes(inbound_max))
    return limits


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str],
    *,
    partitions: int,
    replication_factor: int,
    retention_ms: int,
    max_message_bytes: Mapping[str, int] | None = None,
    client_options: Mapping[str, Any] | None = None,
    create: bool = True,
) -> list[str]:
    """Create the topics that do not exist yet; returns those created.

    `max_message_bytes` gives topics an explicit size limit. An existing topic whose limit
    is lower is raised to it (a deployment created before the limits existed), never
    lowered. `create=False` (a principal that may not create topics, when the broker
    enforces ACLs: the admin provisions them) only checks that they are all there and
    raises :class:`TopicsMissing` naming those that are not."""
    limits = dict(max_message_bytes or {})
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **dict(client_options or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = set(names)
        missing = sorted(wanted - existing)
        if not create:
            if missing:
                raise TopicsMissing(missing)
            return []
        if missing:
            new = [
                NewTopic(
                    n,
                    partitions,
                    replication_factor,
                    topic_configs=_configs(replication_factor, retention_ms, limits.get(n)),
                )
                for n in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile elsewhere
                await admin.create_topics(new)
        for name in sorted(wanted & existing):
            if name in limits:
                await _raise_limit(admin, name, limits[name])
        return missing
    finally:
        await admin.close()


def _configs(replication_factor: int, retention_ms: int, max_bytes: int | None) -> dict[str, str]:
    config = {
        "retention.ms": str(retention_ms),
        "min.insync.replicas": str(min(2, replication_factor)),
    }
    if max_bytes is not None:
        config[MAX_MESSAGE_BYTES] = str(max_bytes)
    return config


async def topic_configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, tuple[str, bool]]:
    """Every config of the topic: its effective value, and whether the topic sets it itself
    (rather than inheriting it from the broker)."""
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    configs: dict[str, tuple[str, bool]] = {}
    for error_code, error_message, _type, _name, entries in response.resources:
        if error_code:
            raise RuntimeError(f"describe configs of {topic}: {error_code} {error_message}")
        for entry in entries:
            name, value, source = entry[0], entry[1], entry[3]
            # v0 has is_default (a bool) where later versions have config_source
            own = source is False if response.API_VERSION == 0 else source == _TOPIC_OVERRIDE
            if value is not None:
                configs[name] = (value, own)
    return configs


async def _raise_limit(admin: AIOKafkaAdminClient, topic: str, wanted: int) -> None:
    """Raise the topic's effective `max.message.bytes` to `wanted` if it is lower.
    AlterConfigs replaces the topic's whole set of overrides, so the others are sent back
    unchanged."""
    configs = await topic_configs(admin, topic)
    current = configs.get(MAX_MESSAGE_BYTES)
    if current is not None and int(current[0]) >= wanted:
        return
    overrides = {name: value for name, (value, own) in configs.items() if own}
    overrides[MAX_MESSAGE_BYTES] = str(wanted)
    [response] = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, overrides)]
    )
    for error_code, error_message, *_ in response.resources:
        if error_code:
            raise RuntimeError(f"alter configs of {topic}: {error_code} {error_message}")
