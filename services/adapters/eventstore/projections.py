"""Projections of the record: balances by (organism, caisse de base), folded from the store.

- `sommes_detenues`: money each organism holds for each caisse de base (the reversements
  it owes), from `PaiementEncaissePourCompte` (collection);
- `versements_delegues`: cash benefits each organism paid on behalf of each caisse de base,
  from `VersementDelegue` (benefits).

`fold` is the pure definition. `Projector` keeps the live tables of one service schema
(infra/postgres/008_projections.sql) following the store from its checkpoints, rows and
checkpoints moved in one transaction. `rebuild` folds again from position 0 up to the live
checkpoints, in the same snapshot as the live rows, and compares.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.adapters.eventstore import EventStore

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (organisme_id, caisse_de_base)
Balances = dict[Key, tuple[int, int]]  # -> (montant_cents, count)


@dataclass(frozen=True, slots=True)
class Projection:
    """One balance projection: which decisions it sums, and where it lives."""

    name: str  # its checkpoint row
    event_type: str
    table: str
    count_column: str


SOMMES_DETENUES = Projection(
    "sommes_detenues", "PaiementEncaissePourCompte", "projection_sommes_detenues", "paiements"
)
VERSEMENTS_DELEGUES = Projection(
    "versements_delegues", "VersementDelegue", "projection_versements_delegues", "versements"
)
PROJECTIONS = (SOMMES_DETENUES, VERSEMENTS_DELEGUES)
PROJECTIONS_OF = {"collection": (SOMMES_DETENUES,), "benefits": (VERSEMENTS_DELEGUES,)}
"""The projections a service's decisions feed (the tables exist in every schema)."""


def add(
    balances: Balances, projection: Projection, event_type: str, payload: dict[str, Any] | None
) -> None:
    """Fold one event into `balances` (in place); other event types change nothing."""
    if event_type != projection.event_type or payload is None:
        return
    key = (payload["organisme_id"], payload["caisse_de_base"])
    cents, count = balances.get(key, (0, 0))
    balances[key] = (cents + int(payload["montant_cents"]), count + 1)


def fold(
    projection: Projection,
    events: Iterable[tuple[str, dict[str, Any] | None]],
    start: Balances | None = None,
) -> Balances:
    """Fold (event_type, payload) pairs into balances (a new dict; `start` is not changed)."""
    balances = dict(start or {})
    for event_type, payload in events:
        add(balances, projection, event_type, payload)
    return balances


_EVENTS = (
    "SELECT position, event_type, CASE WHEN event_type = ANY($2::text[]) THEN payload"
    " END AS payload FROM events WHERE position > $1 ORDER BY position LIMIT $3"
)
"""A batch of events to fold (payloads decoded only for the events a projection sums)."""


async def _read_live(conn: asyncpg.Connection, projection: Projection) -> Balances:
    rows = await conn.fetch(
        f"SELECT organisme_id, caisse_de_base, montant_cents,"
        f" {projection.count_column} AS n FROM {projection.table}"
    )
    return {
        (r["organisme_id"], r["caisse_de_base"]): (int(r["montant_cents"]), int(r["n"]))
        for r in rows
    }


class Projector:
    """Keeps one schema's projection tables folded up to its store's head."""

    def __init__(
        self,
        store: EventStore,
        *,
        projections: tuple[Projection, ...] = PROJECTIONS,
        batch: int = 2000,
        idle_poll: float = 0.5,
    ) -> None:
        self.store = store
        self.projections = projections
        self.batch = batch
        self.idle_poll = idle_poll
        self.position = 0  # the lowest checkpoint after the last step
        self.failing_since: float | None = None  # monotonic time of the first failure in a row
        self.stall_reason: str | None = None

    def stalled_seconds(self) -> float:
        """How long the projector has failed in a row (0 when its last step worked)."""
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since

    async def run(self) -> None:
        """Follow the store until cancelled; failures are logged, retried and reported as a
        stall (readiness says so), never skipped."""
        delay = 0.2
        while True:
            try:
                if await self.catch_up() == 0:
                    await asyncio.sleep(self.idle_poll)
                delay, self.failing_since, self.stall_reason = 0.2, None, None
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a projection lags, it never stops
                if self.failing_since is None:
                    self.failing_since = time.monotonic()
                self.stall_reason = type(exc).__name__
                log.warning("projector %s: %r; retrying in %.1fs", self.store.schema, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def catch_up(self) -> int:
        """Fold everything committed beyond the checkpoints; returns how many events."""
        total = 0
        while (done := await self.step()) > 0:
            total += done
        return total

    async def step(self) -> int:
        """Fold one batch in one transaction (rows and checkpoints); returns its size."""
        names = [p.name for p in self.projections]
        types = [p.event_type for p in self.projections]
        async with self.store.pool.acquire() as conn, conn.transaction():
            # row locks serialise projectors of the same schema (several instances)
            await conn.executemany(
                "INSERT INTO projection_checkpoints (projection, position)"
                " VALUES ($1, 0) ON CONFLICT (projection) DO NOTHING",
                [(n,) for n in names],
            )
            rows = await conn.fetch(
                "SELECT projection, position FROM projection_checkpoints"
                " WHERE projection = ANY($1::text[]) FOR UPDATE",
                names,
            )
            checkpoints = {r["projection"]: r["position"] for r in rows}
            start = min(checkpoints.values())
            events = await conn.fetch(_EVENTS, start, types, self.batch)
            if not events:
                self.position = start
                return 0
            last = events[-1]["position"]
            for projection in self.projections:
                seen = checkpoints[projection.name]
                delta = fold(
                    projection,
                    ((e["event_type"], e["payload"]) for e in events if e["position"] > seen),
                )
                await self._add(conn, projection, delta)
            await conn.execute(
                "UPDATE projection_checkpoints SET position = $1, updated_at ="
                " now() WHERE projection = ANY($2::text[])",
                last,
                names,
            )
        self.position = last
        return len(events)

    @staticmethod
    async def _add(conn: asyncpg.Connection, projection: Projection, delta: Balances) -> None:
        if not delta:
            return
        n = projection.count_column
        await conn.executemany(
            f"INSERT INTO {projection.table} (organisme_id, caisse_de_base, montant_cents, {n})"
            f" VALUES ($1, $2, $3, $4) ON CONFLICT (organisme_id, caisse_de_base) DO UPDATE SET"
            f" montant_cents = {projection.table}.montant_cents + EXCLUDED.montant_cents,"
            f" {n} = {projection.table}.{n} + EXCLUDED.{n}",
            [(o, c, cents, count) for (o, c), (cents, count) in sorted(delta.items())],
        )


@dataclass(frozen=True, slots=True)
class ProjectionCheck:
    """A projection rebuilt from position 0, next to the live one at the same position."""

    projection: str
    position: int  # the live checkpoint, up to which the rebuild folded
    head: int
    live: Balances
    rebuilt: Balances

    @property
    def differences(self) -> list[dict[str, Any]]:
        keys = sorted(self.live.keys() | self.rebuilt.keys())
        return [
            {
                "organisme_id": o,
                "caisse_de_base": c,
                "live": self.live.get((o, c)),
                "rebuilt": self.rebuilt.get((o, c)),
            }
            for o, c in keys
            if self.live.get((o, c)) != self.rebuilt.get((o, c))
        ]

    @property
    def ok(self) -> bool:
        return self.live == self.rebuilt

    def as_dict(self) -> dict[str, Any]:
        rows = [
            {"organisme_id": o, "caisse_de_base": c, "montant_cents": v[0], "count": v[1]}
            for (o, c), v in sorted(self.rebuilt.items())
        ]
        return {
            "projection": self.projection,
            "position": self.position,
            "head": self.head,
            "rows": rows,
            "differences": self.differences,
            "ok": self.ok,
        }


async def rebuild(
    store: EventStore,
    *,
    projections: tuple[Projection, ...] = PROJECTIONS,
    repair: bool = False,
    prefetch: int = 10000,
) -> list[ProjectionCheck]:
    """Fold each projection again from position 0 up to its live checkpoint and compare with
    the live rows, all in one snapshot. With `repair`, replace the live rows by the rebuilt
    ones (needs DELETE: an administrator's connection)."""
    checks = []
    # checking reads one snapshot; repairing first locks the checkpoints (a projector then
    # waits), after which every statement sees the same committed state
    isolation = "read_committed" if repair else "repeatable_read"
    async with (
        store.pool.acquire() as conn,
        conn.transaction(isolation=isolation, readonly=not repair),
    ):
        lock = " FOR UPDATE" if repair else ""
        rows = await conn.fetch(f"SELECT projection, position FROM projection_checkpoints{lock}")
        head = int(await conn.fetchval("SELECT coalesce(max(position), 0) FROM events"))
        checkpoints = {r["projection"]: r["position"] for r in rows}
        for projection in projections:
            until = checkpoints.get(projection.name, 0)
            live = await _read_live(conn, projection)
            cursor = conn.cursor(
                "SELECT event_type, payload FROM events WHERE event_type = $1"
                " AND position <= $2 ORDER BY position",
                projection.event_type,
                until,
                prefetch=prefetch,
            )
            rebuilt: Balances = {}
            async for r in cursor:
                add(rebuilt, projection, r["event_type"], r["payload"])
            checks.append(ProjectionCheck(projection.name, until, head, live, rebuilt))
            if repair and live != rebuilt:
                await conn.execute(f"DELETE FROM {projection.table}")
                await Projector._add(conn, projection, rebuilt)
    return checks
