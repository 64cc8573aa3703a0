"""Connections to the store: one pool per service schema, acting as the services' role."""

from __future__ import annotations

import os

import asyncpg
import orjson

from services.adapters.eventstore.migrations import check_schema_name

SERVICE_ROLE = "mandat_service"


class Encoded(bytes):
    """JSON already encoded (UTF-8): written to a jsonb column as it is."""


def _encode_jsonb(value: object) -> bytes:
    # jsonb's binary wire format is a version byte (1) and the JSON text; binary is what
    # COPY needs, and it spares the server a text round trip.
    if isinstance(value, Encoded):
        return b"\x01" + value
    return b"\x01" + orjson.dumps(value)


def _decode_jsonb(data: bytes) -> object:
    return orjson.loads(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb",
        encoder=_encode_jsonb,
        decoder=_decode_jsonb,
        schema="pg_catalog",
        format="binary",
    )


async def create_pool(
    dsn: str,
    schema: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    as_service_role: bool = True,
    login: tuple[str, str] | None = None,
    command_timeout: float | None = 60.0,
) -> asyncpg.Pool:
    """A pool whose connections see `schema` first and, by default, act as the services' role.

    Acting as `mandat_service` (SET ROLE at connection start) means the database, not the
    code, limits what the services can do to the record: SELECT and INSERT.
    """
    check_schema_name(schema)
    # the process in the name: which instance holds what is visible in pg_stat_activity
    name = f"mandat-{schema}-{os.getpid()}"
    settings = {"search_path": schema, "application_name": name}
    credentials: dict[str, str] = {}
    if login is not None:  # a service: its own login role, nothing to switch to
        credentials = {"user": login[0], "password": login[1]}
    elif as_service_role:  # a tool on the owner's connection, acting as the services do
        settings["role"] = SERVICE_ROLE
    pool = await asyncpg.create_pool(
        dsn,
        **credentials,
        min_size=min_size,
        max_size=max_size,
        # a statement that hangs (a lock never granted, a server that stopped answering)
        # fails after this long: the caller retries it and readiness can say so
        command_timeout=command_timeout,
        server_settings=settings,
        init=_init_connection,
    )
    assert pool is not None
    return pool
