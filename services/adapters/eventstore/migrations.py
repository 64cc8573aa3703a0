"""Ordered SQL files of infra/postgres, applied once each, per service schema."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import asyncpg

SQL_DIR = Path(__file__).resolve().parents[3] / "infra" / "postgres"
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x4D414E44  # "MAND": serialises migrations across the whole cluster


def check_schema_name(schema: str) -> str:
    """A schema name safe to splice into SQL (lower-case identifier)."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use [a-z_][a-z0-9_]*")
    return schema


def migration_files(sql_dir: Path | None = None) -> list[Path]:
    """The migration files, in the order they apply (their numeric prefix)."""
    return sorted((sql_dir or SQL_DIR).glob("[0-9][0-9][0-9]_*.sql"))


async def apply_migrations(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Create `schema` if needed and apply the files not applied yet; returns their names.

    Idempotent and safe to run from several processes at once (an advisory lock serialises
    them). A file already applied whose content changed is an error: migrations are
    append-only too.
    """
    check_schema_name(schema)
    applied_now: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute((SQL_DIR / "001_migrations_table.sql").read_text())
        done = {
            r["name"]: r["sha256"]
            for r in await conn.fetch("SELECT name, sha256 FROM schema_migrations")
        }
        for path in migration_files():
            text = path.read_text()
            digest = hashlib.sha256(text.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != digest:
                    raise RuntimeError(f"migration {path.name} changed after it was applied")
                continue
            await conn.execute(text)
            await conn.execute(
                "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)", path.name, digest
            )
            applied_now.append(path.name)
    return applied_now
