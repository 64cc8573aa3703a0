"""The composition root both services share: one FastStream app per service, built from a
`ServiceSpec` and the settings. Nothing connects at import time; the lifespan opens the
pool, applies migrations, creates topics, folds the store, and starts the relay."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import asyncpg
from aiokafka.errors import ConsumerStoppedError, KafkaError
from faststream import FastStream
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from contracts import InboundEvent, OutboundEvent
from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.eventstore.roles import check_migrated
from services.adapters.eventstore.shards import Layout, read_layout
from services.adapters.kafka.outbound import Routes
from services.adapters.kafka.relay import Relay
from services.adapters.kafka.security import (
    client_options,
    faststream_security,
    role_of,
    secured,
)
from services.adapters.runtime import tracing
from services.adapters.runtime.handler import BatchHandler, BatchReport, Record
from services.adapters.runtime.metrics import ServiceMetrics
from services.adapters.runtime.monitoring import open_tasks, parked_age
from services.adapters.runtime.reviser import STEP_SECONDS, Reviser
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.sharded import ShardedHandler
from services.domain.kernel.processing import Processor

if TYPE_CHECKING:
    from services.adapters.eventstore.projections import Projector
    from services.adapters.trust.anchorer import Anchorer
from services.adapters.kafka.topics import ensure_topics, rejection_max_message_bytes, size_limits

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
    try:
        message = await original(readable)
    except Exception:  # never fail a batch here: the handler judges each record itself
        log.exception("FastStream could not parse a batch: handing it over without headers")
        message = await original(tuple(dataclasses.replace(r, headers=[]) for r in records))
    message.raw_message = records
    return message


def _readable(record: Any) -> Any:
    """The record, or a copy whose header values FastStream can decode: a null value (Kafka
    allows it) becomes empty, bytes that are not UTF-8 are replaced."""
    try:
        for _, value in record.headers:
            value.decode("utf-8")
    except (UnicodeDecodeError, AttributeError):
        headers = [
            (k, b"" if v is None else bytes(v).decode("utf-8", "replace").encode())
            for k, v in record.headers
        ]
        return dataclasses.replace(record, headers=headers)
    return record


@dataclass(frozen=True, slots=True)
class UndecodableRecord:
    """A record the Kafka client cannot decode (a header name that is not UTF-8, a batch in a
    codec it lacks, corrupt bytes): where it is, and why. The handler quarantines it by
    reference -- its bytes stay on the topic -- so its partition goes on."""

    topic: str
    partition: int
    offset: int
    undecodable: str
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: int = -1
    timestamp_type: int = 0
    checksum: None = None
    serialized_key_size: int = -1
    serialized_value_size: int = -1


def _stepping_over_undecodable(
    fetch: Callable[[Any], Awaitable[Any]],
) -> Callable[[Any], Awaitable[Any]]:
    """FastStream's fetch, except that a record the client cannot decode neither ends the
    consuming task (an error that is not a KafkaError does) nor stops its partition: each
    assigned partition is read one record at a time, and the one that cannot be read is
    handed over as an `UndecodableRecord` and stepped over."""

    async def fetch_or_step(consumer: Any) -> Any:
        # where each partition stands: a fetch that fails part-way has already moved the
        # partitions it took records from, and those records would be lost with it
        before = {tp: await consumer.position(tp) for tp in consumer.assignment()}
        try:
            return await fetch(consumer)
        except (KafkaError, ConsumerStoppedError, asyncio.CancelledError):
            raise
        except Exception as exc:
            log.warning("the Kafka client could not decode a fetch: %s", type(exc).__name__)
        assigned = consumer.assignment()
        for tp, position in before.items():
            if tp in assigned:
                consumer.seek(tp, position)
        for tp in sorted(consumer.assignment()):
            position = await consumer.position(tp)
            try:
                got = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            except (KafkaError, ConsumerStoppedError, asyncio.CancelledError):
                raise
            except Exception as exc:
                consumer.seek(tp, position + 1)
                return (UndecodableRecord(tp.topic, tp.partition, position, type(exc).__name__),)
            if got.get(tp):
                return tuple(got[tp])
        return ()

    return fetch_or_step


async def _records(message: Any) -> Any:
    """Hand the handler the raw records: parsing them is the contract's job (and a record
    that is not JSON must reach the rejection path, not fail in a decoder)."""
    return message.raw_message


async def cancel_all(tasks: Sequence[asyncio.Task[None]], every: float = 1.0) -> None:
    """Cancel `tasks` and wait until each has ended. A cancellation can be lost in a race
    (`asyncio.wait_for` on Python 3.11 drops one that meets its timeout): it is sent again
    every `every` seconds, so a stop never hangs on a task that missed it."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
    for task in tasks:  # retrieved: an error of a worker's own is logged where it happened
        if not task.cancelled():
            task.exception()


@dataclass(frozen=True, slots=True)
class StoreParts:
    """What works on one store of a service: its own, or one shard of it."""

    shard: int
    pool: asyncpg.Pool
    store: EventStore
    handler: BatchHandler
    reviser: Reviser
    projector: Projector
    relay: Relay
    anchorer: Anchorer | None


class ServiceRuntime:
    """A running service: its store, batch handler, relay and Kafka subscriber."""

    def __init__(self, spec: ServiceSpec, settings: ServiceSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.dsn = settings.database_url.get_secret_value()
        self.layout = Layout(spec.schema)  # as recorded in the store, read at start
        self.parts: list[StoreParts] = []  # each shard's (one store: one)
        self.consumer: BatchHandler | ShardedHandler | None = None  # what decides a batch
        # the first store's parts (the only ones, for a store in one piece)
        self.pool: asyncpg.Pool | None = None
        self.handler: BatchHandler | None = None
        self.relay: Relay | None = None
        self.reviser: Reviser | None = None  # works the revision tasks, a step at a time
        self.projector: Projector | None = None
        self.anchorer: Anchorer | None = None  # signs the store's head, when a key is set
        self._stalled_logged: set[str] = set()  # components whose stall was logged
        self.on_report: Callable[[BatchReport], None] = lambda report: None
        self.metrics = ServiceMetrics(spec.name)
        tracing.configure(settings, spec.name)
        self.broker = KafkaBroker(
            # FastStream takes a string as one address: a list of brokers must be split
            settings.kafka_bootstrap_servers.split(","),
            client_id=f"mandat-{spec.name}",
            graceful_timeout=30.0,
            # the handler gets raw records and parses them with the contract itself: a
            # breach must reach the rejection path, not fail in FastStream's validation
            apply_types=False,
            security=faststream_security(settings, role_of(spec.name)),
            middlewares=tracing.broker_middlewares(),
            # FastStream's own logger prints plain text to stdout: this one goes where every
            # other logger goes (JSON lines, mandat/adapters/runtime/logs.py)
            logger=logging.getLogger("faststream.access.kafka"),
        )
        self._subscribe()
        self._document_outputs()

    def _subscribe(self) -> None:
        self.subscriber = subscriber = self.broker.subscriber(
            *self.spec.inputs,
            group_id=self.spec.group_id,
            batch=True,
            max_records=self.settings.batch_max_records,
            batch_timeout_ms=100,
            # an idle input topic (the registry, most of the time) must not hold a fetch for
            # the busy one: aiokafka waits up to this long for data on the partitions it asks
            fetch_max_wait_ms=50,
            auto_offset_reset="earliest",
            # an upstream's aborted transaction is not an input
            isolation_level="read_committed",
            # offsets are committed after the store commit; on an unexpected error the batch
            # is sought back and redelivered (never ACK_FIRST, which is at-most-once)
            ack_policy=AckPolicy.NACK_ON_ERROR,
            parser=_parse_any_headers,
            decoder=_records,
            title=f"{self.spec.name}/inputs",
            description=f"Inputs of the {self.spec.name} service (contract v1).",
        )
        subscriber.get_msg = _stepping_over_undecodable(  # type: ignore[method-assign,assignment]
            subscriber.get_msg
        )

        @subscriber
        async def consume(documented: list[InboundEvent]) -> None:
            # The annotation is what AsyncAPI documents (the contract's inputs). With our
            # decoder and apply_types=False, FastStream hands over the raw records, which
            # the handler judges one by one: a breach must reach our rejection path.
            records = cast(Sequence[Record], documented)
            assert self.consumer is not None
            report = await self.consumer.handle(records)
            try:  # recorded: what follows must not send the batch back for redelivery
                if report.tasks_opened:
                    for part in self.parts:
                        part.reviser.wake.set()
                self.metrics.observe(report, records)
                self.on_report(report)
            except Exception:
                log.exception("after a recorded batch")

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
        """Readiness: PostgreSQL answers, Kafka answers, the store is folded; with lags
        (summed over the shards of a store in shards)."""
        state: dict[str, Any] = {"service": self.spec.name}
        heads: list[int] = []
        try:
            heads = [await part.store.head() for part in self.parts]
            head = sum(heads)
            state["postgres"] = bool(self.parts)
        except Exception:
            head, state["postgres"] = -1, False
        try:
            state["kafka"] = bool(await self.broker.ping(timeout=2.0))
        except Exception:
            state["kafka"] = False
        folded = self.consumer is not None  # started: its decision state is current
        state["store_head"] = head
        if self.layout.sharded:
            state["shards"] = self.layout.shards
        if self.parts and head >= 0:
            # the relays this instance leads (of a store in shards, others may lead some):
            # what they published, the head of those led elsewhere, so head - published
            # is this instance's lag
            state["relay_leader"] = any(part.relay.leader for part in self.parts)
            state["relay_published"] = sum(
                part.relay.published if part.relay.leader else shard_head
                for part, shard_head in zip(self.parts, heads, strict=True)
            )
        if folded:  # (None: a store did not answer)
            parked = [await parked_age(part.store) for part in self.parts]
            counts, ages = [n for n, _ in parked], [a for _, a in parked]
            state["parked"] = None if None in counts else sum(cast(list[int], counts))
            state["parked_oldest_seconds"] = None if None in ages else max(cast(list[float], ages))
            tasks = [await open_tasks(part.store) for part in self.parts]
            state["revision_tasks"] = None if None in tasks else sum(cast(list[int], tasks))
        stalled, reasons = self.stalls()
        state["stalled"], state["reasons"] = stalled, reasons
        state["ready"] = bool(state["postgres"] and state["kafka"] and folded and not reasons)
        return state

    def _consuming_ended(self) -> str | None:
        """Why the subscriber's consuming task ended, if it did while the service runs."""
        for task in getattr(self.subscriber, "tasks", ()):
            if task.done():
                error = None if task.cancelled() else task.exception()
                why = type(error).__name__ if error else "cancelled"
                return f"the consuming task ended ({why})"
        return None

    def stalls(self) -> tuple[dict[str, float], list[str]]:
        """How long each component has made no progress with work in hand (0 when it does),
        and why, for those stalled beyond `stall_after_seconds`: readiness tells the truth."""
        parts: dict[str, Any] = {}
        for part in self.parts or [None]:  # type: ignore[list-item]
            suffix = "" if part is None or not self.layout.sharded else f"[{part.shard}]"
            for name in ("handler", "reviser", "relay", "projector", "anchorer"):
                label = "consumer" if name == "handler" else name
                parts[label + suffix] = getattr(part, name, None)
        stalled = {k: part.stalled_seconds() if part else 0.0 for k, part in parts.items()}
        reasons = {k: part.stall_reason if part else None for k, part in parts.items()}
        limit = self.settings.stall_after_seconds
        ended = self._consuming_ended()
        if ended is not None:  # nothing will consume again: not ready, whatever the time
            stalled["consumer"] = max(stalled.get("consumer", 0.0), limit + 1)
            reasons["consumer"] = ended
        why = {
            name: f"{name} stalled for {seconds:.0f}s: {reasons[name] or 'no progress, no error'}"
            for name, seconds in stalled.items()
            if seconds > limit
        }
        for name, seconds in stalled.items():
            self.metrics.stalled.labels(component=name).set(seconds)
        for name in sorted(why.keys() - self._stalled_logged):  # once as it starts, not
            log.error("%s: %s", self.spec.name, why[name])
        for name in sorted(self._stalled_logged - why.keys()):  # at every probe
            log.warning("%s: %s progresses again", self.spec.name, name)
        self._stalled_logged = set(why)
        return {k: round(v, 3) for k, v in stalled.items()}, list(why.values())

    def refresh_gauges(self, state: dict[str, Any]) -> None:
        if state.get("store_head", -1) >= 0:
            self.metrics.store_head.set(state["store_head"])
            if state.get("relay_leader"):
                self.metrics.relay_lag.set(state["store_head"] - state["relay_published"])
        if state.get("parked") is not None:  # (None: the store did not answer)
            self.metrics.parked.set(state["parked"])
        if state.get("revision_tasks") is not None:
            self.metrics.revision_tasks.set(state["revision_tasks"])
        if state.get("parked_oldest_seconds") is not None:
            self.metrics.parked_oldest.set(state["parked_oldest_seconds"])
        self.metrics.ready.set(1 if state.get("ready") else 0)
        refused = self.anchorer is not None and self.anchorer.refused is not None
        self.metrics.chain_check_failed.labels(check="anchorer").set(1 if refused else 0)

    async def connect_relay(self, schema: str | None = None) -> asyncpg.Connection:
        """A connection of the service's own, seeing `schema` (the service's) first."""
        user, password = self.settings.login(self.spec.name)
        return await asyncpg.connect(
            self.dsn,
            user=user,
            password=password,
            server_settings={"search_path": schema or self.spec.schema},
        )

    async def start(self) -> None:
        """Prepare everything the subscriber needs before it consumes."""
        s = self.settings
        # the service never migrates (nor could: its role owns nothing); the owner does, with
        # `mandat migrate`, before the service starts
        conn = await self.connect_relay()
        try:
            await check_migrated(conn)
            self.layout = await read_layout(conn, self.spec.schema)
            for shard in self.layout.schemas:
                if shard != self.spec.schema:
                    await conn.execute(f'SET search_path TO "{shard}"')
                    await check_migrated(conn)
        finally:
            await conn.close()
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
            # with ACLs the service may not create topics: the admin provisioned them
            client_options=client_options(s, role_of(self.spec.name)),
            create=not secured(s),
        )
        for number, schema in enumerate(self.layout.schemas):
            self.parts.append(await self._store_parts(number, schema))
        first = self.parts[0]
        self.pool, self.handler, self.relay = first.pool, first.handler, first.relay
        self.reviser, self.projector, self.anchorer = first.reviser, first.projector, first.anchorer
        if self.layout.sharded:
            self.consumer = ShardedHandler([part.handler for part in self.parts])
        else:
            self.consumer = first.handler

    async def _store_parts(self, shard: int, schema: str) -> StoreParts:
        """The pool, batch handler (caught up), reviser, projector, anchorer and relay of
        one store: the service's, or one of its shards."""
        s = self.settings
        sharded = self.layout.sharded
        pool = await create_pool(
            self.dsn,
            schema,
            # a shard's batch is a part of the batch: its pool serves it and its workers
            max_size=s.pool_size if not sharded else 2,
            login=s.login(self.spec.name),
        )
        claims = (f'"{self.spec.schema}".claims', shard) if sharded else None
        store = EventStore(pool, schema, claims=claims)
        handler = BatchHandler(store, self.spec.new_processor, self.spec.inputs)
        head = await handler.catch_up()
        reviser = Reviser(handler, step_seconds=STEP_SECONDS)
        reviser.on_step = lambda report: self.metrics.observe(report, ())
        log.info("%s: decision state of %s current at position %d", self.spec.name, schema, head)
        # the balances operations and auditors read (services/adapters/eventstore/projections.py)
        from services.adapters.eventstore.projections import PROJECTIONS_OF, Projector

        projector = Projector(store, projections=PROJECTIONS_OF[self.spec.name])
        anchorer = None
        if s.anchor_key_file:  # signed anchors of the store, outside the database
            from services.adapters.trust.anchorer import Anchorer

            anchorer = Anchorer.from_settings(
                store,
                self.spec.name,
                s,
                connect=lambda: self.connect_relay(schema),
                client_options=client_options(s, role_of(self.spec.name)),
            )
        relay = Relay(
            store,
            lambda: self.connect_relay(schema),
            tracing.TracedRoutes(self.spec.routes),
            s.kafka_bootstrap_servers,
            name=self.spec.name,
            max_request_size=rejection_max_message_bytes(s.topic_max_message_bytes),
            client_options=client_options(s, role_of(self.spec.name)),
            around_publish=tracing.relay_publishing(store),
            shard=shard if sharded else None,
        )
        return StoreParts(shard, pool, store, handler, reviser, projector, relay, anchorer)

    async def close(self) -> None:
        for part in self.parts:
            await part.pool.close()

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        await self.start()
        tasks = []
        for part in self.parts:
            where = self.spec.name if not self.layout.sharded else f"{self.spec.name}-{part.shard}"
            tasks += [
                asyncio.create_task(part.reviser.run(), name=f"reviser-{where}"),
                asyncio.create_task(part.relay.run(), name=f"relay-{where}"),
                asyncio.create_task(part.projector.run(), name=f"projector-{where}"),
            ]
            if part.anchorer is not None:
                tasks.append(asyncio.create_task(part.anchorer.run(), name=f"anchorer-{where}"))
        try:
            yield
        finally:
            await cancel_all(tasks)
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
