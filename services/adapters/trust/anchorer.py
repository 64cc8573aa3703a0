"""The anchorer: signs the store's head and Merkle tree head at a fixed cadence and publishes
them to the anchors topic, from the service's process (the key never reaches the database).

Cadence: an anchor every `every_events` new rows or every `every_seconds`, whichever comes
first, and only when the head moved. The tree is kept incrementally: its frontier (O(log n)
hashes) is extended with the chain hashes of the new rows only, one indexed read each; on
start it resumes from the frontier its last anchor carries, so the whole store is read once
in the store's life (when no anchor exists yet), never at every anchor nor at every start.

It never signs over a store that contradicts what it signed: before each anchor it checks
that the store still holds the row it last anchored, with the same chain hash, and that the
head did not go below it. A contradiction (a rewrite with recomputed hashes, a truncation,
positions reused after one) stops it for good, with the reason in `stall_reason`
(readiness turns 503), until someone who understands why restarts it.

One anchorer per store signs at a time when `connect` is given (a PostgreSQL session lock,
as the relay's); without it, every instance anchors (harmless: anchors of one store agree).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.leases import still_connected, try_lead
from services.adapters.eventstore.store import utc_now
from services.adapters.kafka.topics import ensure_topics
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.trust.anchors import Anchor, last_anchor, sign
from services.adapters.trust.merkle import Frontier
from services.adapters.trust.signing import KeyFileError, load_private_key
from services.adapters.trust.storetree import chain_hashes
from services.domain.kernel.records import GENESIS_HASH

log = logging.getLogger(__name__)

ANCHORS_TOPIC = "rsi.audit.ancrages.v1"


class AnchorRefused(Exception):
    """The store contradicts what the anchorer signed: it will not sign again."""


@dataclass(eq=False, repr=False)
class Anchorer:
    """Anchors one service's store. `run()` is its task; `anchor_now()` anchors at once."""

    store: EventStore
    _: KW_ONLY
    service: str
    key: Ed25519PrivateKey
    bootstrap_servers: str
    topic: str = ANCHORS_TOPIC
    every_events: int = 1000
    every_seconds: float = 10.0
    client_options: Mapping[str, Any] | None = None  # copied: a login (kafka/security.py)
    replication_factor: int = 1
    connect: Callable[[], Awaitable[asyncpg.Connection]] | None = None
    poll_seconds: float = 0.5
    batch: int = 50_000
    clock: Callable[[], datetime] = utc_now
    lock_key: int = field(init=False)
    leader: bool = field(init=False, default=False)
    last: Anchor | None = field(init=False, default=None)  # the last anchor this store has
    stall_reason: str | None = field(init=False, default=None)
    refused: str | None = field(init=False, default=None)
    _failing_since: float | None = field(init=False, default=None)
    _frontier: Frontier | None = field(init=False, default=None)  # None: to resume from the topic
    _head_hash: bytes = field(init=False, default=GENESIS_HASH)  # the frontier's last leaf's
    _producer: AIOKafkaProducer | None = field(init=False, default=None)
    _topic_ready: bool = field(init=False, default=False)
    _since: float = field(init=False, default_factory=time.monotonic)  # the last anchor (or start)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)  # one anchor at a time

    def __post_init__(self) -> None:
        if self.every_events < 1 or self.every_seconds <= 0:
            raise ValueError("the cadence must be at least one event and some time")
        self.client_options = dict(self.client_options or {})
        self.lock_key = zlib.crc32(f"mandat-anchorer:{self.store.schema}:{self.service}".encode())

    @classmethod
    def from_settings(
        cls, store: EventStore, service: str, settings: ServiceSettings, **options: Any
    ) -> Anchorer:
        """The anchorer the settings describe: key file, cadence, topic, Kafka, replication
        (`options` override or add constructor arguments, e.g. `connect`)."""
        if not settings.anchor_key_file:
            raise KeyFileError("no anchor key file (MANDAT_ANCHOR_KEY_FILE)")
        arguments: dict[str, Any] = {
            "service": service,
            "key": load_private_key(settings.anchor_key_file),
            "bootstrap_servers": settings.kafka_bootstrap_servers,
            "topic": settings.topic_audit_anchors,
            "every_events": settings.anchor_every_events,
            "every_seconds": settings.anchor_every_seconds,
            "replication_factor": settings.topic_replication_factor,
        }
        return cls(store, **(arguments | options))

    @property
    def anchored(self) -> int:
        """The size of the last anchor (0 when none)."""
        return self.last.size if self.last is not None else 0

    def stalled_seconds(self) -> float:
        """How long it has been unable to anchor what is due (0.0 when it can)."""
        if self._failing_since is None or self.stall_reason is None:
            return 0.0
        return time.monotonic() - self._failing_since

    # --- the task ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Anchor at the cadence until cancelled; failures are retried, a refusal is final."""
        backoff = 0.2
        try:
            while True:
                conn: asyncpg.Connection | None = None
                try:
                    if self.refused is not None:
                        await asyncio.sleep(3600)
                        continue
                    if self.connect is not None:
                        conn = await self.connect()
                        if not await try_lead(conn, self.lock_key):
                            await asyncio.sleep(max(self.poll_seconds, 1.0))
                            continue
                    self.leader = True
                    self._frontier = None  # another instance may have anchored meanwhile
                    await self._lead(conn)
                except asyncio.CancelledError:
                    raise
                except AnchorRefused as exc:
                    self._refuse(str(exc))
                except Exception as exc:
                    self._failed(exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                finally:
                    self.leader = False
                    if conn is not None:
                        await _close(conn)
        finally:
            await self.close()

    async def _lead(self, conn: asyncpg.Connection | None) -> None:
        await self._resume()
        while True:
            if conn is not None:
                await still_connected(conn)  # still holding the lock
            if await self._due():
                await self.anchor_now()
                self._failing_since, self.stall_reason = None, None
            await asyncio.sleep(self.poll_seconds)

    async def _due(self) -> bool:
        moved = await self.store.head() - self.anchored
        if moved <= 0:
            return False
        return moved >= self.every_events or time.monotonic() - self._since >= self.every_seconds

    def _failed(self, exc: Exception) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        self.stall_reason = f"{type(exc).__name__}: {str(exc)[:200]}"
        log.warning("anchorer %s: %s", self.service, self.stall_reason)

    def _refuse(self, reason: str) -> None:
        self.refused = reason
        self.stall_reason = f"refuses to anchor: {reason}"
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        log.error("anchorer %s (schema %s) %s", self.service, self.store.schema, self.stall_reason)

    # --- one anchor -------------------------------------------------------------------------

    async def anchor_now(self) -> Anchor | None:
        """Sign and publish an anchor of the store as it is now; None when its head did not
        move since the last anchor. Raises `AnchorRefused` when the store contradicts what
        was signed (and refuses for good)."""
        async with self._lock:
            return await self._anchor()

    async def _anchor(self) -> Anchor | None:
        if self.refused is not None:
            raise AnchorRefused(self.refused)
        try:
            frontier = await self._resume()
            await self._extend(frontier)
        except AnchorRefused as exc:
            self._refuse(str(exc))
            raise
        if frontier.size <= self.anchored:
            return None
        anchor = sign(
            self.key,
            service=self.service,
            schema=self.store.schema,
            frontier=frontier,
            chain_hash=self._head_hash,
            anchored_at=self.clock(),
        )
        producer = await self._open_producer()
        await producer.send_and_wait(self.topic, anchor.to_bytes(), key=self.service.encode())
        self.last, self._since = anchor, time.monotonic()
        log.info("anchorer %s: anchored size %d", self.service, anchor.size)
        return anchor

    async def _resume(self) -> Frontier:
        """The frontier to extend: kept in memory, else resumed from the last anchor on the
        topic after checking that the store still holds what it signed, else empty."""
        if self._frontier is not None:
            return self._frontier
        await self._ensure_topic()
        last = await last_anchor(
            self.bootstrap_servers,
            self.topic,
            service=self.service,
            schema=self.store.schema,
            keys=[self.key.public_key()],
            client_options=self.client_options,
        )
        frontier, head_hash = Frontier(), GENESIS_HASH
        if last is not None:
            await self._still_holds(last.size, last.chain_hash, f"the {last.describe()}")
            frontier, head_hash = Frontier.resume(last.size, last.frontier), last.chain_hash
        self._frontier, self._head_hash, self.last = frontier, head_hash, last
        return frontier

    async def _still_holds(self, size: int, chain_hash: bytes, what: str) -> None:
        """Refuse unless the row at `size` is there with the chain hash it had in `what`."""
        stored = await self.store.hash_at(size)
        if stored is None:
            head = await self.store.head()
            raise AnchorRefused(f"the store ends at #{head}, below {what}: its tail was deleted")
        if bytes(stored) != chain_hash:
            raise AnchorRefused(
                f"row #{size} no longer has the chain hash of {what}: the "
                "record was rewritten, or its positions reused"
            )

    async def _extend(self, frontier: Frontier) -> None:
        """Fold the rows after the frontier into it (their chain hashes), having checked
        that the store still holds its last leaf."""
        if frontier.size:
            await self._still_holds(
                frontier.size,
                self._head_hash,
                f"the tree the anchorer folded up to #{frontier.size}",
            )
        async for position, digest in chain_hashes(self.store, frontier.size, batch=self.batch):
            if position != frontier.size + 1:
                raise AnchorRefused(f"position #{frontier.size + 1} is missing from the store")
            self._head_hash = digest
            frontier.push_data(digest)

    async def _ensure_topic(self) -> None:
        if not self._topic_ready:
            await ensure_topics(
                self.bootstrap_servers,
                [self.topic],
                partitions=1,
                replication_factor=self.replication_factor,
                retention_ms=-1,
                client_options=self.client_options,
                create=not self.client_options,  # a login: the admin provisioned it
            )
            self._topic_ready = True

    async def _open_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                enable_idempotence=True,
                acks="all",
                client_id=f"anchorer-{self.service}",
                **(self.client_options or {}),
            )
            await producer.start()
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        """Stop the producer (the task does it when cancelled)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def __aenter__(self) -> Anchorer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()


async def _close(conn: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(conn.close(), 5)
    except Exception:
        conn.terminate()
