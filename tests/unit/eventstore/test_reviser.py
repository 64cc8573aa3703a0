"""The reviser: the people per step follow how long steps take; a step goes on whatever id
an input took."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, cast

import pytest
from support import affiliation, convention, cotisation, envelope, key_of, nir, organisme, paiement

from services.adapters.eventstore.memory import MemoryEventStore
from services.adapters.runtime.handler import BatchHandler
from services.adapters.runtime.reviser import MAX_PEOPLE, MIN_PEOPLE, Reviser, _next_limit
from services.domain.catalog import COLLECTION
from services.domain.kernel.processing import decision_id
from services.tools.audit.feed import FakeRecord
from services.tools.audit.replay import replay

pytestmark = pytest.mark.unit


def test_steps_that_take_long_get_fewer_people_and_quick_ones_more() -> None:
    assert _next_limit(200, 0.4, 0.1) == 100  # four times too long: half as many
    assert _next_limit(200, 0.025, 0.1) == 400
    assert _next_limit(200, 0.1, 0.1) == 200
    assert _next_limit(15, 10.0, 0.1) == MIN_PEOPLE  # never stuck at nothing
    assert _next_limit(1900, 0.0, 0.1) == MAX_PEOPLE  # nor unbounded


async def test_a_step_whose_id_an_input_took_already_is_recorded_under_another() -> None:
    """An upstream may send an input under any id, a predicted step id too: the step fails
    once on it, then is recorded under a random id, and the task finishes."""
    service = COLLECTION
    store = MemoryEventStore()
    handler = BatchHandler(
        store, lambda view=None: service.new_processor(view=view), dict(service.inputs)
    )
    await handler.catch_up()
    facts = [organisme("OC-M"), affiliation(nir(1), "OC-M"), convention("C1", "OC-M")]
    facts += [cotisation("Q1", nir(1), debut="2017-07-01")]
    facts += [("ConventionResiliee", {"convention_id": "C1", "effet_au": "2017-06-30"})]
    by_type = {t: topic for topic, types in service.inputs.items() for t in types}
    for offset, (kind, payload) in enumerate(facts):
        record = FakeRecord(by_type[kind], 0, offset, key_of(payload), envelope(kind, payload))
        await handler.handle([record])
    opened = next(e for e in store.events if e.event_type == "RevisionsOuvertes")  # the oldest
    step_id = decision_id(uuid.UUID(opened.payload["fait_id"]), -1, service.name)
    squatter = ("PaiementRecu", {**paiement("P1", "Q1", nir(1), 100)[1]})
    record = FakeRecord(
        by_type["PaiementRecu"],
        0,
        9,
        key_of(squatter[1]),
        envelope(*squatter, event_id=str(step_id)),
    )
    await handler.handle([record])  # (decided after Q1's revision: the task had not reached it)
    assert step_id in store.by_id
    reviser = Reviser(handler, idle_seconds=0.01, backoff_max=0.01)
    task = asyncio.create_task(reviser.run())
    try:
        for _ in range(500):
            if not await reviser.pending():
                break
            await asyncio.sleep(0.01)
        assert await reviser.pending() == 0
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    steps = [e for e in store.events if e.event_type == "EtapeDeRevision"]
    assert steps and all(e.event_id != step_id for e in steps)
    summary = await replay(cast(Any, store), service)  # replay reads the id it took
    assert summary.ok, [m.as_dict() for m in summary.mismatches]
