"""The append-only event store on PostgreSQL (asyncpg).

Every write happens in a `StoreTransaction`, which first takes the store's advisory lock.
Holding it, the appender reads the last committed row (position and hash), gives the new
rows the next positions and chains their hashes. The lock is released only by COMMIT or
ROLLBACK, so row p+1 is inserted only after row p is committed and visible: positions are
visible strictly in order, and a reader of `position > n` can never skip a late commit.
The same lock makes a service's read-decide-append a serial history, which is what replay
re-executes.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from services.adapters.eventstore.errors import ConcurrencyError, DuplicateEventError
from services.adapters.eventstore.pool import Encoded
from services.domain.kernel.records import (
    GENESIS_HASH,
    NewEvent,
    StoredEvent,
    chained,
    expected_hash,
)
from services.domain.kernel.tasks import Starts
from services.domain.state import Change, Demand, Entry, Row

log = logging.getLogger(__name__)

NEVER = 2**62
"""The `revisions_from` of a store no code with revisions has written yet: no fact of it
revises anything."""

ANY_VERSION = -1
"""The expected version a `ConcurrencyError` names when the database, not the appender,
found the stream's version taken (at commit: which version was expected is not known)."""

_COLUMNS = (
    "position, stream_id, stream_version, event_id, event_type, schema_version,"
    " payload, metadata, recorded_at, hash"
)
COLUMNS = tuple(c.strip() for c in _COLUMNS.split(","))
"""The columns of `events`, in the order of `StoredEvent`'s fields and of `bulk_copy` rows."""
_COPY_COLUMNS = list(COLUMNS)


def utc_now() -> datetime:
    """The default clock of the store."""
    return datetime.now(UTC)


_STARTS = (
    "SELECT (SELECT position FROM revisions_start) AS revisions,"
    " (SELECT position FROM revision_steps_start) AS steps,"
    " (SELECT space FROM id_space) AS space, (SELECT position FROM id_space) AS space_from"
)


def _starts(row: asyncpg.Record) -> Starts:
    """What `_STARTS` read: where revisions, steps and a shard's own ids start."""
    revisions, steps = (NEVER if row[k] is None else int(row[k]) for k in ("revisions", "steps"))
    return Starts(revisions, steps, row["space"] or "", int(row["space_from"] or 1))


def _stored(row: asyncpg.Record) -> StoredEvent:
    return StoredEvent(
        position=row["position"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        payload=row["payload"],
        metadata=row["metadata"],
        recorded_at=row["recorded_at"],
        hash=bytes(row["hash"]),
    )


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of verifying the hash chain."""

    checked: int
    first_broken: int | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


async def check_chain(events: AsyncIterator[StoredEvent]) -> ChainReport:
    """Walk `events` (a whole store, in position order): the first position where the
    positions skip or a row's hash is not the chain hash of its content and the row before."""
    previous, checked, expected_position = GENESIS_HASH, 0, 1
    async for event in events:
        if event.position != expected_position:
            return ChainReport(checked, expected_position)
        if expected_hash(previous, event) != event.hash:
            return ChainReport(checked, event.position)
        previous, checked, expected_position = event.hash, checked + 1, event.position + 1
    return ChainReport(checked, None)


def _after_prefix(prefix: str) -> str | None:
    """The first text after every text that starts with `prefix`, in the tag column's
    collation "C" (code point order); None when there is none (`prefix` is empty, or only
    U+10FFFF). Surrogates are skipped: PostgreSQL text cannot hold them."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            following = 0xE000 if 0xD800 <= last + 1 <= 0xDFFF else last + 1
            return prefix[:-1] + chr(following)
        prefix = prefix[:-1]  # nothing after U+10FFFF at this place: move up one
    return None


class StoreTransaction:
    """One serialised write transaction: read what is committed, then append after it."""

    def __init__(
        self,
        conn: asyncpg.Connection,
        *,
        head_position: int,
        head_hash: bytes,
        clock: Callable[[], datetime],
        claims: Claims | None = None,
    ) -> None:
        self.conn = conn
        self._claims = claims
        self._position = head_position
        self._hash = head_hash
        self._clock = clock
        self._rows: list[tuple[Any, ...]] = []
        self._versions: dict[str, int] = {}

    @property
    def head_position(self) -> int:
        """The last position taken, counting this transaction's own appends."""
        return self._position

    async def note_trace(self, first: int, traceparent: str) -> None:
        """Keep `traceparent` beside the positions `first`..head this transaction appends
        (operational metadata, outside the events and their chain). It never fails the
        transaction: written in a savepoint, a row already there (a tail cut and taken
        again, a restore) is kept and a refusal is logged, not raised."""
        try:
            async with self.conn.transaction():  # a savepoint: a failure stays in it
                await self.conn.execute(
                    "INSERT INTO trace_contexts (last_position, first_position, traceparent)"
                    " VALUES ($1, $2, $3) ON CONFLICT (last_position) DO NOTHING",
                    self._position,
                    first,
                    traceparent,
                )
        except asyncpg.PostgresError as error:
            log.warning("trace context not kept: %s", type(error).__name__)

    async def read_since(self, position: int, limit: int | None = None) -> list[StoredEvent]:
        """The committed events after `position` (at most `limit`), in store order."""
        rows = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            position,
            limit,
        )
        return [_stored(r) for r in rows]

    def appended(self) -> list[tuple[UUID, str]]:
        """(event id, event type) of what this transaction appends, in order."""
        return [(row[3], row[4]) for row in self._rows]

    async def holders(self, keys: Sequence[str]) -> dict[str, int]:
        """For a shard of a store split in shards: the shard that holds each of `keys`
        (ids unique across the shards) held by one. A store in one piece: none."""
        if self._claims is None or not keys:
            return {}
        rows = await self.conn.fetch(
            f"SELECT key, shard FROM {self._claims[0]} WHERE key = ANY($1::text[])",
            list(set(keys)),
        )
        return {r["key"]: int(r["shard"]) for r in rows}

    async def claim(self, keys: Sequence[str]) -> dict[str, int]:
        """Take `keys` for this shard, committed with this transaction; returns those another
        shard took first (it may have committed them while this one decided: the caller
        must then decide again). A store in one piece: nothing to take."""
        if self._claims is None or not keys:
            return {}
        table, shard = self._claims
        taken = await self.conn.fetch(
            # sorted: two shards claiming the same ids take their index entries in one order
            f"INSERT INTO {table} (key, shard) SELECT k, $2 FROM unnest($1::text[]) AS k"
            " ORDER BY k ON CONFLICT (key) DO NOTHING RETURNING key",
            sorted(set(keys)),
            shard,
        )
        ours = {r["key"] for r in taken}
        # a statement of its own: its snapshot sees a claim another shard committed while
        # the insert waited for it (read committed)
        held = await self.holders([k for k in keys if k not in ours])
        return {k: holder for k, holder in held.items() if holder != shard}

    async def stored_events(self, event_ids: Iterable[UUID]) -> dict[UUID, StoredEvent]:
        """The events the store already holds under these ids (one indexed lookup)."""
        rows = await self.conn.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[])", list(event_ids)
        )
        return {r["event_id"]: _stored(r) for r in rows}

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version (0 when it has no event), this transaction included."""
        if stream_id not in self._versions:
            version = await self.conn.fetchval(
                "SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1",
                stream_id,
            )
            self._versions[stream_id] = int(version)
        return self._versions[stream_id]

    async def stream_versions(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """The current versions of these streams (absent: no event), each one indexed
        lookup of its last version."""
        wanted = list(stream_ids)
        rows = await self.conn.fetch(
            "SELECT s, (SELECT stream_version FROM events WHERE stream_id = s"
            " ORDER BY stream_version DESC LIMIT 1) AS v FROM unnest($1::text[]) AS s",
            wanted,
        )
        found = {r["s"]: int(r["v"]) for r in rows if r["v"] is not None}
        # this transaction's own appends count (it has not written them yet)
        return found | {k: self._versions[k] for k in wanted if k in self._versions}

    # --- decision state: the fold the rules read by key, kept in step with the events ----------

    async def state_position(self) -> int:
        """The store position the decision state is the fold of."""
        return int(await self.conn.fetchval("SELECT position FROM decision_state_position"))

    async def state_anchor(self) -> tuple[int, bool, int]:
        """The position the decision state is the fold of, whether the store still holds
        the very event it was folded up to there (same chain hash: not cut, not rewritten),
        and the version of the fold that wrote it."""
        # a scalar subquery, not a join: its plan is the primary key's lookup whatever the
        # planner thought of the table's size when the statement was prepared (a join
        # prepared on a small store kept scanning it as it grew: 11 ms at 40,000 events)
        row = await self.conn.fetchrow(
            "SELECT p.position, p.hash IS NOT DISTINCT FROM"
            " (SELECT e.hash FROM events e WHERE e.position = p.position) AS same, p.version"
            " FROM decision_state_position p"
        )
        position = int(row["position"])
        return position, position == 0 or bool(row["same"]), int(row["version"])

    async def set_state_version(self, version: int) -> None:
        """Record the version of the fold the state is (after folding it again)."""
        await self.conn.execute("UPDATE decision_state_position SET version = $1", version)

    async def load_state(self, demand: Demand) -> list[Row]:
        """The state entries `demand` names: by key, every entry under a tag, every entry
        under a tag prefix (each an index lookup or range)."""
        return (await self._load(demand, ()))[0]

    async def load(self, demand: Demand) -> tuple[list[Row], dict[str, int]]:
        """`load_state(demand)` and `stream_versions(demand.streams)` in one round trip."""
        return await self._load(demand, demand.streams)

    async def _load(
        self, demand: Demand, streams: Iterable[str]
    ) -> tuple[list[Row], dict[str, int]]:
        keys = [(k, key) for k, items in demand.keys.items() for key in items]
        tags = [(k, tag) for k, items in demand.tags.items() for tag in items]
        prefixes = [(k, p, _after_prefix(p)) for k, items in demand.prefixes.items() for p in items]
        wanted = list(streams)
        # the versions come last, as rows of no kind: (stream id, version) in (key, ordinal)
        rows = await self.conn.fetch(
            "SELECT s.kind, s.key, s.tag, s.ordinal, s.doc"
            " FROM unnest($1::text[], $2::text[]) AS w(kind, key)"
            " JOIN decision_state s ON s.kind = w.kind AND s.key = w.key"
            " UNION ALL SELECT s.kind, s.key, s.tag, s.ordinal, s.doc"
            " FROM unnest($3::text[], $4::text[]) AS w(kind, tag)"
            " JOIN decision_state s ON s.kind = w.kind AND s.tag = w.tag"
            " UNION ALL SELECT s.kind, s.key, s.tag, s.ordinal, s.doc"
            " FROM unnest($5::text[], $6::text[], $7::text[]) AS w(kind, low, high)"
            " JOIN decision_state s ON s.kind = w.kind AND s.tag >= w.low"
            " AND (w.high IS NULL OR s.tag < w.high)"
            " UNION ALL SELECT NULL, w.s, NULL, (SELECT stream_version FROM events"
            " WHERE stream_id = w.s ORDER BY stream_version DESC LIMIT 1), NULL"
            " FROM unnest($8::text[]) AS w(s)",
            [k for k, _ in keys],
            [key for _, key in keys],
            [k for k, _ in tags],
            [t for _, t in tags],
            [k for k, _, _ in prefixes],
            [p for _, p, _ in prefixes],
            [h for _, _, h in prefixes],
            wanted,
        )
        entries = [
            Row(r["kind"], r["key"], Entry(r["doc"], r["tag"], r["ordinal"]))
            for r in rows
            if r["kind"] is not None
        ]
        found = {
            r["key"]: int(r["ordinal"])
            for r in rows
            if r["kind"] is None and r["ordinal"] is not None
        }
        # this transaction's own appends count (it has not written them yet)
        return entries, found | {k: self._versions[k] for k in wanted if k in self._versions}

    async def state_span(self, kind: str, tag: str, after: str, limit: int) -> list[Row]:
        """One range of the index on (kind, tag, key) in byte order (migration 015)."""
        rows = await self.conn.fetch(
            "SELECT kind, key, tag, ordinal, doc FROM decision_state"
            ' WHERE kind = $1 AND tag = $2 AND key COLLATE "C" > $3'
            ' ORDER BY key COLLATE "C" LIMIT $4',
            kind,
            tag,
            tag + after,
            limit,
        )
        return [Row(r["kind"], r["key"], Entry(r["doc"], r["tag"], r["ordinal"])) for r in rows]

    async def state_firsts(self, kind: str, tags: Sequence[str]) -> list[Row]:
        """The first entry of each tag, in one statement (one index probe a tag)."""
        rows = await self.conn.fetch(
            "SELECT s.kind, s.key, s.tag, s.ordinal, s.doc FROM unnest($2::text[]) AS t(tag)"
            " CROSS JOIN LATERAL (SELECT * FROM decision_state WHERE kind = $1 AND tag = t.tag"
            ' ORDER BY key COLLATE "C" LIMIT 1) AS s',
            kind,
            list(tags),
        )
        return [Row(r["kind"], r["key"], Entry(r["doc"], r["tag"], r["ordinal"])) for r in rows]

    async def start_revisions(self) -> Starts:
        """The positions from which registry facts revise decisions, and revise an
        organism's people in steps: those recorded, or, the first time, the next position
        (under the store's lock, so it is exact)."""
        for table in ("revisions_start", "revision_steps_start"):
            await self.conn.execute(
                f"INSERT INTO {table} (position) VALUES ($1) ON CONFLICT DO NOTHING",
                self._position + 1,
            )
        row = await self.conn.fetchrow(_STARTS)
        return _starts(row)

    async def reset_state(self) -> None:
        """Forget the decision state (to fold it again from position 0)."""
        await self.conn.execute("DELETE FROM decision_state")
        await self.conn.execute("UPDATE decision_state_position SET position = 0, hash = NULL")

    async def save_state(self, changes: Sequence[Change], position: int) -> None:
        """Write `changes` back and record that the state is the fold up to `position`."""
        kept = [c for c in changes if c.entry is not None]
        gone = [c for c in changes if c.entry is None]
        if kept:
            await self.conn.execute(
                "INSERT INTO decision_state (kind, key, tag, ordinal, doc)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],"
                " $5::jsonb[]) ON CONFLICT (kind, key) DO UPDATE SET tag = excluded.tag,"
                " ordinal = excluded.ordinal, doc = excluded.doc",
                [c.kind for c in kept],
                [c.key for c in kept],
                [c.entry.tag for c in kept if c.entry is not None],
                [c.entry.ordinal for c in kept if c.entry is not None],
                [Encoded(orjson.dumps(c.entry.doc)) for c in kept if c.entry is not None],
            )
        if gone:
            await self.conn.execute(
                "DELETE FROM decision_state s USING unnest($1::text[], $2::text[]) AS w(kind, key)"
                " WHERE s.kind = w.kind AND s.key = w.key",
                [c.kind for c in gone],
                [c.key for c in gone],
            )
        if position == self._position:  # this transaction's head (its rows not written yet)
            await self.conn.execute(
                "UPDATE decision_state_position SET position = $1, hash = $2",
                position,
                self._hash if position else None,
            )
        else:  # a committed row
            await self.conn.execute(
                "UPDATE decision_state_position SET position = $1,"
                " hash = (SELECT hash FROM events WHERE position = $1)",
                position,
            )

    def _append_rows(self, stream_id: str, version: int, events: Sequence[NewEvent]) -> list[int]:
        """Give the events their positions, versions and chained hashes; keep them to write."""
        positions: list[int] = []
        for event in events:
            version += 1
            self._position += 1
            recorded_at = self._clock()
            payload_json, metadata_json, self._hash = chained(
                self._hash, self._position, stream_id, version, event, recorded_at
            )
            self._rows.append(
                (
                    self._position,
                    stream_id,
                    version,
                    event.event_id,
                    event.event_type,
                    event.schema_version,
                    Encoded(payload_json),  # the bytes just hashed are the bytes written
                    Encoded(metadata_json),
                    recorded_at,
                    self._hash,
                )
            )
            positions.append(self._position)
        self._versions[stream_id] = version
        return positions

    def append_at(self, stream_id: str, stream_version: int, event: NewEvent) -> int:
        """Append one event at a version the caller knows to be next (a service folding its
        store under the lock does); the unique constraints still refuse a wrong guess at
        commit. Returns the position it takes."""
        self._versions[stream_id] = stream_version - 1
        return self._append_rows(stream_id, stream_version - 1, [event])[0]

    async def flush(self, channel: str) -> None:
        """Write the pending rows (one COPY) and notify listeners of the new head."""
        if not self._rows:
            return
        try:
            await self.conn.copy_records_to_table(
                "events", records=self._rows, columns=_COPY_COLUMNS
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_stream_version_key":
                raise ConcurrencyError(str(exc.detail or exc), ANY_VERSION) from exc
            if exc.constraint_name == "events_event_id_key":
                raise DuplicateEventError(str(exc.detail or exc)) from exc
            raise
        await self.conn.execute("SELECT pg_notify($1, $2)", channel, str(self._position))
        self._rows = []


Claims = tuple[str, int]
"""Where a shard claims the ids unique across its store's shards: the hub's `claims` table
(qualified) and the shard's number."""


class EventStore:
    """The store of one service schema (or one shard of it: `claims` names where ids unique
    across the shards are claimed). Nothing connects until a method is awaited."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str,
        *,
        clock: Callable[[], datetime] = utc_now,
        claims: Claims | None = None,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.claims = claims
        self.clock = clock
        self.lock_key = self.lock_key_of(schema)
        self.channel = f"{schema}_events"

    @staticmethod
    def lock_key_of(schema: str) -> int:
        """The advisory lock every append to the store of `schema` takes."""
        return zlib.crc32(f"mandat-store:{schema}".encode())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StoreTransaction]:
        """A serialised write transaction; its appends are written when the block exits."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", self.lock_key)
            head = await conn.fetchrow(
                "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
            )
            tx = StoreTransaction(
                conn,
                head_position=head["position"] if head else 0,
                head_hash=bytes(head["hash"]) if head else GENESIS_HASH,
                clock=self.clock,
                claims=self.claims,
            )
            yield tx
            await tx.flush(self.channel)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        """A stream's events after `after_version`, in order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2"
            " ORDER BY stream_version",
            stream_id,
            after_version,
        )
        return [_stored(r) for r in rows]

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Up to `limit` events after position `after`, in store (global) order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after,
            limit,
        )
        # the columns are StoredEvent's fields in order: positional is cheaper than by name
        return [StoredEvent(*r) for r in rows]

    async def read_types(
        self, after: int, event_types: Iterable[str], limit: int = 1000
    ) -> tuple[list[StoredEvent], int]:
        """Up to `limit` events of `event_types` after `after`, in store order, and the
        position up to which that answer is complete: the last event returned when the limit
        was reached, else the head of the store in the same snapshot (one statement)."""
        rows = await self.pool.fetch(
            "WITH head AS (SELECT coalesce(max(position), 0) AS head FROM events)"
            f" SELECT head.head, e.* FROM head LEFT JOIN LATERAL (SELECT {_COLUMNS} FROM events"
            "  WHERE position > $1 AND event_type = ANY($2::text[]) ORDER BY position LIMIT $3"
            " ) e ON true",
            after,
            list(event_types),
            limit,
        )
        events = [_stored(r) for r in rows if r["position"] is not None]
        if len(events) == limit:
            return events, events[-1].position
        return events, max(int(rows[0]["head"]), after)

    async def iter_all(
        self, after: int = 0, *, batch: int = 5000, until: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Every event after `after` (up to `until`, inclusive), read in batches."""
        while True:
            events = await self.read_all(after, batch)
            for event in events:
                if until is not None and event.position > until:
                    return
                yield event
            if len(events) < batch:
                return
            after = events[-1].position

    async def ping(self, timeout: float = 5.0) -> bool:
        """Whether the database answers a trivial query now (a dependency check)."""
        try:
            return bool(await self.pool.fetchval("SELECT 1", timeout=timeout) == 1)
        except Exception:
            return False

    async def exists(self) -> bool:
        """Whether the schema holds an event store (its migrations were applied)."""
        return await self.pool.fetchval("SELECT to_regclass('events')") is not None

    async def head(self) -> int:
        """The last committed position (0 for an empty store)."""
        return int(await self.pool.fetchval("SELECT coalesce(max(position), 0) FROM events"))

    async def verify_chain(self, *, batch: int = 5000) -> ChainReport:
        """Recompute every row's hash from its content and the row before; report the first
        position where the stored hash, or the sequence of positions, does not hold."""
        return await check_chain(self.iter_all(0, batch=batch))

    # --- reads by position: the chain hashes and times the trust tools work on ----------------

    async def hash_at(self, position: int) -> bytes | None:
        """The chain hash of the row at `position` (None when the store holds no such row)."""
        value = await self.pool.fetchval("SELECT hash FROM events WHERE position = $1", position)
        return None if value is None else bytes(value)

    async def hashes_at(self, positions: Iterable[int]) -> dict[int, bytes]:
        """The chain hashes of the rows at `positions` the store holds (one indexed read)."""
        rows = await self.pool.fetch(
            "SELECT position, hash FROM events WHERE position = ANY($1::bigint[])", list(positions)
        )
        return {r["position"]: bytes(r["hash"]) for r in rows}

    async def chain_hashes(self, after: int, until: int, limit: int) -> list[tuple[int, bytes]]:
        """(position, chain hash) of up to `limit` rows in (after, until], in order (32 bytes
        a row: their content is not read)."""
        rows = await self.pool.fetch(
            "SELECT position, hash FROM events WHERE position > $1 AND position <= $2"
            " ORDER BY position LIMIT $3",
            after,
            until,
            limit,
        )
        return [(r["position"], bytes(r["hash"])) for r in rows]

    async def recorded_times(
        self, after: int, until: int, limit: int
    ) -> list[tuple[int, datetime]]:
        """(position, recorded_at) of up to `limit` rows in (after, until], in order."""
        rows = await self.pool.fetch(
            "SELECT position, recorded_at FROM events WHERE position > $1 AND position <= $2"
            " ORDER BY position LIMIT $3",
            after,
            until,
            limit,
        )
        return [(r["position"], r["recorded_at"]) for r in rows]

    async def trace_contexts(self, first: int, last: int, limit: int) -> list[str]:
        """The traceparents of the transactions that appended positions `first`..`last`
        (at most `limit`, in store order), and of the one that appended past `last` from
        within the range."""
        rows = await self.pool.fetch(
            "(SELECT traceparent FROM trace_contexts WHERE last_position BETWEEN $1 AND $2"
            " ORDER BY last_position LIMIT $3)"
            " UNION ALL (SELECT traceparent FROM trace_contexts WHERE last_position > $2"
            " AND first_position <= $2 ORDER BY last_position LIMIT 1)",
            first,
            last,
            limit,
        )
        return [r["traceparent"] for r in rows]

    async def revisions_from(self) -> Starts:
        """The positions from which registry facts revise earlier decisions, and in steps
        (1: a store recorded so from its start; `NEVER` when none was recorded so)."""
        return _starts(await self.pool.fetchrow(_STARTS))

    async def tagged_summary(self, kind: str) -> tuple[int, str | None]:
        """How many decision state entries of `kind` have a tag (parked inputs: are parked),
        and the key of the one with the smallest ordinal (the oldest)."""
        row = await self.pool.fetchrow(
            "SELECT count(*) AS n, (SELECT key FROM decision_state WHERE kind = $1"
            " AND tag IS NOT NULL ORDER BY ordinal LIMIT 1) AS first"
            " FROM decision_state WHERE kind = $1 AND tag IS NOT NULL",
            kind,
        )
        return int(row["n"]), row["first"]

    async def age_of(self, event_id: str) -> float | None:
        """Seconds since the event `event_id` was committed (None when no row has that id):
        one lookup by the unique event id."""
        age = await self.pool.fetchval(
            "SELECT extract(epoch FROM now() - recorded_at) FROM events WHERE event_id = $1",
            event_id,
        )
        return None if age is None else max(0.0, float(age))

    # --- reads by content: what the audit trail and the benches look for ---------------------

    async def mentioning(self, subject: str, causations: Sequence[str]) -> list[StoredEvent]:
        """The events whose payload names `subject` (as a cotisation, prestation, paiement,
        sujet or NIR) or that were caused by one of `causations` (event ids), in order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE $1 IN (payload->>'cotisation_id',"
            " payload->>'prestation_id', payload->>'paiement_id', payload->>'sujet_id',"
            " payload->>'nir') OR metadata->>'causation_id' = ANY($2::text[]) ORDER BY position",
            subject,
            list(causations),
        )
        return [_stored(r) for r in rows]

    async def registry_facts(
        self, organismes: Sequence[str], conventions: Sequence[str], nirs: Sequence[str]
    ) -> list[StoredEvent]:
        """The registry facts about these organismes, conventions and persons (affiliations),
        in order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE (event_type = 'OrganismeDeclare'"
            " AND payload->>'organisme_id' = ANY($1::text[]))"
            " OR (event_type IN ('ConventionConclue', 'ConventionResiliee')"
            " AND payload->>'convention_id' = ANY($2::text[]))"
            " OR (event_type = 'AffiliationEnregistree' AND payload->>'nir' = ANY($3::text[]))"
            " ORDER BY position",
            list(organismes),
            list(conventions),
            list(nirs),
        )
        return [_stored(r) for r in rows]

    async def events_by_id(self, event_ids: Iterable[str]) -> list[StoredEvent]:
        """The events with these ids (one indexed lookup), in order."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY position",
            list(event_ids),
        )
        return [_stored(r) for r in rows]

    async def position_at(self, when: datetime) -> int:
        """The last position recorded at or before `when` (0: none). Recording times
        follow the store's order, so it is a binary search by position, not a scan."""
        low, high = 0, await self.head()
        while low < high:
            middle = (low + high + 1) // 2
            at = await self.pool.fetchval(
                "SELECT recorded_at FROM events WHERE position = $1", middle
            )
            if at is not None and at <= when:
                low = middle
            else:
                high = middle - 1
        return low

    async def count_of_types(self, event_types: Iterable[str]) -> int:
        """How many events of `event_types` the store holds."""
        return int(
            await self.pool.fetchval(
                "SELECT count(*) FROM events WHERE event_type = ANY($1::text[])", list(event_types)
            )
        )

    async def count_by_causation(self, event_types: Iterable[str]) -> Mapping[str | None, int]:
        """How many events of `event_types` each cause (metadata causation_id) has."""
        rows = await self.pool.fetch(
            "SELECT metadata->>'causation_id' AS cause, count(*) AS n"
            " FROM events WHERE event_type = ANY($1::text[]) GROUP BY 1",
            list(event_types),
        )
        return {r["cause"]: int(r["n"]) for r in rows}

    async def read_records(self, after: int, limit: int) -> list[asyncpg.Record]:
        """Up to `limit` rows after `after`, left as the driver's records (a bench's baseline
        of what reading costs before any event is built)."""
        return list(
            await self.pool.fetch(
                f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
                after,
                limit,
            )
        )

    async def rows_after(self, after: int) -> list[tuple[Any, ...]]:
        """Every row after `after` as a tuple of `COLUMNS` (what `bulk_copy` takes)."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position", after
        )
        return [tuple(r) for r in rows]

    # --- bulk loading (benches): rows made elsewhere, their chain hashes already computed -----

    async def bulk_copy(self, rows: Sequence[tuple[Any, ...]], *, chunk: int = 20_000) -> None:
        """COPY `rows` (tuples of `COLUMNS`, payload and metadata as `Encoded` JSON) as they
        are, in transactions of `chunk` rows; no lock and no check beyond the table's
        constraints: for a bench filling a store of its own, never for a service's store."""
        async with self.pool.acquire() as conn:
            for start in range(0, len(rows), chunk):
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "events", records=rows[start : start + chunk], columns=_COPY_COLUMNS
                    )

    async def analyze(self) -> None:
        """Refresh the planner's statistics of `events` (after a bulk load)."""
        await self.pool.execute("ANALYZE events")

    async def settle(self) -> None:
        """After a bulk load and its fold into the state: vacuum and analyze both tables,
        as autovacuum would in the hours after (a benchmark measures a store at rest, not
        one whose maintenance runs meanwhile)."""
        for table in ("events", "decision_state"):
            await self.pool.execute(f"VACUUM (ANALYZE) {table}")
