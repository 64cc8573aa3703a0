"""What the PostgreSQL server says about itself (for the benches' reports)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import asyncpg

_SETTING = re.compile(r"[a-z_]+")


async def server_settings(
    conn: asyncpg.Connection | asyncpg.Pool, names: Iterable[str]
) -> dict[str, str]:
    """The current value of each of the server settings `names` (`SHOW`), by name."""
    found: dict[str, str] = {}
    for name in names:
        if not _SETTING.fullmatch(name):  # SHOW takes no parameter: the name is spliced
            raise ValueError(f"not a setting name: {name!r}")
        found[name] = await conn.fetchval(f"SHOW {name}")
    return found
