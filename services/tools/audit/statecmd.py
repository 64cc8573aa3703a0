"""`mandat state …`: the decision state the services read by key (docs/architecture.md).

It is written in the transaction of each append, so a running service keeps it current by
itself. These commands are for a store whose events were written without it: a store from
before the state tables (its migration), or one bulk-loaded.
"""

from __future__ import annotations

import argparse
import time

from services.adapters.runtime import state
from services.domain.catalog import ServiceDescription, selected
from services.tools.audit.options import Shard, each_store


async def catch_up_cmd(args: argparse.Namespace) -> int:
    """Fold into each store's decision state the events it does not reflect yet (all of
    them with `--from-zero`)."""
    for service in selected(args.service):

        async def catch_up_one(shard: Shard, service: ServiceDescription = service) -> None:
            """One store's state (each shard has its own, folded from its own events)."""
            store = shard.store
            async with store.transaction() as tx:
                before = 0 if args.from_zero else await tx.state_position()
            started = time.perf_counter()
            head = await state.catch_up(store, service.view, from_zero=args.from_zero)
            seconds = time.perf_counter() - started
            print(
                f"{service.name} (schema {store.schema}): decision state folded from #{before}"
                f" up to #{head} ({head - before:,} events) in {seconds:.1f} s"
            )

        await each_store(args, service, catch_up_one)
    return 0
