"""The dashboard's reader on a real broker: poison records on the decision and rejection
topics (JSON nested 10,000 deep, non-UTF-8, tombstones, huge values and headers, a header
name the Kafka client cannot decode) are counted once and stepped over, the valid records
behind them are counted, a reader failure resumes where it stopped, and an aborted
transaction is never counted."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer
from support import Feed, decision_payload, nir

from services.adapters.runtime.settings import ServiceSettings
from services.tools.dashboard.board import Headers, Outcome
from services.tools.dashboard.server import Dashboard
from services.tools.dashboard.shown import NIR_MASK, render_json

pytestmark = pytest.mark.integration

DEEP_ARRAY = b"[" * 10_000 + b"]" * 10_000
DEEP_OBJECT = b'{"a":' * 10_000 + b"1" + b"}" * 10_000
DEEP_MOTIF = b'{"event_type":"EncaissementNonDelegue","payload":{"motif":' + DEEP_ARRAY + b"}}"

UNDECODABLE_HEADER_NAME = """
import asyncio, sys
from aiokafka import AIOKafkaProducer

class NotUtf8(str):  # the pure-Python record builder encodes header names with .encode()
    def encode(self, *args, **kwargs):
        return b"\\xff\\xfe-name"

async def main(bootstrap, topic, value):
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value.encode(), headers=[(NotUtf8("h"), b"v")])
    finally:
        await producer.stop()

asyncio.run(main(*sys.argv[1:]))
"""


def decision(
    event_type: str = "EncaissementNonDelegue",
    motif: str = "RECOUVREMENT_URSSAF",
    **payload: object,
) -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "schema_version": 1,
            "occurred_at": "2026-01-01T10:00:00Z",
            "source": "collection",
            "correlation_id": None,
            "causation_id": str(uuid.uuid4()),
            "payload": decision_payload(event_type, motif=motif, **payload),
        }
    ).encode()


def publish_with_undecodable_header_name(bootstrap: str, topic: str, value: bytes) -> None:
    """A record whose header name is not UTF-8: Kafka accepts it, aiokafka (in C or Python)
    raises UnicodeDecodeError on every read of it."""
    env = {**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"}
    subprocess.run(
        [sys.executable, "-c", UNDECODABLE_HEADER_NAME, bootstrap, topic, value.decode()],
        env=env,
        check=True,
        timeout=60,
    )


async def until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_poison_records_are_counted_once_and_the_valid_ones_behind_them_too(
    settings: ServiceSettings,
) -> None:
    s = settings
    decisions, rejections = s.topic_reglements_cotisations, s.topic_rejets_collection
    person = nir(4242)
    dashboard = Dashboard(s)
    async with dashboard.running(), Feed(s.kafka_bootstrap_servers) as feed:
        await asyncio.wait_for(dashboard.subscribed.wait(), 60)
        send = feed.producer.send_and_wait
        for poison in (
            DEEP_ARRAY,
            DEEP_OBJECT,
            DEEP_MOTIF,
            b"\xff\xfe not UTF-8",
            None,
            b'{"event_type":"EncaissementDelegue","payload":{"x":"' + b"a" * 900_000 + b'"}}',
        ):
            await send(decisions, poison, key=b"k", headers=[("trace", None), ("bin", b"\x00\xff")])
        publish_with_undecodable_header_name(s.kafka_bootstrap_servers, decisions, decision())
        await send(
            rejections, DEEP_OBJECT, headers=[("reject_reason", DEEP_ARRAY), ("trace", None)]
        )
        await send(rejections, None, key=b"k")  # a tombstone with no header at all
        await send(
            rejections,
            b"\x80" * 1000,
            headers=[("reject_reason", b"r" * 100_000), ("reject_field", None)],
        )
        await send(
            rejections,
            f'{{"nir": "{person}"}}'.encode(),
            headers=[("reject_reason", f"payload.nir: bad key (got '{person}')".encode())],
        )
        # the valid ones behind the poison
        await send(
            decisions, decision("VersementDirect", "AUCUNE_CONVENTION", montant_cents=12_345)
        )
        await send(
            rejections,
            b"{",
            headers=[("event_id", str(uuid.uuid4()).encode()), ("reject_reason", b"not JSON")],
        )

        def collection() -> dict[str, object]:
            state: dict[str, object] = dashboard.board.snapshot()["services"]["collection"]
            return state

        await until(
            lambda: collection()["final"] == 1 and collection()["rejected"] == 5,
            "the valid decision and rejection behind the poison",
        )
        await asyncio.sleep(3)  # a reader looping over the poison would count it again
        state = dashboard.snapshot()
        assert state["services"]["collection"]["unreadable"] == 7
        assert state["services"]["collection"]["final"] == 1
        assert state["services"]["collection"]["rejected"] == 5
        assert dashboard.records_read == 13
        assert dashboard.reader_failures == 0 and state["kafka"]["connected"]
        reasons = [r["reason"] for r in state["rejections"]]
        assert f"payload.nir: bad key (got '{NIR_MASK}')" in reasons
        assert person not in render_json(state)
        assert re.search(r"[0-9]{15}", render_json(state)) is None


async def test_a_reader_failure_resumes_where_it_stopped(settings: ServiceSettings) -> None:
    s = settings
    dashboard = Dashboard(s)
    board_ingest = dashboard.board.ingest
    failed: list[int] = []

    def fail_once(
        service: str,
        role: str,
        value: bytes | None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> Outcome:
        if not failed and dashboard.records_read == 3:
            failed.append(dashboard.records_read)
            raise ConnectionResetError("the broker went away")  # as a network fault would
        return board_ingest(service, role, value, headers, timestamp_ms)

    # the board's method replaced on purpose, for the reader to fail once mid-stream
    dashboard.board.ingest = fail_once  # type: ignore[method-assign]
    async with dashboard.running(), Feed(s.kafka_bootstrap_servers) as feed:
        await asyncio.wait_for(dashboard.subscribed.wait(), 60)
        for n in range(6):  # rejections have no event_id: a re-read would count twice
            await feed.producer.send_and_wait(
                s.topic_rejets_benefits, b"{}", headers=[("reject_reason", f"r{n}".encode())]
            )
        await until(lambda: dashboard.board.rejected["benefits"] == 6, "six rejections")
        await asyncio.sleep(2)
    assert failed == [3] and dashboard.reader_failures == 1
    assert dashboard.records_read == 6 and dashboard.board.rejected["benefits"] == 6
    assert sorted(r.reason for r in dashboard.board.rejections) == [f"r{n}" for n in range(6)]


async def test_an_aborted_transaction_is_never_counted(settings: ServiceSettings) -> None:
    s = settings
    dashboard = Dashboard(s)
    producer = AIOKafkaProducer(
        bootstrap_servers=s.kafka_bootstrap_servers, transactional_id=f"dash-test-{uuid.uuid4()}"
    )
    await producer.start()
    try:
        async with dashboard.running():
            await asyncio.wait_for(dashboard.subscribed.wait(), 60)
            await producer.begin_transaction()
            await producer.send_and_wait(
                s.topic_reglements_prestations,
                decision("PrestationNonTraitee", "AUCUNE_CONVENTION"),
            )
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(
                    s.topic_reglements_prestations,
                    decision("PrestationNonTraitee", "PERIODE_ANTERIEURE_A_2017"),
                )
            await until(
                lambda: dashboard.board.snapshot()["services"]["benefits"]["final"] >= 1,
                "the committed decision",
            )
            await asyncio.sleep(1)
            rows = dashboard.board.snapshot()["services"]["benefits"]["decisions"]
    finally:
        await producer.stop()
    assert [(r["motif"], r["count"]) for r in rows] == [("PERIODE_ANTERIEURE_A_2017", 1)]
