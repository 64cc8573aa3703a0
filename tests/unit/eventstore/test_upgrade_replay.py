"""A store recorded by the version before revisions in steps (cb673e0: a fact about an
organism revised everyone's subjects in its own transaction) still verifies: no
`revision_steps_start` was recorded in it, so replay revises its facts as they were.

The fixture data/store_recorded_by_cb673e0.json is the record cb673e0's batch handler made
of five facts and inputs (tests/support builders), dumped as it was stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest

from services.adapters.eventstore import NewEvent
from services.adapters.eventstore.memory import MemoryEventStore
from services.domain.catalog import COLLECTION
from services.tools.audit.replay import replay

pytestmark = pytest.mark.unit

RECORDED = Path(__file__).parent / "data" / "store_recorded_by_cb673e0.json"


async def test_a_store_recorded_with_revisions_at_once_still_verifies() -> None:
    recorded = json.loads(RECORDED.read_text())
    store = MemoryEventStore()
    async with store.transaction() as tx:
        for e in recorded["events"]:
            event = NewEvent(UUID(e["event_id"]), e["event_type"], e["payload"], e["metadata"])
            tx.append_at(e["stream_id"], e["stream_version"], event)
    store.revisions_start = recorded["revisions_start"]
    assert [e.event_type for e in store.events][-2:] == ["ConventionResiliee", "EncaissementRevise"]
    summary = await replay(cast(Any, store), COLLECTION)
    assert summary.ok, [m.as_dict() for m in summary.mismatches]
