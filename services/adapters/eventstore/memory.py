"""The event store in memory, behind the same protocol as the PostgreSQL one (`port.Store`).

For tests of what sits on the store (the batch handler, the readers) without a database, and
held to the same behavioural suite as the real store. It keeps the real store's promises the
way the real store keeps them:

- writes are serialised (an asyncio lock stands for the advisory lock), and a transaction
  reads what is committed, then appends after it;
- the rows of a transaction are checked at commit as the table's constraints check them
  (an event id once, a stream version once, no NUL character in text, which PostgreSQL
  refuses): a refusal, or an error raised inside the block, commits nothing;
- each row is hashed from the canonical JSON of its content, and its payload and metadata
  are kept as that JSON decoded again (what PostgreSQL hands back), so the chain hashes are
  the ones the PostgreSQL store computes for the same rows at the same times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

import orjson

from services.adapters.eventstore.errors import ConcurrencyError, DuplicateEventError, StoreError
from services.adapters.eventstore.port import Store
from services.adapters.eventstore.store import (
    NEVER,
    ChainReport,
    EventStore,
    check_chain,
    utc_now,
)
from services.domain.kernel.records import (
    GENESIS_HASH,
    NewEvent,
    StoredEvent,
    chained,
)
from services.domain.kernel.tasks import Starts
from services.domain.state import Change, Demand, Entry, Row


def _has_nul(value: object) -> bool:
    """Whether a JSON value holds the NUL character in a string or a key (PostgreSQL's text
    and jsonb refuse it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


class RefusedValueError(StoreError):
    """A value the PostgreSQL store would refuse too (there: `UntranslatableCharacterError`,
    SQLSTATE 22P05): a record's doing, not a dependency's."""


class MemoryTransaction:
    """A write transaction on a `MemoryEventStore` (see `port.Transaction`)."""

    def __init__(self, store: MemoryEventStore) -> None:
        self._store = store
        events = store.events
        self._position = len(events)
        self._hash = events[-1].hash if events else GENESIS_HASH
        self._versions: dict[str, int] = {}
        self.rows: list[StoredEvent] = []
        self.refused: str | None = None  # why the commit will fail, known at append
        self.claimed: dict[str, int] = {}  # ids claimed, kept at commit
        self.state = dict(store.state)  # written back at commit, like the events
        self.state_at = store.state_at
        self.state_hash = store.state_hash
        self.state_version = store.state_version
        self.revisions_start = store.revisions_start
        self.steps_start = store.steps_start

    @property
    def head_position(self) -> int:
        return self._position

    async def read_since(self, position: int, limit: int | None = None) -> list[StoredEvent]:
        found = self._store.events[max(position, 0) :]
        return found if limit is None else found[:limit]

    def appended(self) -> list[tuple[UUID, str]]:
        return [(row.event_id, row.event_type) for row in self.rows]

    async def holders(self, keys: Sequence[str]) -> dict[str, int]:
        place = self._store.claims
        if place is None:
            return {}
        return {k: place[0][k] for k in keys if k in place[0]}

    async def claim(self, keys: Sequence[str]) -> dict[str, int]:
        place = self._store.claims
        if place is None:
            return {}
        for key in keys:
            self.claimed.setdefault(key, place[1])
        return {k: v for k, v in (await self.holders(keys)).items() if v != place[1]}

    async def stored_events(self, event_ids: Iterable[UUID]) -> dict[UUID, StoredEvent]:
        by_id = self._store.by_id
        return {i: by_id[i] for i in event_ids if i in by_id}

    async def stream_version(self, stream_id: str) -> int:
        if stream_id not in self._versions:
            self._versions[stream_id] = self._store.versions.get(stream_id, 0)
        return self._versions[stream_id]

    async def stream_versions(self, stream_ids: Iterable[str]) -> dict[str, int]:
        return {s: v for s in stream_ids if (v := await self.stream_version(s))}

    async def state_position(self) -> int:
        return self.state_at

    async def set_state_version(self, version: int) -> None:
        self.state_version = version

    async def state_anchor(self) -> tuple[int, bool, int]:
        at = self.state_at
        events = self._store.events
        # this transaction's own save counts (its rows are not committed yet)
        mine = {row.position: row.hash for row in self.rows}
        held = mine.get(at) or (events[at - 1].hash if 0 < at <= len(events) else None)
        same = at == 0 or (held is not None and held == self.state_hash)
        return at, same, self.state_version

    async def load(self, demand: Demand) -> tuple[list[Row], dict[str, int]]:
        return await self.load_state(demand), await self.stream_versions(demand.streams)

    async def load_state(self, demand: Demand) -> list[Row]:
        rows = [
            Row(kind, key, self.state[(kind, key)])
            for kind, keys in demand.keys.items()
            for key in keys
            if (kind, key) in self.state
        ]
        for (kind, key), entry in self.state.items():
            tag = entry.tag
            if tag is None:
                continue
            if tag in demand.tags.get(kind, ()) or tag.startswith(
                tuple(demand.prefixes.get(kind, ()))
            ):
                rows.append(Row(kind, key, entry))
        return rows

    async def state_span(self, kind: str, tag: str, after: str, limit: int) -> list[Row]:
        low = tag + after
        found = sorted(
            (key, entry)
            for (k, key), entry in self.state.items()
            if k == kind and entry.tag == tag and key > low
        )
        return [Row(kind, key, entry) for key, entry in found[:limit]]

    async def state_firsts(self, kind: str, tags: Sequence[str]) -> list[Row]:
        return [row for tag in tags for row in await self.state_span(kind, tag, "", 1)]

    async def start_revisions(self) -> Starts:
        if self.revisions_start is None:  # committed with the transaction, or not at all
            self.revisions_start = self._position + 1
        if self.steps_start is None:
            self.steps_start = self._position + 1
        return Starts(self.revisions_start, self.steps_start, *self._store.space)

    async def reset_state(self) -> None:
        self.state, self.state_at, self.state_hash = {}, 0, None

    async def save_state(self, changes: Sequence[Change], position: int) -> None:
        for change in changes:
            if _has_nul([change.key, change.entry.doc if change.entry else None]):
                self.refused = f"{change.kind}: a NUL character in JSON text"
            if change.entry is None:
                self.state.pop((change.kind, change.key), None)
            else:  # kept as PostgreSQL hands it back: JSON decoded again
                doc = orjson.loads(orjson.dumps(change.entry.doc))
                self.state[(change.kind, change.key)] = Entry(
                    doc, change.entry.tag, change.entry.ordinal
                )
        self.state_at = position
        self.state_hash = self._hash if position == self._position else self._committed(position)

    def _committed(self, position: int) -> bytes | None:
        events = self._store.events
        return events[position - 1].hash if 0 < position <= len(events) else None

    def append_at(self, stream_id: str, stream_version: int, event: NewEvent) -> int:
        """Append one event at a version the caller knows to be next; the commit refuses a
        wrong guess. Returns the position it takes."""
        self._position += 1
        recorded_at = self._store.clock()
        payload_json, metadata_json, self._hash = chained(
            self._hash, self._position, stream_id, stream_version, event, recorded_at
        )
        if _has_nul([stream_id, event.event_type, event.payload, event.metadata]):
            self.refused = f"{event.event_type}: a NUL character in JSON text"
        self.rows.append(
            StoredEvent(
                position=self._position,
                stream_id=stream_id,
                stream_version=stream_version,
                event_id=event.event_id,
                event_type=event.event_type,
                schema_version=event.schema_version,
                payload=orjson.loads(payload_json),
                metadata=orjson.loads(metadata_json),
                recorded_at=recorded_at.astimezone(UTC),
                hash=self._hash,
            )
        )
        self._versions[stream_id] = stream_version
        return self._position


class MemoryEventStore:
    """An append-only, hash-chained event store held in a list (see `port.Store`)."""

    def __init__(
        self,
        schema: str = "memory",
        *,
        clock: Callable[[], datetime] = utc_now,
        claims: tuple[dict[str, int], int] | None = None,
    ) -> None:
        self.schema = schema
        self.claims = claims  # the ids unique across shards (shared by the shards), and ours
        self.clock = clock
        self.events: list[StoredEvent] = []  # committed, events[i].position == i + 1
        self.by_id: dict[UUID, StoredEvent] = {}
        self.versions: dict[str, int] = {}
        self._keys: set[tuple[str, int]] = set()
        self._lock = asyncio.Lock()
        self.state: dict[tuple[str, str], Entry] = {}  # decision state by (kind, key)
        self.state_at = 0  # the position it is the fold of
        self.state_hash: bytes | None = None  # the chain hash of the event there
        self.state_version = 0  # the version of the fold that wrote it
        self.revisions_start: int | None = None  # facts revise decisions from there
        self.steps_start: int | None = None  # ... an organism's people in steps from there
        self.space: tuple[str, int] = ("", 1)  # a shard's decision ids: namespace, from

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        """A serialised write transaction; its appends are committed when the block exits
        without an error, and only if every row passes the table's constraints."""
        async with self._lock:
            tx = MemoryTransaction(self)
            yield tx
            if tx.refused is not None:
                raise RefusedValueError(tx.refused)
            self._commit(tx.rows)
            if self.claims is not None:
                held = self.claims[0]
                for key, shard in tx.claimed.items():
                    held.setdefault(key, shard)
            self.state, self.state_at, self.state_hash = tx.state, tx.state_at, tx.state_hash
            self.revisions_start, self.steps_start = tx.revisions_start, tx.steps_start
            self.state_version = tx.state_version

    def _commit(self, rows: Sequence[StoredEvent]) -> None:
        """Check `rows` as the table's unique constraints would, then keep them all."""
        ids: set[UUID] = set()
        keys: set[tuple[str, int]] = set()
        for row in rows:
            key = (row.stream_id, row.stream_version)
            if row.stream_version < 1 or key in self._keys or key in keys:
                raise ConcurrencyError(row.stream_id, row.stream_version - 1)
            if row.event_id in self.by_id or row.event_id in ids:
                raise DuplicateEventError(f"event id {row.event_id} is already stored")
            ids.add(row.event_id)
            keys.add(key)
        for row in rows:
            self.events.append(row)
            self.by_id[row.event_id] = row
            self._keys.add((row.stream_id, row.stream_version))
            self.versions[row.stream_id] = max(
                self.versions.get(row.stream_id, 0), row.stream_version
            )

    async def ping(self, timeout: float = 5.0) -> bool:
        return True

    async def tagged_summary(self, kind: str) -> tuple[int, str | None]:
        tagged = sorted(
            (e.ordinal, key)
            for (k, key), e in self.state.items()
            if k == kind and e.tag is not None
        )
        return len(tagged), tagged[0][1] if tagged else None

    async def revisions_from(self) -> Starts:
        return Starts(
            NEVER if self.revisions_start is None else self.revisions_start,
            NEVER if self.steps_start is None else self.steps_start,
            *self.space,
        )

    async def head(self) -> int:
        return len(self.events)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        found = [
            e for e in self.events if e.stream_id == stream_id and e.stream_version > after_version
        ]
        return sorted(found, key=lambda e: e.stream_version)

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        return self.events[max(after, 0) : max(after, 0) + limit]

    async def read_types(
        self, after: int, event_types: Iterable[str], limit: int = 1000
    ) -> tuple[list[StoredEvent], int]:
        wanted = set(event_types)
        found = [e for e in self.events[max(after, 0) :] if e.event_type in wanted][:limit]
        if len(found) == limit:
            return found, found[-1].position
        return found, max(len(self.events), after)

    async def iter_all(
        self, after: int = 0, *, batch: int = 5000, until: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        for event in self.events[max(after, 0) :]:
            if until is not None and event.position > until:
                return
            yield event

    async def verify_chain(self, *, batch: int = 5000) -> ChainReport:
        return await check_chain(self.iter_all(0, batch=batch))

    async def hash_at(self, position: int) -> bytes | None:
        return self.events[position - 1].hash if 0 < position <= len(self.events) else None

    async def hashes_at(self, positions: Iterable[int]) -> dict[int, bytes]:
        return {p: self.events[p - 1].hash for p in positions if 0 < p <= len(self.events)}

    async def chain_hashes(self, after: int, until: int, limit: int) -> list[tuple[int, bytes]]:
        rows = self.events[max(after, 0) : max(until, 0)][:limit]
        return [(e.position, e.hash) for e in rows]


def _both_are_stores(postgres: EventStore, memory: MemoryEventStore) -> tuple[Store, Store]:
    """Never called: mypy checks here that both stores satisfy the protocol."""
    return postgres, memory
