"""A message whose headers are not UTF-8, or that has no value at all, is judged like any
other: the consumer does not get stuck on it, and the messages behind it are decided."""

from __future__ import annotations

import pytest
from support import Feed, cotisation, envelope, nir, read_topics

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


async def test_binary_headers_do_not_stop_the_consumer(settings: ServiceSettings) -> None:
    s, n = settings, nir(77)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await feed.producer.send_and_wait(
            s.topic_cotisations, b"{broken", key=n.encode(), headers=[("trace", b"\xff\xfe")]
        )
        await feed.producer.send_and_wait(s.topic_cotisations, None, key=n.encode())  # tombstone
        fact = cotisation("COT-B1", n, debut="2018-01-01")
        await feed.producer.send_and_wait(
            s.topic_cotisations, envelope(*fact), key=n.encode(), headers=[("x", b"\x80")]
        )
        await feed.send(s.topic_cotisations, cotisation("COT-B2", n, debut="2018-01-01"))
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations, s.topic_rejets_collection],
            lambda m: len(m) >= 4,
        )
    rejected = [m for m in got if m.topic == s.topic_rejets_collection]
    decided = [m for m in got if m.topic == s.topic_reglements_cotisations]
    assert len(rejected) == 2 and rejected[0].headers["trace"] == b"\xff\xfe"  # untouched
    assert rejected[1].value is None  # a tombstone stays a tombstone
    assert sorted(m.json["payload"]["cotisation_id"] for m in decided) == ["COT-B1", "COT-B2"]
