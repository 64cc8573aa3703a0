"""The composition root both services share: one FastStream app per service, built from a
`ServiceSpec` and the settings. Nothing connects at import time; the lifespan opens the
pool, applies migrations, creates topics, folds the store, and starts the relay."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from contracts import InboundEvent, OutboundEvent
from services.eventstore import EventStore
from services.eventstore.migrations import apply_migrations
from services.eventstore.pool import SERVICE_ROLE, create_pool
from services.eventstore.relay import Relay
from services.runtime.handler import BatchHandler, BatchReport
from services.runtime.metrics import ServiceMetrics
from services.runtime.outbound import Routes
from services.runtime.processing import Processor
from services.runtime.settings import ServiceSettings
from services.runtime.snapshots import SnapshotStore

if TYPE_CHECKING:
    from services.audit.projections import Projector
from services.runtime.topics import ensure_topics, rejection_max_message_bytes, size_limits

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """What makes a service itself: its name, store schema, group, inputs and outputs."""

    name: str
    schema: str
    group_id: str
    inputs: Mapping[str, frozenset[str]]  # topic -> event types it may carry
    routes: Routes
    new_processor: Callable[..., Processor]  # () for a fresh view, (view) to resume one
    description: str = ""


async def _parse_any_headers(records: Any, original: Callable[[Any], Awaitable[Any]]) -> Any:
    """FastStream decodes every header as UTF-8 and fails the whole batch on one that is
    not: a poison pill that would block the partition. Hand it copies with readable headers,
    then put the untouched records back (the rejection path keeps them as they came)."""
    readable = tuple(_readable(r) for r in records)
    message = await original(readable)
    message.raw_message = records
    return message


def _readable(record: Any) -> Any:
    try:
        for _, value in record.headers:
            value.decode("utf-8")
    except UnicodeDecodeError:
        headers = [(k, v.decode("utf-8", "replace").encode()) for k, v in record.headers]
        return dataclasses.replace(record, headers=headers)
    return record


async def _records(message: Any) -> Any:
    """Hand the handler the raw records: parsing them is the contract's job (and a record
    that is not JSON must reach the rejection path, not fail in a decoder)."""
    return message.raw_message


class ServiceRuntime:
    """A running service: its store, batch handler, relay and Kafka subscriber."""

    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.dsn = settings.database_url.get_secret_value()
        self.pool: asyncpg.Pool | None = None
        self.handler: BatchHandler | None = None
        self.relay: Relay | None = None
        self.projector: Projector | None = None
        self.on_report: Callable[[BatchReport], None] = lambda report: None
        self.metrics = ServiceMetrics(spec.name)
        self.broker = KafkaBroker(
            # FastStream takes a string as one address: a list of brokers must be split
            settings.kafka_bootstrap_servers.split(","),
            client_id=f"mandat-{spec.name}",
            graceful_timeout=30.0,
            # the handler gets raw records and parses them with the contract itself: a
            # breach must reach the rejection path, not fail in FastStream's validation
            apply_types=False,
        )
        self._subscribe()
        self._document_outputs()

    def _subscribe(self) -> None:
        @self.broker.subscriber(
            *self.spec.inputs,
            group_id=self.spec.group_id,
            batch=True,
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=100,
            # an idle input topic (the registry, most of the time) must not hold a fetch for
            # the busy one: aiokafka waits up to this long for data on the partitions it asks
            fetch_max_wait_ms=50,
            auto_offset_reset="earliest",
            # offsets are committed after the store commit; on an unexpected error the batch
            # is sought back and redelivered (never ACK_FIRST, which is at-most-once)
            ack_policy=AckPolicy.NACK_ON_ERROR,
            parser=_parse_any_headers,
            decoder=_records,
            title=f"{self.spec.name}/inputs",
            description=f"Inputs of the {self.spec.name} service (contract v1).",
        )
        async def consume(records: list[InboundEvent]) -> None:
            assert self.handler is not None
            report = await self.handler.handle(records)  # type: ignore[arg-type]
            self.metrics.observe(report, records)  # type: ignore[arg-type]
            self.on_report(report)

    def _document_outputs(self) -> None:
        """Declare the topics the relay writes, so the AsyncAPI document shows them."""
        routes = self.spec.routes
        self.broker.publisher(
            routes.decisions_topic,
            title=f"{self.spec.name}/decisions",
            schema=OutboundEvent,
            description="Decisions, in store order (key: nir; headers event_type, event_id, "
            "schema_version, store_position).",
        )
        self.broker.publisher(
            routes.rejections_topic,
            title=f"{self.spec.name}/rejections",
            schema=bytes,
            description="Messages that break the contract, untouched (original key, value and "
            "headers), with reject_reason, reject_field, source_topic, source_partition and "
            "source_offset headers.",
        )

    def asyncapi(self) -> str:
        """This service's AsyncAPI document (JSON), generated from the FastStream app."""
        spec = AsyncAPI(
            self.broker,
            title=f"mandat {self.spec.name}",
            version="1.0.0",
            description=self.spec.description,
        )
        return spec.to_specification().to_json()

    async def probe(self) -> dict[str, Any]:
        """Readiness: PostgreSQL answers, Kafka answers, the store is folded; with lags."""
        state: dict[str, Any] = {"service": self.spec.name}
        try:
            assert self.pool is not None
            head = int(await self.pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))
            state["postgres"] = True
        except Exception:
            head, state["postgres"] = -1, False
        try:
            state["kafka"] = bool(await self.broker.ping(timeout=2.0))
        except Exception:
            state["kafka"] = False
        folded = self.handler is not None
        state["store_head"] = head
        if self.relay is not None and head >= 0:
            state["relay_leader"] = self.relay.leader
            state["relay_published"] = self.relay.published
        if self.handler is not None:
            state["parked"] = len(self.handler.processor.view.parking.parked())
        state["ready"] = bool(state["postgres"] and state["kafka"] and folded)
        return state

    def refresh_gauges(self, state: dict[str, Any]) -> None:
        if state.get("store_head", -1) >= 0:
            self.metrics.store_head.set(state["store_head"])
            if state.get("relay_leader"):
                self.metrics.relay_lag.set(state["store_head"] - state["relay_published"])
        if "parked" in state:
            self.metrics.parked.set(state["parked"])

    async def connect_relay(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, server_settings={"role": SERVICE_ROLE})

    async def start(self) -> None:
        """Prepare everything the subscriber needs before it consumes."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await apply_migrations(conn, self.spec.schema)
        finally:
            await conn.close()
        s = self.settings
        routes = self.spec.routes
        await ensure_topics(
            s.kafka_bootstrap_servers,
            [*self.spec.inputs, *routes.topics],
            partitions=s.topic_partitions,
            replication_factor=s.topic_replication_factor,
            retention_ms=s.topic_retention_ms,
            max_message_bytes=size_limits(
                self.spec.inputs,
                [routes.decisions_topic],
                [routes.rejections_topic],
                s.topic_max_message_bytes,
            ),
        )
        self.pool = await create_pool(self.dsn, self.spec.schema, max_size=s.pool_size)
        store = EventStore(self.pool, self.spec.schema)
        snapshots = SnapshotStore(self.pool, self.spec.name, every=s.snapshot_every)
        self.handler = BatchHandler(
            store, self.spec.new_processor, self.spec.inputs, snapshots=snapshots
        )
        head = await self.handler.catch_up()
        log.info("%s: store folded up to position %d", self.spec.name, head)
        if s.gc_freeze:
            # the folded view is long-lived: keep it out of every later collection, and
            # collect the young generation less often (batches allocate in bursts)
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
        # the balances operations and auditors read (services/audit/projections.py)
        from services.audit.projections import PROJECTIONS_OF, Projector

        self.projector = Projector(store, projections=PROJECTIONS_OF[self.spec.name])
        self.relay = Relay(
            store,
            self.connect_relay,
            self.spec.routes,
            s.kafka_bootstrap_servers,
            name=self.spec.name,
            max_request_size=rejection_max_message_bytes(s.topic_max_message_bytes),
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        await self.start()
        assert self.relay is not None and self.projector is not None
        tasks = [
            asyncio.create_task(self.relay.run(), name=f"relay-{self.spec.name}"),
            asyncio.create_task(self.projector.run(), name=f"projector-{self.spec.name}"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ServiceRuntime]:
        """The whole service (store, relay, subscriber) running in this event loop; stopped
        gracefully on exit. For tests, the demo and benchmarks; `app()` for a process."""
        async with self.lifespan():
            await self.broker.start()
            try:
                yield self
            finally:
                await self.broker.stop()

    def app(self) -> FastStream:
        """The FastStream application of this service."""
        return FastStream(self.broker, lifespan=lambda **_: self.lifespan())
