"""Who may do what to a service's store: least privilege, granted by the owner.

Migrations run as the database owner (an administrator's connection), through an explicit
command (`mandat migrate`), never from a running service. Each service schema gets its own
login role, which the service connects as -- not a superuser, not a member of any role (so
neither `SET ROLE` nor `RESET ROLE` gives it more), with exactly:

- `SELECT, INSERT` on its `events` (never `UPDATE`, `DELETE`, `TRUNCATE`; the append-only
  trigger refuses them to everyone anyway);
- `SELECT, INSERT, UPDATE` on the tables it maintains: its relay's checkpoints and its
  projections (with their checkpoints);
- `SELECT, INSERT, UPDATE, DELETE` on its decision state (`decision_state`, a fold of its
  events kept in step with them) and `SELECT, UPDATE` on the position it is the fold of;
- `SELECT` on `schema_migrations` (to check it runs on a migrated schema); `SELECT, INSERT`
  on `revisions_start` (the position from which registry facts revise decisions, written
  once);
- `SELECT, INSERT` on `trace_contexts` (where each transaction's trace is, for the relay);
- on a store split into shards, the same on each shard's schema, and on the hub only
  `SELECT` on its `schema_migrations` and `shard_layout`, `SELECT, INSERT` on its `claims`
  (ids unique across shards): none on a hub's own events (a store split by `mandat store
  split` keeps them there as its archive);
- nothing on any other schema: another service's store is out of its reach.
"""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from services.adapters.eventstore.migrations import (
    apply_migrations,
    check_schema_name,
    migration_files,
)
from services.adapters.eventstore.shards import (
    Layout,
    read_layout,
    record_id_space,
    record_layout,
)

_MAINTAINED = (
    "relay_checkpoints",
    "projection_sommes_detenues",
    "projection_versements_delegues",
    "projection_checkpoints",
)


class NotMigratedError(RuntimeError):
    """The service's schema lacks migrations: an administrator must run `mandat migrate`."""


def service_role(schema: str) -> str:
    """The login role of the service whose store is `schema` (at most 63 characters)."""
    check_schema_name(schema)
    if len(schema) <= 59:
        return f"svc_{schema}"
    return f"svc_{hashlib.sha256(schema.encode()).hexdigest()[:32]}"


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def provision(
    conn: asyncpg.Connection, schema: str, password: str, shards: int | None = None
) -> str:
    """As the owner: migrate `schema` (and, for a store of `shards` > 1, each shard's
    schema; services/adapters/eventstore/shards.py), record its layout (None: the one
    recorded, else one shard), create (or update) its service's login role with `password`
    and exactly its grants on each; returns the role's name. Idempotent."""
    await apply_migrations(conn, schema)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"layout:{schema}")
        layout = await read_layout(conn, schema) if shards is None else Layout(schema, shards)
        await record_layout(conn, layout)
    for number, shard in enumerate(layout.schemas):
        if shard != schema:
            await apply_migrations(conn, shard)
            await record_id_space(conn, shard, f"s{number}", 1)
    role = service_role(schema)
    attributes = (
        "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
        f" PASSWORD {_literal(password)}"
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", role)
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(f'{verb} ROLE "{role}" {attributes}')
        # a member of nothing: no role to SET to, nothing inherited
        for (granted,) in await conn.fetch(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid"
            " JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1",
            role,
        ):
            await conn.execute(f'REVOKE "{granted}" FROM "{role}"')
        for store in layout.schemas:
            await grant_store(conn, store, role)
        await grant_hub(conn, schema, role, sharded=layout.sharded)
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"')
    return role


async def grant_store(conn: asyncpg.Connection, schema: str, role: str) -> None:
    """The grants of a service's role on one store (its schema, or one of its shards)."""
    await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    await conn.execute(f'GRANT SELECT, INSERT ON "{schema}".events TO "{role}"')
    tables = ", ".join(f'"{schema}".{t}' for t in _MAINTAINED)
    await conn.execute(f'GRANT SELECT, INSERT, UPDATE ON {tables} TO "{role}"')
    await conn.execute(f'GRANT SELECT ON "{schema}".schema_migrations TO "{role}"')
    for once in ("revisions_start", "revision_steps_start"):  # written once each
        await conn.execute(f'GRANT SELECT, INSERT ON "{schema}".{once} TO "{role}"')
    await conn.execute(f'GRANT SELECT ON "{schema}".id_space TO "{role}"')  # the owner's
    # decision state: the fold of its events, rewritten as they are appended
    await conn.execute(
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{schema}".decision_state TO "{role}"'
    )
    await conn.execute(f'GRANT SELECT, UPDATE ON "{schema}".decision_state_position TO "{role}"')
    # traces: where each transaction's span is (written, read, never changed)
    await conn.execute(f'GRANT SELECT, INSERT ON "{schema}".trace_contexts TO "{role}"')


async def grant_hub(conn: asyncpg.Connection, schema: str, role: str, *, sharded: bool) -> None:
    """The grants of a service's role on its hub (the store itself, when in one piece):
    checked migrated, its layout read, the ids unique across shards claimed (never
    changed). A hub of shards keeps nothing else: a store split into shards
    (`mandat store split`) keeps its events there as the archive, which no instance -- one
    started before the split included -- may append to or move checkpoints in any more."""
    if sharded:
        await conn.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA "{schema}" FROM "{role}"')
        await conn.execute(f'REVOKE ALL ON ALL SEQUENCES IN SCHEMA "{schema}" FROM "{role}"')
    await conn.execute(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    await conn.execute(f'GRANT SELECT ON "{schema}".schema_migrations TO "{role}"')
    await conn.execute(f'GRANT SELECT ON "{schema}".shard_layout TO "{role}"')
    await conn.execute(f'GRANT SELECT, INSERT ON "{schema}".claims TO "{role}"')


async def drop_store(conn: asyncpg.Connection, schema: str) -> None:
    """As the owner: drop a store and its service's login role (benchmarks clean up)."""
    role = service_role(schema)
    for shard in (await read_layout(conn, schema)).schemas:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{shard}" CASCADE')
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    if await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
        database = await conn.fetchval("SELECT current_database()")
        await conn.execute(f'REVOKE ALL ON DATABASE "{database}" FROM "{role}"')
        await conn.execute(f'DROP ROLE "{role}"')


async def check_migrated(conn: asyncpg.Connection) -> None:
    """Raise NotMigratedError unless every migration file is applied to the schema this
    connection sees first (its search_path)."""
    try:
        applied = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
    except (asyncpg.UndefinedTableError, asyncpg.InsufficientPrivilegeError) as exc:
        raise NotMigratedError(f"no migrated store here ({type(exc).__name__})") from exc
    missing = [p.name for p in migration_files() if p.name not in applied]
    if missing:
        raise NotMigratedError(f"migrations not applied yet: {', '.join(missing)}")
