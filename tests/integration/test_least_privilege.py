"""Least privilege, proved by refusals: a service connects as its own login role, which may
read and append its own record and move its own checkpoints and projections -- and nothing
else: no UPDATE, DELETE or TRUNCATE of events, nothing on the other service's schema, no
role to switch to (`RESET ROLE` gives nothing back), no superuser setting."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.adapters.eventstore.roles import NotMigratedError
from services.adapters.eventstore.shards import read_layout
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def as_collection(settings: ServiceSettings) -> AsyncIterator[asyncpg.Connection]:
    user, password = settings.login("collection")
    conn = await asyncpg.connect(
        settings.database_url.get_secret_value(),
        user=user,
        password=password,
        server_settings={"search_path": settings.collection_schema},
    )
    try:
        yield conn
    finally:
        await conn.close()


ONCE = ("revisions_start", "revision_steps_start")
"""Tables a service writes one row to, once: it may read and insert, nothing more."""

REFUSED = [
    "UPDATE events SET event_type = 'x'",
    "DELETE FROM events",
    "TRUNCATE events",
    "CREATE TABLE sneaky (x int)",
    "CREATE TABLE public.sneaky (x int)",
    "SET session_replication_role = replica",
    "SET ROLE mandat_service",
    "SET ROLE postgres",
    "ALTER TABLE events DISABLE TRIGGER USER",
    "DROP TRIGGER events_no_update_delete ON events",
]


@pytest.mark.parametrize("statement", REFUSED)
async def test_the_service_role_may_not(as_collection: asyncpg.Connection, statement: str) -> None:
    with pytest.raises(asyncpg.PostgresError):
        await as_collection.execute(statement)


async def test_reset_role_gives_nothing_back(as_collection: asyncpg.Connection) -> None:
    await as_collection.execute("RESET ROLE")
    row = await as_collection.fetchrow(
        "SELECT current_user = session_user AS same, rolsuper, rolcreaterole, rolbypassrls"
        " FROM pg_roles WHERE rolname = current_user"
    )
    assert row is not None and row["same"] and not row["rolsuper"]
    assert not row["rolcreaterole"] and not row["rolbypassrls"]
    memberships = await as_collection.fetchval(
        "SELECT count(*) FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member"
        " WHERE u.rolname = current_user"
    )
    assert memberships == 0
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await as_collection.execute("UPDATE events SET event_type = 'x'")
    # granting what it has not: PostgreSQL only warns, and grants nothing
    await as_collection.execute("GRANT UPDATE, DELETE ON events TO PUBLIC")
    assert not await as_collection.fetchval(
        "SELECT has_table_privilege('public', 'events', 'UPDATE')"
        " OR has_table_privilege(current_user, 'events', 'DELETE')"
    )


async def test_nothing_on_the_other_service_s_store(
    as_collection: asyncpg.Connection, settings: ServiceSettings
) -> None:
    other = settings.benefits_schema
    for statement in (
        f'SELECT count(*) FROM "{other}".events',
        f'SELECT * FROM "{other}".relay_checkpoints',
        f'UPDATE "{other}".relay_checkpoints SET position = 0',
        f"INSERT INTO \"{other}\".projection_checkpoints (projection, position) VALUES ('x', 0)",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await as_collection.execute(statement)


async def test_what_the_service_maintains_it_may_write(
    as_collection: asyncpg.Connection,
) -> None:
    async with as_collection.transaction():
        await as_collection.execute(
            "INSERT INTO relay_checkpoints (relay, position) VALUES ('probe', 0)"
        )
        await as_collection.execute(
            "UPDATE relay_checkpoints SET position = 1 WHERE relay = 'probe'"
        )
        await as_collection.execute("UPDATE projection_checkpoints SET position = position")
        assert await as_collection.fetchval("SELECT count(*) FROM events") == 0


async def test_a_running_service_is_connected_as_its_own_role(settings: ServiceSettings) -> None:
    runtime = build_runtime("collection", settings)
    async with runtime.running():
        assert runtime.pool is not None
        row = await runtime.pool.fetchrow(
            "SELECT current_user AS who, session_user AS login,"
            " (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) AS super"
        )
    assert row is not None
    assert row["who"] == row["login"] == settings.login("collection")[0]
    assert row["super"] is False


async def test_a_service_does_not_migrate_nor_start_on_an_unmigrated_schema(
    settings: ServiceSettings, unique: str
) -> None:
    s = settings.model_copy(update={"collection_schema": f"never_{unique}"})
    with pytest.raises(
        (
            NotMigratedError,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidPasswordError,
        )
    ):
        async with build_runtime("collection", s).running():
            pass  # pragma: no cover


async def test_the_service_role_holds_exactly_its_grants(store_settings: ServiceSettings) -> None:
    """Not inferred from refusals (a trigger refuses some to everyone): the grants read back
    from the catalog, on every schema, are exactly these -- on each shard of a store in
    shards, and on its hub what the shards share."""
    settings = store_settings
    user, password = settings.login("collection")
    as_collection = await asyncpg.connect(
        settings.database_url.get_secret_value(), user=user, password=password
    )
    try:
        rows = await as_collection.fetch(
            "SELECT table_schema, table_name, privilege_type"
            " FROM information_schema.table_privileges WHERE grantee = current_user"
        )
        got = {(r["table_schema"], r["table_name"], r["privilege_type"]) for r in rows}
        hub = settings.collection_schema
        layout = await read_layout(as_collection, hub)
        assert layout.shards == settings.store_shards
        maintained = (
            "relay_checkpoints",
            "projection_sommes_detenues",
            "projection_versements_delegues",
            "projection_checkpoints",
        )
        expected: set[tuple[str, str, str]] = set()
        for own in layout.schemas:
            expected |= {(own, "events", p) for p in ("SELECT", "INSERT")}
            expected |= {(own, "schema_migrations", "SELECT"), (own, "id_space", "SELECT")}
            expected |= {(own, t, p) for t in ONCE for p in ("SELECT", "INSERT")}
            expected |= {(own, "trace_contexts", p) for p in ("SELECT", "INSERT")}
            expected |= {(own, t, p) for t in maintained for p in ("SELECT", "INSERT", "UPDATE")}
            # the decision state, a fold of the events kept with them: rewritten as they come
            expected |= {
                (own, "decision_state", p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")
            }
            expected |= {(own, "decision_state_position", p) for p in ("SELECT", "UPDATE")}
        # the hub: its layout read, the ids unique across shards claimed, never changed
        expected |= {(hub, "schema_migrations", "SELECT"), (hub, "shard_layout", "SELECT")}
        expected |= {(hub, "claims", p) for p in ("SELECT", "INSERT")}
        assert got == expected
        schemas = await as_collection.fetch(
            "SELECT nspname, has_schema_privilege(current_user, oid, 'USAGE') AS usage,"
            " has_schema_privilege(current_user, oid, 'CREATE') AS create FROM pg_namespace"
            " WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'"
        )
        assert {r["nspname"] for r in schemas if r["create"]} == set()
        assert {r["nspname"] for r in schemas if r["usage"]} <= {hub, *layout.schemas, "public"}
        assert not await as_collection.fetchval(
            "SELECT has_database_privilege(current_user, current_database(), 'CREATE')"
        )
    finally:
        await as_collection.close()
