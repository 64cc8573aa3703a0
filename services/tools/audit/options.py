"""What every audit command needs from its options: endpoints, schemas, the selection, and
a store opened as the services' role."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.eventstore.shards import Layout, read_layout
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import ServiceDescription
from services.tools.audit.reading import Selection
from services.tools.devstack.stack import read_endpoints

T = TypeVar("T")


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
    args: argparse.Namespace,
    service: ServiceDescription,
    *,
    admin: bool = False,
    schema: str | None = None,
) -> AsyncIterator[EventStore]:
    """The store of `service` (or the one in `schema`, a shard of it), read as the services'
    role (it may not change the record)."""
    schema = schema or settings_of(args).schema_of(service.name)
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


@dataclass(frozen=True, slots=True)
class Shard:
    """One store of a service: the service's own, or one shard of it."""

    store: EventStore
    index: int
    layout: Layout

    @property
    def sharded(self) -> bool:
        return self.layout.sharded

    def labels(self) -> dict[str, object]:
        """What a JSON answer adds to name the shard (nothing for a store in one piece)."""
        if not self.sharded:
            return {}
        return {"schema": self.store.schema, "shard": self.index}


Picker = Callable[[EventStore, Layout], Awaitable[tuple[int, ...]]]
"""Which shards a command needs, read in the hub (e.g. the one its `claims` name)."""


async def each_store(
    args: argparse.Namespace,
    service: ServiceDescription,
    work: Callable[[Shard], Awaitable[T]],
    *,
    jobs: int = 1,
    admin: bool = False,
    only: Picker | None = None,
) -> list[T]:
    """`work` over each store of `service`, in shard order: its own store when it is in one
    piece, else every shard (those `only` picks, when given), `jobs` at a time, each shard
    with a pool of its own opened only while its work runs (1024 shards never hold 1024
    pools). The answers come back in shard order, whatever order they finish in."""
    if jobs < 1:
        raise CommandError(f"--jobs must be at least 1, not {jobs}")
    async with open_store(args, service, admin=admin) as hub:
        try:
            layout = await read_layout(hub.pool, hub.schema)
        except asyncpg.PostgresError as exc:  # e.g. a store migrated, its role not granted
            raise CommandError(f"cannot read the layout of {hub.schema}: {exc}") from exc
        if not layout.sharded:  # the hub is the store
            return [await work(Shard(hub, 0, layout))]
        picked = await only(hub, layout) if only is not None else tuple(range(layout.shards))
    gate = asyncio.Semaphore(jobs)

    async def one(index: int) -> T:
        async with (
            gate,
            open_store(args, service, admin=admin, schema=layout.schemas[index]) as store,
        ):
            return await work(Shard(store, index, layout))

    tasks = [asyncio.ensure_future(one(k)) for k in picked]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:  # one shard failed (the command cannot run): stop the others
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
