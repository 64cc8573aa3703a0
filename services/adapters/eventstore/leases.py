"""What the store's background workers keep in PostgreSQL beside the record: who leads (a
session advisory lock on a connection of the worker's own) and how far each relay has
published (`relay_checkpoints`, the one table the services may UPDATE).

Everything here runs on the leader's own connection: a worker that lost its connection lost
the lock with it, and cannot write a checkpoint any more.
"""

from __future__ import annotations

import asyncpg
import orjson

from services.adapters.eventstore.migrations import check_schema_name


async def try_lead(conn: asyncpg.Connection, lock_key: int) -> bool:
    """Take the session lock `lock_key` on `conn` if no other session holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key))


async def still_connected(conn: asyncpg.Connection) -> None:
    """Raise unless `conn` still answers (a session lock lives as long as its connection)."""
    await conn.fetchval("SELECT 1")


class RelayCheckpoints:
    """The checkpoints of the relays of one store schema."""

    def __init__(self, schema: str) -> None:
        check_schema_name(schema)
        self._table = f'"{schema}".relay_checkpoints'

    async def read(self, conn: asyncpg.Connection, relay: str) -> int:
        """The position up to which `relay` has published (0 when it never has)."""
        value = await conn.fetchval(f"SELECT position FROM {self._table} WHERE relay = $1", relay)
        return int(value or 0)

    async def save(self, conn: asyncpg.Connection, relay: str, position: int) -> None:
        """Move `relay`'s checkpoint to `position`, never backwards (a deposed leader's late
        write cannot undo a newer one)."""
        await conn.execute(
            f"INSERT INTO {self._table} AS c (relay, position)"
            " VALUES ($1, $2) ON CONFLICT (relay) DO UPDATE"
            " SET position = EXCLUDED.position, updated_at = now()"
            " WHERE c.position < EXCLUDED.position",
            relay,
            position,
        )

    async def read_floors(self, conn: asyncpg.Connection, relay: str) -> dict[str, int]:
        """Where, on each partition ("topic:partition"), the messages of `relay` (one shard's)
        not yet checkpointed can start."""
        value = await conn.fetchval(
            f"SELECT floors::text FROM {self._table} WHERE relay = $1", relay
        )
        return {str(k): int(v) for k, v in orjson.loads(value or "{}").items()}

    async def save_floors(
        self, conn: asyncpg.Connection, relay: str, floors: dict[str, int]
    ) -> None:
        """Keep `floors` for these partitions (the others keep theirs)."""
        await conn.execute(
            f"INSERT INTO {self._table} AS c (relay, position, floors) VALUES ($1, 0, $2::jsonb)"
            " ON CONFLICT (relay) DO UPDATE SET floors = c.floors || EXCLUDED.floors",
            relay,
            orjson.dumps(floors).decode(),
        )
