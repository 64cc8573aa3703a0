"""The event store on a real PostgreSQL: appends, reads, idempotency, migrations, the
append-only guard (grants and trigger), the hash chain, and gap safety of the global order."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import pytest

from services.adapters.eventstore import (
    EventStore,
    NewEvent,
    migrations,
)
from services.adapters.eventstore.migrations import apply_migrations, migration_files
from services.adapters.eventstore.pool import create_pool
from services.domain.kernel.records import GENESIS_HASH, expected_hash

pytestmark = pytest.mark.integration

ALL_MIGRATIONS = [p.name for p in migration_files()]


def event(event_type: str = "CotisationDue", **payload: Any) -> NewEvent:
    return NewEvent(
        event_id=uuid4(),
        event_type=event_type,
        payload=payload or {"montant_cents": 12_345},
        metadata={"correlation_id": "corr-1", "service": "collection"},
    )


async def migrate(database_url: str, schema: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return await apply_migrations(conn, schema)
    finally:
        await conn.close()


@pytest.fixture
def schema(unique: str) -> str:
    return f"es_{unique}"


@pytest.fixture
async def store(database_url: str, schema: str) -> AsyncIterator[EventStore]:
    """A migrated schema and a store on it, acting as the services' role."""
    await migrate(database_url, schema)
    pool = await create_pool(database_url, schema, max_size=10)
    try:
        yield EventStore(pool, schema)
    finally:
        await pool.close()


@pytest.fixture
async def admin(database_url: str, schema: str, store: EventStore) -> AsyncIterator[Any]:
    """A plain superuser connection (the schema's owner) with the schema on its path."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'SET search_path TO "{schema}"')
        yield conn
    finally:
        await conn.close()


async def positions(store: EventStore) -> list[int]:
    return [e.position for e in await store.read_all(0, 100_000)]


# Appending, reading, refusals and the chain's computation are the behaviour every store
# keeps: tests/store_behaviour.py, run on PostgreSQL by test_store_behaviour.py. What follows
# is PostgreSQL's own: migrations, the append-only guard, tampering, the lock's gap safety.


async def append(store: EventStore, stream_id: str, events: list[NewEvent]) -> list[int]:
    """Append `events` after the stream's current version, in one transaction."""
    async with store.transaction() as tx:
        version = await tx.stream_version(stream_id)
        return [tx.append_at(stream_id, version + i, e) for i, e in enumerate(events, 1)]


# --- migrations ----------------------------------------------------------------------------


async def test_migrations_apply_once_and_a_second_run_applies_nothing(
    database_url: str, schema: str
) -> None:
    assert len(ALL_MIGRATIONS) >= 6

    assert await migrate(database_url, schema) == ALL_MIGRATIONS
    assert await migrate(database_url, schema) == []

    conn = await asyncpg.connect(database_url)
    try:
        ledger = await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations ORDER BY name')
    finally:
        await conn.close()
    assert [r["name"] for r in ledger] == ALL_MIGRATIONS


@pytest.fixture
def sql_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of infra/postgres that apply_migrations reads instead."""
    copy = tmp_path / "postgres"
    shutil.copytree(migrations.SQL_DIR, copy)
    monkeypatch.setattr(migrations, "SQL_DIR", copy)
    return copy


async def test_a_migration_file_changed_after_it_was_applied_is_refused(
    database_url: str, schema: str, sql_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await migrate(database_url, schema) == ALL_MIGRATIONS

    changed = sql_copy / "004_relay_checkpoints.sql"
    changed.write_text(changed.read_text() + "\n-- edited after the fact\n")
    (sql_copy / "999_added_later.sql").write_text("CREATE TABLE added_later (x int);\n")

    with pytest.raises(RuntimeError, match=r"004_relay_checkpoints\.sql changed"):
        await migrate(database_url, schema)

    conn = await asyncpg.connect(database_url)
    try:
        names = await conn.fetchval(
            f'SELECT array_agg(name ORDER BY name) FROM "{schema}".schema_migrations'
        )
        added = await conn.fetchval("SELECT to_regclass($1)", f"{schema}.added_later")
    finally:
        await conn.close()
    assert list(names) == ALL_MIGRATIONS and added is None  # nothing applied, nothing recorded


async def test_apply_migrations_takes_every_file_from_sql_dir(
    database_url: str, schema: str, sql_copy: Path
) -> None:
    (sql_copy / "999_added_later.sql").write_text("CREATE TABLE added_later (x int);\n")

    assert await migrate(database_url, schema) == [*ALL_MIGRATIONS, "999_added_later.sql"]


# --- append-only ---------------------------------------------------------------------------

CHANGES = {
    "UPDATE": "UPDATE events SET event_type = 'Forged'",
    "DELETE": "DELETE FROM events",
    "TRUNCATE": "TRUNCATE events",
}


@pytest.mark.parametrize("operation", list(CHANGES))
async def test_the_service_role_has_no_permission_to_change_events(
    store: EventStore, operation: str
) -> None:
    await append(store, "cotisation-A", [event(), event()])
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") == "mandat_service"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await conn.execute(CHANGES[operation])

    assert [e.event_type for e in await store.read_all()] == ["CotisationDue"] * 2


@pytest.mark.parametrize("operation", list(CHANGES))
async def test_the_trigger_refuses_changes_to_events_even_for_the_superuser_owner(
    store: EventStore, admin: Any, operation: str
) -> None:
    await append(store, "cotisation-A", [event(), event()])
    assert await admin.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    assert await admin.fetchval(
        "SELECT tableowner = current_user FROM pg_tables"
        " WHERE schemaname = current_schema() AND tablename = 'events'"
    )

    with pytest.raises(asyncpg.PostgresError, match=f"append-only: {operation} on events"):
        await admin.execute(CHANGES[operation])

    assert [e.event_type for e in await store.read_all()] == ["CotisationDue"] * 2


# --- hash chain ----------------------------------------------------------------------------


async def test_verify_chain_accepts_an_empty_store_and_a_freshly_written_one(
    store: EventStore,
) -> None:
    empty = await store.verify_chain()
    assert (empty.checked, empty.first_broken, empty.ok) == (0, None, True)

    for i in range(4):
        await append(store, f"s-{i % 2}", [event(i=i, j=j) for j in range(3)])
    report = await store.verify_chain(batch=5)  # across batches

    assert (report.checked, report.first_broken, report.ok) == (12, None, True)
    stored = await store.read_all()
    assert expected_hash(GENESIS_HASH, stored[0]) == stored[0].hash


async def _tamper_payload(admin: Any, how: str, position: int) -> None:
    update = (
        "UPDATE events SET payload = jsonb_set(payload, '{montant_cents}', '1') WHERE position = $1"
    )
    if how == "trigger disabled":
        async with admin.transaction():
            await admin.execute("ALTER TABLE events DISABLE TRIGGER USER")
            await admin.execute(update, position)
            await admin.execute("ALTER TABLE events ENABLE TRIGGER USER")
    else:
        await admin.execute("SET session_replication_role = replica")
        await admin.execute(update, position)
        await admin.execute("RESET session_replication_role")


@pytest.mark.parametrize("how", ["trigger disabled", "replication role"])
async def test_verify_chain_reports_a_tampered_payload_at_its_exact_position(
    store: EventStore, admin: Any, how: str
) -> None:
    for i in range(5):
        await append(store, f"s-{i}", [event(montant_cents=100 + i)])
    assert (await store.verify_chain()).ok

    await _tamper_payload(admin, how, 3)

    assert (await store.read_all(2, 1))[0].payload == {"montant_cents": 1}
    report = await store.verify_chain(batch=2)
    assert (report.checked, report.first_broken, report.ok) == (2, 3, False)
    with pytest.raises(asyncpg.PostgresError, match="append-only"):  # the guard is back
        await admin.execute("DELETE FROM events WHERE position = 3")


async def test_a_tampered_row_whose_hash_was_recomputed_breaks_the_chain_at_the_next_row(
    store: EventStore, admin: Any
) -> None:
    for i in range(5):
        await append(store, f"s-{i}", [event(montant_cents=100 + i)])
    await _tamper_payload(admin, "replication role", 3)
    second, third = await store.read_all(1, 2)
    await admin.execute("SET session_replication_role = replica")
    await admin.execute(
        "UPDATE events SET hash = $1 WHERE position = 3", expected_hash(second.hash, third)
    )
    await admin.execute("RESET session_replication_role")

    report = await store.verify_chain()

    assert (report.checked, report.first_broken) == (3, 4)


async def test_verify_chain_reports_a_deleted_row_at_its_position(
    store: EventStore, admin: Any
) -> None:
    for i in range(5):
        await append(store, f"s-{i}", [event()])
    await admin.execute("SET session_replication_role = replica")
    await admin.execute("DELETE FROM events WHERE position = 4")
    await admin.execute("RESET session_replication_role")

    report = await store.verify_chain()

    assert (report.checked, report.first_broken) == (3, 4)


# --- gap safety ----------------------------------------------------------------------------


async def _wait_for_lock_waiter(admin: Any, lock_key: int, timeout: float = 5.0) -> None:
    """Until a session waits (not granted) for the store's advisory lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        waiting = await admin.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND classid::bigint = 0 AND objid::bigint = $1 AND objsubid = 1",
            lock_key,
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    pytest.fail("the second transaction never waited for the store's lock")


async def test_a_later_transaction_waits_for_an_earlier_one_and_a_reader_skips_neither(
    store: EventStore, admin: Any
) -> None:
    a_written, release_a = asyncio.Event(), asyncio.Event()
    b_entered, b_written, release_b = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def transaction_a() -> tuple[int, ...]:
        async with store.transaction() as tx:
            taken = (tx.append_at("stream-a", 1, event()), tx.append_at("stream-a", 2, event()))
            await tx.flush(store.channel)  # rows inserted, not committed
            a_written.set()
            await release_a.wait()
        return taken

    async def transaction_b() -> tuple[int, ...]:
        async with store.transaction() as tx:
            b_entered.set()
            taken = (tx.append_at("stream-b", 1, event()),)
            await tx.flush(store.channel)
            b_written.set()
            await release_b.wait()
        return taken

    task_a = asyncio.create_task(transaction_a())
    task_b: asyncio.Task[tuple[int, ...]] | None = None
    try:
        await asyncio.wait_for(a_written.wait(), 5)
        task_b = asyncio.create_task(transaction_b())
        await _wait_for_lock_waiter(admin, store.lock_key)

        # A holds positions 1-2 uncommitted: B cannot take a position, a reader sees nothing
        assert not b_entered.is_set()
        assert await store.read_all(0) == [] and await store.head() == 0

        release_a.set()
        assert await asyncio.wait_for(task_a, 5) == (1, 2)
        await asyncio.wait_for(b_written.wait(), 5)

        # A committed, B holds position 3 uncommitted: the reader sees exactly A's positions
        follower = [e.position for e in await store.read_all(0)]
        assert follower == [1, 2]
        assert await store.read_all(follower[-1]) == []

        release_b.set()
        assert await asyncio.wait_for(task_b, 5) == (3,)
        follower += [e.position for e in await store.read_all(follower[-1])]
        assert follower == [1, 2, 3]
        assert [e.stream_id for e in await store.read_all(0)] == [
            "stream-a",
            "stream-a",
            "stream-b",
        ]
    finally:
        release_a.set()
        release_b.set()
        await asyncio.gather(task_a, *([task_b] if task_b else []), return_exceptions=True)


async def test_a_follower_sees_every_position_once_in_order_under_concurrent_writers(
    store: EventStore, database_url: str, schema: str, unique: str
) -> None:
    writers, appends_each = 20, 20
    rng = random.Random(unique)
    done = asyncio.Event()

    async def writer(w: int) -> list[int]:
        taken: list[int] = []
        version = 0
        for _ in range(appends_each):
            batch = [event(writer=w, version=version + k) for k in range(rng.randint(1, 3))]
            async with store.transaction() as tx:
                await asyncio.sleep(rng.uniform(0, 0.002))
                for k, e in enumerate(batch, 1):
                    taken.append(tx.append_at(f"writer-{w}", version + k, e))
                await asyncio.sleep(rng.uniform(0, 0.002))
            version += len(batch)
            await asyncio.sleep(rng.uniform(0, 0.002))
        return taken

    reader_pool = await create_pool(database_url, schema, max_size=1)
    reader = EventStore(reader_pool, schema)

    async def follow() -> tuple[list[int], int]:
        seen: list[int] = []
        last, fruitful_polls = 0, 0
        while True:
            finished = done.is_set()  # read once more after the last commit
            batch = await reader.read_all(last, 17)
            for e in batch:
                assert e.position == last + 1, f"gap: saw {e.position} right after {last}"
                last = e.position
                seen.append(last)
            fruitful_polls += bool(batch)
            if finished and not batch:
                return seen, fruitful_polls
            if not batch:
                await asyncio.sleep(0)

    async def write_all() -> list[list[int]]:
        try:
            return await asyncio.gather(*(writer(w) for w in range(writers)))
        finally:
            done.set()

    try:
        taken, (seen, fruitful_polls) = await asyncio.wait_for(
            asyncio.gather(write_all(), follow()), 30
        )
    finally:
        await reader_pool.close()

    total = sum(len(t) for t in taken)
    assert total >= writers * appends_each
    assert sorted(p for t in taken for p in t) == list(range(1, total + 1))
    assert seen == list(range(1, total + 1))
    assert fruitful_polls >= 10  # the follower really read while the writers wrote
    for w in range(writers):
        assert [e.stream_version for e in await store.read_stream(f"writer-{w}")] == list(
            range(1, len(taken[w]) + 1)
        )
    assert (await store.verify_chain()).checked == total
