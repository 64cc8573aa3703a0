"""No work inside a batch grows with the store: the same batch, against a store twenty times
larger, issues the same statements, reads back only what was committed since, and saves
nothing whose size follows the history (no image of the view is written in the batch path)."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from support import nir

from services.adapters.eventstore import EventStore, StoreTransaction
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION
from services.tools.audit.feed import Feeder, prepare_store

pytestmark = pytest.mark.integration


class CountingStore(EventStore):
    """The real store, counting the statements each batch's transaction issues."""

    statements: list[str]
    folded: int

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StoreTransaction]:
        async with super().transaction() as tx:
            log = lambda record: self.statements.append(record.query)  # noqa: E731
            tx.conn.add_query_logger(log)
            read_since = tx.read_since

            async def counted(position: int, limit: int | None = None) -> Any:
                events = await read_since(position, limit)
                self.folded += len(events)
                return events

            # the transaction's method replaced on purpose, to count what it reads
            tx.read_since = counted  # type: ignore[method-assign]
            try:
                yield tx
            finally:
                tx.conn.remove_query_logger(log)


def contribution(n: int) -> dict[str, Any]:
    return {
        "cotisation_id": f"COT-{n}",
        "nir": nir(n),
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": "PL-IDF",
        "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
        "montant_cents": 195_000,
        "exigible_le": "2017-02-05",
    }


async def _measure(settings: ServiceSettings, schema: str, history: int) -> dict[str, Any]:
    dsn = settings.database_url.get_secret_value()
    plain = await prepare_store(dsn, schema)
    store = CountingStore(plain.pool, schema)
    store.statements, store.folded = [], 0
    try:
        feeder = Feeder(store, COLLECTION, settings)
        await feeder.handler.catch_up()
        feeder.message(
            "OrganismeDeclare", {"organisme_id": "OC-F", "nom": "F", "forme_juridique": "MUTUELLE"}
        )
        for start in range(0, history, 2000):  # history: affiliation + contribution each
            for n in range(start, min(start + 2000, history)):
                feeder.message(
                    "AffiliationEnregistree",
                    {
                        "nir": nir(n),
                        "organisme_id": "OC-F",
                        "mode": "CHOIX",
                        "effet_du": "2016-01-01",
                    },
                )
                feeder.message("CotisationDue", contribution(n))
            await feeder.flush()
        head = feeder.handler.processor.view.position
        statements, seconds, folded = [], [], []
        for batch in range(8):  # the same kind of batch, 200 new contributions
            for n in range(200):
                feeder.message("CotisationDue", contribution(10**6 + batch * 1000 + n))
            store.statements, store.folded = [], 0
            started = time.perf_counter()
            await feeder.flush()
            seconds.append(time.perf_counter() - started)
            statements.append(sorted(store.statements))
            folded.append(store.folded)
        return {"head": head, "statements": statements, "seconds": seconds, "folded": folded}
    finally:
        await plain.pool.close()


async def test_the_same_batch_costs_the_same_in_a_store_twenty_times_larger(
    settings: ServiceSettings, unique: str
) -> None:
    small = await _measure(settings, f"fs_{unique}", 500)
    large = await _measure(settings, f"fl_{unique}", 10_000)
    assert large["head"] >= 20 * small["head"] * 0.9  # ~20,000 events against ~1,000
    # the same statements, batch for batch: no query appears or repeats with the size
    assert small["statements"][0] and large["statements"] == small["statements"]
    # each batch folds nothing of the history: only what another writer committed since
    assert small["folded"] == large["folded"] == [0] * 8
    # and takes about as long (a scan or a save of the view would be ~20 times slower)
    ratio = statistics.median(large["seconds"]) / statistics.median(small["seconds"])
    print(
        f"median batch: {statistics.median(small['seconds']) * 1000:.1f} ms at "
        f"{small['head']} events, {statistics.median(large['seconds']) * 1000:.1f} ms at "
        f"{large['head']} events (x{ratio:.2f})"
    )
    assert ratio < 4.0
