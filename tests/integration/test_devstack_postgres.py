"""The local PostgreSQL process of the dev stack: start, reuse, stop, restart with data."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from services.tools.devstack.postgres import (
    PostgresNode,
    is_running,
    start_postgres,
    stop_postgres,
    superuser_password,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A fresh run directory whose server is always stopped and removed at the end.

    Not under pytest's tmp_path: when run as root the server runs as an unprivileged
    user, and every pytest session resets /tmp/pytest-of-root to 0700, which would lock
    that user out of a server started by a concurrent session.
    """
    base = Path(tempfile.mkdtemp(prefix="devstack-pg-"))
    try:
        yield base / "pg"
    finally:
        stop_postgres(base / "pg")
        shutil.rmtree(base, ignore_errors=True)


async def _write_rows(url: str) -> None:
    """Create a table and insert two rows."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE greeting (id int PRIMARY KEY, text text NOT NULL)")
        await conn.executemany(
            "INSERT INTO greeting (id, text) VALUES ($1, $2)", [(1, "bonjour"), (2, "salut")]
        )
    finally:
        await conn.close()


async def _read_rows(url: str) -> list[tuple[int, str]]:
    """Return the rows of the table, ordered by id, and check the database name."""
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "mandat"
        rows = await conn.fetch("SELECT id, text FROM greeting ORDER BY id")
    finally:
        await conn.close()
    return [(row["id"], row["text"]) for row in rows]


def _assert_gone(node: PostgresNode) -> None:
    """The server process of ``node`` has exited (or is a zombie awaiting reaping)."""
    cmdline = Path(f"/proc/{node.pid}/cmdline")
    assert not cmdline.exists() or b"postgres" not in cmdline.read_bytes()
    with pytest.raises(OSError):
        asyncio.run(asyncpg.connect(node.url, timeout=2))


async def _connect(url: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    await conn.close()


def test_start_reuse_stop_restart_keeps_data(run_dir: Path) -> None:
    node = start_postgres(run_dir, port=0, durable=False)
    assert node.port > 0
    password = superuser_password(run_dir)
    assert node.url == f"postgresql://postgres:{password}@127.0.0.1:{node.port}/mandat"
    # a random password, readable by its owner only; the socket asks for it too
    assert password != "postgres" and len(password) >= 20
    assert (run_dir / "superuser.password").stat().st_mode & 0o077 == 0
    hba = (run_dir / "data" / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and all(rule[-1] == "scram-sha-256" for rule in rules), rules
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(_connect(f"postgresql://postgres:postgres@127.0.0.1:{node.port}/mandat"))
    assert (run_dir / "data" / "PG_VERSION").is_file()

    asyncio.run(_write_rows(node.url))
    assert asyncio.run(_read_rows(node.url)) == [(1, "bonjour"), (2, "salut")]

    again = start_postgres(run_dir, port=0, durable=False)
    assert again == node
    assert is_running(run_dir) == node

    assert stop_postgres(run_dir) is True
    assert is_running(run_dir) is None
    assert stop_postgres(run_dir) is False
    _assert_gone(node)

    restarted = start_postgres(run_dir, port=0, durable=False)
    assert restarted.pid != node.pid
    assert asyncio.run(_read_rows(restarted.url)) == [(1, "bonjour"), (2, "salut")]

    assert stop_postgres(run_dir) is True
    assert is_running(run_dir) is None
    assert os.listdir(run_dir / "data")
