"""Kafka redelivers a batch after a crash or a rebalance: whatever the batch held — inputs,
contract breaches, inputs refused for their content — the second delivery has no effect and
never blocks the partition."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from support import cotisation, envelope, nir

from contracts import topics
from services.adapters.runtime.handler import BatchHandler
from services.domain.collection.processor import CollectionProcessor
from services.tools.audit.feed import FakeRecord, prepare_store

pytestmark = pytest.mark.integration

TOPIC = "cotisations"
KEY = nir(31).encode()  # every record here is about this person: the contract's key


def record(offset: int, value: bytes | None) -> FakeRecord:
    return FakeRecord(TOPIC, 0, offset, KEY, value)


async def test_a_redelivered_batch_has_no_effect_even_with_refused_inputs(
    database_url: str, unique: str
) -> None:
    store = await prepare_store(database_url, f"r_{unique}")
    try:
        handler = BatchHandler(store, CollectionProcessor, {TOPIC: topics.COTISATIONS_EVENT_TYPES})
        await handler.catch_up()
        n = nir(31)
        first = cotisation("COT-R", n, debut="2018-01-01")
        conflicting = cotisation("COT-R", n, debut="2018-01-01", montant=1)
        batch = [
            record(0, envelope(*first, event_id=str(uuid.uuid4()))),
            record(1, envelope(*conflicting, event_id=str(uuid.uuid4()))),  # refused: content
            record(2, b"{not json"),  # refused: contract
        ]
        report = await handler.handle(batch)
        assert sum(report.rejected.values()) == 2 and report.duplicates == 0
        head = await store.head()

        again = await asyncio.wait_for(handler.handle(batch), timeout=10)

        assert again.attempts == 1, "the redelivery was retried as if it had failed"
        assert again.duplicates == 3 and not again.rejected and not again.inputs
        assert await store.head() == head
    finally:
        await store.pool.close()
