"""A service's store as one schema, or split into shards: the layout, read and recorded.

A store with one shard is its service's schema itself (every store before shards). A store
with N > 1 shards is N schemas, `<schema>_s0` .. `<schema>_s<N-1>`, each a whole store of
its own (events with their own positions and hash chain, decision state, relay checkpoints,
projections), and the service's schema, the **hub**, which records the layout and the ids
that must stay unique across shards (`claims`). Which shard holds what is decided by the
runtime (services/adapters/runtime/shards.py); here is only where the shards are.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from services.adapters.eventstore.migrations import check_schema_name

MAX_SHARDS = 1024


class LayoutError(RuntimeError):
    """The layout asked for cannot be recorded over the store as it is."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Where a service's store is: its hub schema and how many shards it has."""

    hub: str
    shards: int = 1

    def __post_init__(self) -> None:
        check_schema_name(self.hub)
        if not 1 <= self.shards <= MAX_SHARDS:
            raise ValueError(f"a store has 1 to {MAX_SHARDS} shards, not {self.shards}")
        for schema in self.schemas:
            check_schema_name(schema)

    @property
    def sharded(self) -> bool:
        return self.shards > 1

    @property
    def schemas(self) -> tuple[str, ...]:
        """The schema of each shard, in shard order (the hub itself when there is one)."""
        if self.shards == 1:
            return (self.hub,)
        return tuple(f"{self.hub}_s{k}" for k in range(self.shards))


async def read_layout(conn: asyncpg.Connection | asyncpg.Pool, hub: str) -> Layout:
    """The layout recorded in `hub` (one shard when none is, or the store predates shards)."""
    check_schema_name(hub)
    try:
        shards = await conn.fetchval(f'SELECT shards FROM "{hub}".shard_layout')
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        shards = None
    return Layout(hub, int(shards or 1))


async def _events_in(conn: asyncpg.Connection, schema: str) -> int:
    found = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".events')
    if found is None:
        return 0
    return int(
        await conn.fetchval(f'SELECT count(*) FROM (SELECT 1 FROM "{schema}".events LIMIT 1) e')
    )


async def record_layout(conn: asyncpg.Connection, layout: Layout) -> None:
    """As the owner, in a migrated hub: record `layout`. The layout of a store that holds
    events is never changed here (its subjects' histories would be in the wrong shards)."""
    recorded = await read_layout(conn, layout.hub)
    has_row = await conn.fetchval(f'SELECT count(*) FROM "{layout.hub}".shard_layout')
    if has_row and recorded.shards == layout.shards:
        return
    if has_row or layout.sharded:
        for schema in {*recorded.schemas, layout.hub}:
            if await _events_in(conn, schema):
                raise LayoutError(
                    f"the store of {layout.hub} holds events in {recorded.shards} shard(s):"
                    f" its layout cannot become {layout.shards} shards here"
                )
    await conn.execute(
        f'INSERT INTO "{layout.hub}".shard_layout (shards) VALUES ($1)'
        " ON CONFLICT (singleton) DO UPDATE SET shards = EXCLUDED.shards",
        layout.shards,
    )


async def record_id_space(conn: asyncpg.Connection, schema: str, space: str, position: int) -> None:
    """As the owner: the shard in `schema` mints its decision ids in `space` from `position`
    (infra/postgres/019_id_space.sql); recorded once, never changed."""
    check_schema_name(schema)
    await conn.execute(
        f'INSERT INTO "{schema}".id_space (space, position) VALUES ($1, $2)'
        " ON CONFLICT (singleton) DO NOTHING",
        space,
        position,
    )
