"""A running service signs its store's head outside the database: with a key in its
settings, anchors reach their topic as the store grows, and the store checks against them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from support import Feed, cotisation, nir, publish_many, wait_for_store

from services.adapters.eventstore import EventStore
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.trust.anchors import last_anchor, read_anchors
from services.adapters.trust.signing import load_public_key, write_key_pair
from services.tools.audit.anchored import check_anchors

pytestmark = pytest.mark.integration


async def test_a_running_service_anchors_its_store(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    private, public = write_key_pair(tmp_path / "anchor.pem")
    s = settings.model_copy(
        update={
            "anchor_key_file": str(private),
            "anchor_every_events": 20,
            "anchor_every_seconds": 1.0,
        }
    )
    keys = [load_public_key(public)]
    runtime = build_runtime("collection", s)
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        assert runtime.anchorer is not None
        await publish_many(
            feed, s.topic_cotisations, [cotisation(f"COT-A{i}", nir(300 + i)) for i in range(50)]
        )
        dsn = s.database_url.get_secret_value()
        await wait_for_store(dsn, s.collection_schema, frozenset({"DecisionEnAttente"}), 50)
        assert runtime.handler is not None and runtime.pool is not None
        head = int(await runtime.pool.fetchval("SELECT max(position) FROM events"))
        deadline = time.monotonic() + 60
        anchor = None
        while time.monotonic() < deadline:
            anchor = await last_anchor(
                s.kafka_bootstrap_servers,
                s.topic_audit_anchors,
                service="collection",
                schema=s.collection_schema,
                keys=keys,
            )
            if anchor is not None and anchor.size >= head:
                break
            await asyncio.sleep(0.5)
        assert anchor is not None and anchor.size == head
        assert (await runtime.probe())["stalled"]["anchorer"] == 0.0
        assert runtime.anchorer.stalled_seconds() == 0.0
        check = await check_anchors(
            EventStore(runtime.pool, s.collection_schema),
            "collection",
            await read_anchors(s.kafka_bootstrap_servers, s.topic_audit_anchors),
            keys,
        )
    assert check.ok, check
