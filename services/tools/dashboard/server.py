"""The dashboard server: a Kafka reader (no consumer group) feeding a `Board`, a lag probe,
and a Starlette app serving the page, a JSON snapshot and a Server-Sent Events stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CorruptRecordException, KafkaError, UnsupportedCodecError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.adapters.kafka.security import client_options, secured
from services.adapters.kafka.topics import ensure_topics
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog
from services.tools.dashboard.board import Board
from services.tools.dashboard.lag import LagProbe
from services.tools.dashboard.shown import render_json, shown

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PUSH_EVERY = 0.5
"""Seconds between two pushes to a browser (at most; nothing is sent when nothing changed)."""
KEEPALIVE_EVERY = 15.0
LAG_EVERY = 2.0
STEP_RECORDS = 1000
"""Records read one by one per partition after an undecodable one, before going faster."""


def undecodable(exc: BaseException) -> bool:
    """Whether a read failed on what a record holds rather than on the way to Kafka: the
    client raises its own errors for the network and the broker, and anything else (such
    as UnicodeDecodeError on a header name) while decoding records; a corrupt batch or one
    compressed with a codec this process lacks fails the same way every time."""
    if isinstance(exc, CorruptRecordException | UnsupportedCodecError):
        return True
    return not isinstance(exc, KafkaError | asyncio.CancelledError | OSError | TimeoutError)


class Dashboard:
    """The live state: what was read from the four topics, and the last measured lags."""

    def __init__(
        self, settings: ServiceSettings, *, from_now: bool = False, http_host: str | None = None
    ) -> None:
        self.settings = settings
        self.from_now = from_now
        self.board = Board()
        self.probe = LagProbe(settings, http_host)
        self.lags: dict[str, dict[str, Any]] = {}
        self.lag_version = 0
        self.kafka_connected = False
        self.kafka_error: str | None = None
        self.positions: dict[TopicPartition, int] = {}  # next offset to read, per partition
        self.records_read = 0
        self.reader_failures = 0
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        self.exiting: Callable[[], bool] = lambda: False  # the HTTP server is shutting down
        self.subscribed = asyncio.Event()
        s = settings
        self.roles = {
            s.topic(getattr(service, f"{role}s_topic")): (name, role)
            for name, service in catalog.SERVICES.items()
            for role in ("decision", "rejection")
        }

    @property
    def version(self) -> tuple[int, int, bool]:
        return self.board.version, self.lag_version, self.kafka_connected

    def snapshot(self) -> dict[str, Any]:
        state = self.board.snapshot()
        for name, service in state["services"].items():
            service["lag"] = self.lags.get(name)
        s = self.settings
        state["kafka"] = {
            "bootstrap": s.kafka_bootstrap_servers,
            "connected": self.kafka_connected,
            "error": self.kafka_error,
            "from_now": self.from_now,
            "records_read": self.records_read,
            "reader_failures": self.reader_failures,
        }
        state["topics"] = {
            topic: {"service": service, "role": role}
            for topic, (service, role) in self.roles.items()
        }
        state["generated_at"] = time.time()
        return state

    # -- background tasks ---------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Dashboard]:
        tasks = [
            asyncio.create_task(self._read(), name="dashboard-reader"),
            asyncio.create_task(self._measure(), name="dashboard-lag"),
        ]
        try:
            yield self
        finally:
            self.stopping.set()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read(self) -> None:
        """Read the four topics forever; after a failure, reconnect and go on from where
        the reader was (never from the beginning again)."""
        delay = 1.0
        while True:
            read_before = self.records_read
            try:
                await self._read_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # shown on the page, then retried
                if self.records_read > read_before:
                    delay = 1.0  # it was working: this is a new failure, not the same one
                self.kafka_connected = False
                self.kafka_error = shown(f"{type(exc).__name__}: {exc}")
                self.reader_failures += 1
                log.warning("dashboard reader: %s (retrying in %.0f s)", self.kafka_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _read_once(self) -> None:
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers,
            list(self.roles),
            partitions=s.topic_partitions,
            replication_factor=s.topic_replication_factor,
            retention_ms=s.topic_retention_ms,
            client_options=client_options(s, "reader"),
            create=not secured(s),  # a reader creates nothing: the admin provisioned them
        )
        consumer = AIOKafkaConsumer(
            *self.roles,
            bootstrap_servers=s.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            metadata_max_age_ms=10_000,
            auto_offset_reset="latest" if self.from_now else "earliest",
            isolation_level="read_committed",
            client_id="mandat-dashboard",
            **client_options(s, "reader"),
        )
        await consumer.start()
        try:
            self.kafka_connected, self.kafka_error = True, None
            resumed: set[TopicPartition] = set()
            while True:
                await self._resume(consumer, resumed)
                try:
                    batches = await consumer.getmany(timeout_ms=500, max_records=5000)
                except Exception as exc:
                    if not undecodable(exc):
                        raise
                    await self._step_over(consumer, exc)
                    continue
                if consumer.assignment():
                    self.subscribed.set()
                for tp, records in batches.items():
                    self._take(tp, records)
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _resume(self, consumer: AIOKafkaConsumer, resumed: set[TopicPartition]) -> None:
        """Put each newly assigned partition back where this dashboard left it, unless its
        log is now shorter than that (the topic was recreated: it is read anew); note
        where a partition never read before starts."""
        new = [tp for tp in consumer.assignment() if tp not in resumed]
        if not new:
            return
        known = [tp for tp in new if tp in self.positions]
        ends = await consumer.end_offsets(known) if known else {}
        for tp in known:
            if self.positions[tp] <= ends[tp]:
                consumer.seek(tp, self.positions[tp])
            else:
                del self.positions[tp]
        for tp in new:
            if tp not in self.positions:
                self.positions[tp] = await consumer.position(tp)
        resumed.update(new)

    def _take(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        """Feed the board the records it has not read yet, and remember the position."""
        service, role = self.roles[tp.topic]
        for r in records:
            if r.offset < self.positions.get(tp, 0):
                continue  # read before a reconnection
            self.board.ingest(service, role, r.value, r.headers, r.timestamp)
            self.positions[tp] = r.offset + 1
            self.records_read += 1

    async def _step_over(self, consumer: AIOKafkaConsumer, exc: Exception) -> None:
        """A record the Kafka client cannot even decode (a header name that is not UTF-8,
        a corrupt batch) fails every read at the same place, and the client silently
        drops the records decoded before it in the same read. So read each partition
        again one record at a time from where the board is: feed what decodes, count
        what does not as unreadable and step over it (at most STEP_RECORDS per partition
        per call; the next failure comes back here). The client decodes a whole producer
        batch from its start, so records after an undecodable one in the same batch are
        counted as unreadable too: the reader goes on, it does not guess."""
        log.warning(
            "dashboard reader: undecodable record (%s): stepping over it",
            shown(f"{type(exc).__name__}: {exc}"),
        )
        for tp in sorted(consumer.assignment()):
            if tp not in self.positions:  # assigned during the failed read
                self.positions[tp] = await consumer.position(tp)
            consumer.seek(tp, self.positions[tp])
            for _ in range(STEP_RECORDS):
                try:
                    got = await consumer.getmany(tp, timeout_ms=1000, max_records=1)
                except Exception as error:
                    if not undecodable(error):
                        raise
                    self._skip(consumer, tp)
                    continue
                if not got:
                    break
                self._take(tp, got[tp])

    def _skip(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        service, _ = self.roles[tp.topic]
        self.board.count_unreadable(service)
        self.positions[tp] += 1
        self.records_read += 1
        consumer.seek(tp, self.positions[tp])

    async def _measure(self) -> None:
        """Measure the lags every LAG_EVERY seconds (reconnecting the probe if needed)."""
        connected = False
        while True:
            try:
                if not connected:
                    await self.probe.start()
                    connected = True
                self.lags = await self.probe.measure()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # retried
                log.debug("lag probe failed: %s", exc)
                await self.probe.close()
                connected = False
                self.lags = {}
            self.lag_version += 1
            try:
                await asyncio.sleep(LAG_EVERY)
            except asyncio.CancelledError:
                await self.probe.close()
                raise

    # -- HTTP ---------------------------------------------------------------------------

    async def stream(self) -> AsyncIterator[str]:
        """Server-Sent Events: the whole snapshot each time something changed."""
        yield "retry: 2000\n\n"
        sent: tuple[int, int, bool] | None = None
        quiet_since = time.monotonic()
        while not (self.stopping.is_set() or self.exiting()):
            if self.version != sent:
                sent = self.version
                quiet_since = time.monotonic()
                data = render_json(self.snapshot())
                yield f"event: state\ndata: {data}\n\n"
            elif time.monotonic() - quiet_since > KEEPALIVE_EVERY:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), PUSH_EVERY)


def build_app(dashboard: Dashboard) -> Starlette:
    async def index(request: Request) -> Response:
        return FileResponse(
            STATIC / "index.html",
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-cache"},
        )

    async def state(request: Request) -> Response:
        return Response(render_json(dashboard.snapshot()), media_type="application/json")

    async def events(request: Request) -> Response:
        return StreamingResponse(
            dashboard.stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "kafka": dashboard.kafka_connected})

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/state", state),
            Route("/events", events),
            Route("/health", health),
        ]
    )


async def serve_dashboard(
    settings: ServiceSettings,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    from_now: bool = False,
    ready_event: asyncio.Event | None = None,
) -> None:
    """Serve the dashboard on http://host:port until cancelled (or SIGINT/SIGTERM).

    `ready_event` is set once the page is served and the topics are being read."""
    port = settings.dashboard_http_port if port is None else port
    dashboard = Dashboard(settings, from_now=from_now)
    config = uvicorn.Config(
        build_app(dashboard),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    # open event streams must end when the server shuts down: it waits for its connections
    dashboard.exiting = lambda: server.should_exit
    async with dashboard.running():
        serving = asyncio.create_task(server.serve(), name="dashboard-http")
        try:
            while not server.started:
                if serving.done():
                    await serving
                    raise RuntimeError(f"the dashboard could not listen on {host}:{port}")
                await asyncio.sleep(0.05)
            if ready_event is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dashboard.subscribed.wait(), 15)
                ready_event.set()
            log.info("dashboard on http://%s:%d/", host, port)
            await asyncio.shield(serving)
        finally:
            dashboard.stopping.set()
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving
