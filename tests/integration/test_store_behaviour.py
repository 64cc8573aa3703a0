"""The store behaviour suite (tests/store_behaviour.py) on PostgreSQL, acting as the
services' role in a fresh schema."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import store_behaviour
from store_behaviour import *  # noqa: F403 -- the suite's tests, collected here

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import create_pool

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(database_url: str, unique: str) -> AsyncIterator[EventStore]:
    schema = f"sb_{unique}"
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, schema)
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema, max_size=4)
    try:
        yield EventStore(pool, schema, clock=store_behaviour.stepping_clock())
    finally:
        await pool.close()


def test_every_test_of_the_suite_is_collected_here() -> None:
    assert all(name in globals() for name in store_behaviour.all_tests())
