"""Each service's lag, as the dashboard measures it from outside.

- consumer lag: end offsets of the service's input topics − the offsets its consumer group
  committed (Kafka only: measurable even when the service is down);
- relay lag: `store_head − relay_published` from the service's `/ready` (committed in
  PostgreSQL, not yet on Kafka); a service whose HTTP does not answer is shown as down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.runtime.settings import ServiceSettings


@dataclass(frozen=True)
class Target:
    """A service as seen from outside: its group, its input topics, its HTTP port."""

    name: str
    group: str
    inputs: tuple[str, ...]
    http_host: str
    http_port: int


def targets(settings: ServiceSettings, http_host: str | None = None) -> list[Target]:
    """The services to watch; their HTTP hosts come from the settings unless one is given."""
    s = settings
    return [
        Target("collection", s.collection_group, (s.topic_referentiel, s.topic_cotisations),
               http_host or s.collection_http_host, s.collection_http_port),
        Target("benefits", s.benefits_group, (s.topic_referentiel, s.topic_prestations),
               http_host or s.benefits_http_host, s.benefits_http_port),
    ]


async def http_json(host: str, port: int, path: str, timeout: float = 1.5) -> tuple[int, Any]:
    """GET a JSON document over plain HTTP/1.0 (status, parsed body); raises OSError,
    TimeoutError or ValueError when nothing sensible answers."""

    async def get() -> tuple[int, Any]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\n"
                         f"Accept: application/json\r\n\r\n".encode())
            await writer.drain()
            raw = await reader.read(1 << 20)
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(body)

    return await asyncio.wait_for(get(), timeout)


class LagProbe:
    """Measures the lags of the services on demand (one admin client, one consumer)."""

    def __init__(self, settings: ServiceSettings, http_host: str | None = None) -> None:
        self.bootstrap = settings.kafka_bootstrap_servers
        self.targets = targets(settings, http_host)
        self.admin: AIOKafkaAdminClient | None = None
        self.consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap,
                                         request_timeout_ms=5000)
        await self.admin.start()
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                         enable_auto_commit=False, request_timeout_ms=5000)
        await self.consumer.start()

    async def close(self) -> None:
        for closing in (self.consumer.stop() if self.consumer else None,
                        self.admin.close() if self.admin else None):
            if closing is not None:
                with contextlib.suppress(Exception):  # closing is best effort
                    await closing
        self.admin = self.consumer = None

    async def measure(self) -> dict[str, dict[str, Any]]:
        """Every service's lags: {name: {...}} (never raises: errors are reported)."""
        found = await asyncio.gather(*(self._one(t) for t in self.targets))
        return {t.name: state for t, state in zip(self.targets, found, strict=True)}

    async def _one(self, target: Target) -> dict[str, Any]:
        state: dict[str, Any] = {"group": target.group, "inputs": list(target.inputs),
                                 "http": f"{target.http_host}:{target.http_port}",
                                 "checked_at": time.time()}
        state.update(await self._relay(target))
        state.update(await self._consumer_lag(target))
        return state

    async def _relay(self, target: Target) -> dict[str, Any]:
        try:
            _, ready = await http_json(target.http_host, target.http_port, "/ready")
        except (OSError, TimeoutError, ValueError, IndexError):
            return {"up": False, "ready": False, "relay_lag": None}
        head, published = ready.get("store_head"), ready.get("relay_published")
        leader = ready.get("relay_leader")
        lag = head - published if isinstance(head, int) and isinstance(published, int) \
            and head >= 0 and leader else None
        return {"up": True, "ready": bool(ready.get("ready")), "store_head": head,
                "relay_published": published, "relay_leader": leader, "relay_lag": lag,
                "service_parked": ready.get("parked"), "kafka": ready.get("kafka"),
                "postgres": ready.get("postgres")}

    async def _consumer_lag(self, target: Target) -> dict[str, Any]:
        if self.admin is None or self.consumer is None:
            return {"consumer_lag": None, "consumer_error": "not connected to Kafka"}
        try:
            described = await self.admin.describe_topics(list(target.inputs))
            parts = [TopicPartition(d["topic"], p["partition"])
                     for d in described if not d.get("error_code")
                     for p in d["partitions"]]
            if not parts:
                return {"consumer_lag": None, "consumer_error": "input topics not found"}
            ends = await self.consumer.end_offsets(parts)
            starts = await self.consumer.beginning_offsets(parts)
            committed = await self.admin.list_consumer_group_offsets(target.group,
                                                                     partitions=parts)
            lag = 0
            for tp in parts:
                meta = committed.get(tp)
                offset = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                lag += max(0, ends[tp] - max(offset, starts[tp]))
            return {"consumer_lag": lag, "input_messages": sum(ends.values()),
                    "consumer_error": None}
        except Exception as exc:  # shown on the page, measured again next time
            return {"consumer_lag": None, "consumer_error": f"{type(exc).__name__}: {exc}"}
