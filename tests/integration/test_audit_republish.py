"""`mandat replay republish`: stored events re-emitted to the audit topic, marked as a
replay, through a real Kafka broker; the live topics untouched."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from support import read_topics

from contracts import topics
from services.adapters.eventstore import EventStore
from services.adapters.kafka.outbound import decision_message
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS, COLLECTION
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.sample import record_sample
from services.tools.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(settings: ServiceSettings, database_url: str) -> AsyncIterator[EventStore]:
    collection = await prepare_store(database_url, settings.collection_schema)
    benefits = await prepare_store(database_url, settings.benefits_schema)
    try:
        await record_sample(
            Feeder(collection, COLLECTION, settings), Feeder(benefits, BENEFITS, settings)
        )
        yield collection
    finally:
        await collection.pool.close()
        await benefits.pool.close()


def _argv(settings: ServiceSettings, database_url: str, kafka_bootstrap: str) -> list[str]:
    return [
        "--database-url",
        database_url,
        "--bootstrap-servers",
        kafka_bootstrap,
        "--collection-schema",
        settings.collection_schema,
        "--benefits-schema",
        settings.benefits_schema,
    ]


async def mandat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out + err


async def test_a_range_of_decisions_is_republished_to_the_audit_topic_marked_as_a_replay(
    store: EventStore,
    settings: ServiceSettings,
    database_url: str,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = settings.topic_audit_replay
    code, out = await mandat(
        capsys,
        "replay",
        "republish",
        "--service",
        "collection",
        "--from-position",
        "9",
        "--to-position",
        "25",
        "--topic",
        topic,
        "--replay-id",
        "audit-2024-01",
        *_argv(settings, database_url, kafka_bootstrap),
        "--json",
    )
    assert code == 0, out
    report = json.loads(out)
    stored = {e.position: e for e in await store.read_all(0, 1000)}
    expected = [
        e for p, e in stored.items() if 9 <= p <= 25 and e.event_type in COLLECTION.decision_types
    ]
    assert report["services"][0]["sent"] == len(expected) > 5

    received = await read_topics(kafka_bootstrap, [topic], lambda f: len(f) >= len(expected))
    assert len(received) == len(expected)
    by_position = {int(m.headers["store_position"]): m for m in received}
    assert sorted(by_position) == [e.position for e in expected]
    for position, message in by_position.items():
        live = decision_message(stored[position], topic, "collection")
        assert message.value == live.value and message.key == live.key  # the same envelope
        assert message.headers["replay"] == b"true"
        assert message.headers["replay_id"] == b"audit-2024-01"
        assert message.headers["event_type"] == stored[position].event_type.encode()
        assert json.loads(message.value)["event_id"] == str(stored[position].event_id)

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
    finally:
        await admin.close()
    live_topics = [
        settings.topic_reglements_cotisations,
        settings.topic_reglements_prestations,
        settings.topic_rejets_collection,
        settings.topic_rejets_benefits,
    ]
    assert topic in topics and not topics.intersection(live_topics)


async def test_inputs_can_be_republished_too_and_live_topics_are_refused(
    store: EventStore,
    settings: ServiceSettings,
    database_url: str,
    kafka_bootstrap: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = _argv(settings, database_url, kafka_bootstrap)
    topic = settings.topic_audit_replay + ".inputs"
    code, out = await mandat(
        capsys,
        "replay",
        "republish",
        "--service",
        "benefits",
        "--include-inputs",
        "--topic",
        topic,
        *argv,
    )
    assert code == 0 and "replay_id" in out
    head = len(await store.read_all(0, 1000))  # the collection store: not asked for
    received = await read_topics(kafka_bootstrap, [topic], lambda f: len(f) >= 19)
    types = [m.event_type for m in received]
    assert len(received) == 19 < head  # every event of the benefits store (no rejection)
    assert "PrestationEspecesDue" in types and "OrganismeDeclare" in types
    assert {m.headers["service"] for m in received} == {b"benefits"}

    for live in (topics.REGLEMENTS_COTISATIONS, topics.REJETS_BENEFITS):  # the defaults
        code, out = await mandat(capsys, "replay", "republish", "--topic", live, *argv)
        assert code == 2 and "live topic" in out
    # and the topics a deployment configured
    monkeypatch.setenv("MANDAT_TOPIC_PRESTATIONS", settings.topic_prestations)
    code, out = await mandat(
        capsys, "replay", "republish", "--topic", settings.topic_prestations, *argv
    )
    assert code == 2 and "live topic" in out
