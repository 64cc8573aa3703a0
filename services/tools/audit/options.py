"""What every audit command needs from its options: endpoints, schemas, the selection, and
a store opened as the services' role."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import ServiceDescription
from services.tools.audit.reading import Selection
from services.tools.devstack.stack import read_endpoints


class CommandError(Exception):
    """The command cannot run (exit code 2)."""


def endpoint(given: str | None, name: str) -> str:
    """An endpoint (DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS): the option, else the
    environment, else `.run/endpoints.env`."""
    found = given or os.environ.get(name) or read_endpoints().get(name)
    if not found:
        raise CommandError(f"no {name}: pass it, export it, or start the stack (`mandat up`)")
    return found


def settings_of(args: argparse.Namespace) -> ServiceSettings:
    """The services' settings (schemas, topics), with the schema options applied."""
    overrides = {
        k: v
        for k, v in (
            ("collection_schema", args.collection_schema),
            ("benefits_schema", args.benefits_schema),
        )
        if v
    }
    return ServiceSettings(**overrides)


def selection_of(args: argparse.Namespace) -> Selection:
    """A fresh selection from the range and subject options."""
    return Selection(
        args.from_position, args.to_position, args.since, args.until, getattr(args, "subject", None)
    )


@asynccontextmanager
async def open_store(
    args: argparse.Namespace, service: ServiceDescription, *, admin: bool = False
) -> AsyncIterator[EventStore]:
    """The store of `service`, read as the services' role (it may not change the record)."""
    schema = settings_of(args).schema_of(service.name)
    try:
        pool = await create_pool(
            endpoint(args.database_url, "DATABASE_URL"),
            schema,
            min_size=1,
            max_size=2,
            as_service_role=not admin,
            command_timeout=None,
        )  # long reads of a whole store
    except ValueError as exc:  # a schema name that cannot be one
        raise CommandError(str(exc)) from exc
    except (OSError, asyncpg.PostgresError) as exc:
        raise CommandError(f"cannot connect to PostgreSQL: {exc}") from exc
    try:
        store = EventStore(pool, schema)
        if not await store.exists():
            raise CommandError(f"no event store in schema {schema!r} ({service.name})")
        yield store
    finally:
        await pool.close()
