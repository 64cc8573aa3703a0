"""A record whose processing fails every time is isolated, not retried forever: it is
rejected with reason processing_error (its class, never its content), and the records around
it, before and after on the same partition, are decided exactly once. A dependency that is
down is not such a failure (the fault tests show nothing valid is then rejected)."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid

import pytest
from support import (
    Feed,
    affiliation,
    assert_decided_exactly_once,
    convention,
    cotisation,
    nir,
    organisme,
    publish_many,
    read_topics,
    send_registry,
    store_events,
)

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.runtime.apps import build_runtime, service_spec
from services.adapters.runtime.handler import PROCESSING_ERROR
from services.adapters.runtime.service import ServiceRuntime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.collection.processor import CollectionProcessor
from services.domain.kernel.processing import Input, Outcome, decision_id
from services.tools.audit.redrive import redrive

pytestmark = pytest.mark.integration

FINAL = frozenset({"EncaissementDelegue", "EncaissementNonDelegue"})


class FaultyProcessor(CollectionProcessor):
    """The real processor, with two bugs its content triggers: one in the rules (an
    exception), one the database refuses at commit (a NUL character in jsonb)."""

    def process(self, message: Input) -> Outcome:
        cotisation_id = getattr(message.payload, "cotisation_id", "")
        if cotisation_id.startswith("BOOM-RULES"):
            raise ZeroDivisionError("a bug in the rules")
        outcome = super().process(message)
        if cotisation_id.startswith("BOOM-COMMIT") and outcome.events:
            outcome.events[0][2].payload["cotisation_id"] += "\x00"
        return outcome


async def test_a_poison_record_is_isolated_and_its_partition_goes_on(
    settings: ServiceSettings,
) -> None:
    s = settings.model_copy(update={"topic_partitions": 1})  # all on one partition
    spec = dataclasses.replace(service_spec("collection", s), new_processor=FaultyProcessor)
    runtime = ServiceRuntime(spec, s)
    people = [nir(900 + i) for i in range(40)]
    facts = [cotisation(f"COT-P{i}", n) for i, n in enumerate(people)]
    facts[10] = cotisation("BOOM-RULES-1", people[10])
    facts[25] = cotisation("BOOM-COMMIT-1", people[25])
    failures: list[str] = []
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        assert runtime.handler is not None
        runtime.handler.on_retry = lambda exc: failures.append(type(exc).__name__)
        await send_registry(
            feed, s, s.collection_schema, organisme("OC-P"), convention("CNV-P", "OC-P")
        )
        for n in people:
            await feed.send(s.topic_referentiel, affiliation(n, "OC-P"))
        started = time.monotonic()
        ids = await publish_many(feed, s.topic_cotisations, facts)
        valid = [event_id for i, event_id in enumerate(ids) if i not in (10, 25)]
        await assert_decided_exactly_once(
            s, s.collection_schema, s.topic_reglements_cotisations, FINAL, valid
        )
        rejected = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_rejets_collection],
            lambda m: len(m) >= 2,
            timeout=60,
        )
        elapsed = time.monotonic() - started
        assert runtime.handler is not None
        assert runtime.handler.stalled_seconds() == 0.0
        assert (await runtime.probe())["ready"]

    assert len(rejected) == 2, [m.headers for m in rejected]
    # isolated by the path each takes: the rules' bug at once, the commit's after it failed
    # in its batch and twice alone
    assert "RecordFailure" in failures
    assert failures.count("UntranslatableCharacterError") >= 2
    by_id = {m.json["payload"]["cotisation_id"]: m for m in rejected}
    assert set(by_id) == {"BOOM-RULES-1", "BOOM-COMMIT-1"}
    assert by_id["BOOM-RULES-1"].headers["reject_reason"] == (
        f"{PROCESSING_ERROR}: ZeroDivisionError".encode()
    )
    assert (
        by_id["BOOM-COMMIT-1"].headers["reject_reason"].startswith(f"{PROCESSING_ERROR}: ".encode())
    )
    for message in rejected:
        assert message.headers["reject_kind"] == PROCESSING_ERROR.encode()
        assert message.json["event_id"] in (ids[10], ids[25])  # the record as it came
    rows = await store_events(s.database_url.get_secret_value(), s.collection_schema)
    inputs = [r for r in rows if r["event_type"] == "CotisationDue"]
    assert len(inputs) == 38  # the two poison records are not inputs: they are rejections
    assert elapsed < 60

    # the bug fixed (the real processor), the two are re-driven -- twice: each is decided
    # exactly once, and its input names the rejection it came from
    dsn = s.database_url.get_secret_value()
    pool = await create_pool(dsn, s.collection_schema, min_size=1, max_size=2)
    try:
        store = EventStore(pool, s.collection_schema)
        async with build_runtime("collection", s).running():
            first = await redrive(store, "collection", s.kafka_bootstrap_servers)
            again = await redrive(store, "collection", s.kafka_bootstrap_servers)
            assert (first.sent, again.sent) == (2, 2)
            await assert_decided_exactly_once(
                s, s.collection_schema, s.topic_reglements_cotisations, FINAL, ids
            )
    finally:
        await pool.close()
    rows = await store_events(dsn, s.collection_schema)
    redriven = [json.loads(r["metadata"]) for r in rows if r["event_type"] == "CotisationDue"]
    provenance = {m["redrive_of"] for m in redriven if "redrive_of" in m}
    rejection_ids = {str(r["event_id"]) for r in rows if r["event_type"] == "MessageRejete"}
    assert len(provenance) == 2 and provenance <= rejection_ids
    assert len(redriven) == 40


async def test_an_input_taking_another_s_decision_id_cannot_block_the_partition(
    settings: ServiceSettings,
) -> None:
    """Decision ids are derived from their trigger: an upstream that sends, first, an input
    under the id that another input's decision will take makes that decision collide. The
    collision is the record's doing, not a dependency's: it is isolated, and what follows is
    decided."""
    s = settings.model_copy(update={"topic_partitions": 1})
    runtime = build_runtime("collection", s)
    victim, squatter, after = str(uuid.uuid4()), None, []
    async with runtime.running(), Feed(s.kafka_bootstrap_servers) as feed:
        squatter = str(decision_id(uuid.UUID(victim), 1, "collection"))
        await feed.send(s.topic_cotisations, cotisation("COT-SQ", nir(801)), event_id=squatter)
        await feed.send(s.topic_cotisations, cotisation("COT-VI", nir(802)), event_id=victim)
        after = await publish_many(
            feed, s.topic_cotisations, [cotisation(f"COT-AF{i}", nir(810 + i)) for i in range(5)]
        )
        await assert_decided_exactly_once(
            s,
            s.collection_schema,
            s.topic_reglements_cotisations,
            frozenset({"DecisionEnAttente"}),
            [squatter, *after],
        )
        rejected = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: len(m) >= 1
        )
        assert runtime.handler is not None and runtime.handler.stalled_seconds() == 0.0
    assert [m.json["event_id"] for m in rejected] == [victim]
    assert rejected[0].headers["reject_reason"] == b"processing_error: DuplicateEventError"
