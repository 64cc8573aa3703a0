"""Hostile input is normal input: generated Kafka records -- any key, any value (bytes, any
JSON, deeply nested, oversized, null), any headers (null values, binary, NUL in names,
oversized) -- mixed with valid inputs, re-sent inputs and inputs reusing an event id, go
through the real consumer path against real Kafka and PostgreSQL. Each record ends exactly
once: as its input (then decided), as its rejection (relayed once, byte-identical), or as a
duplicate of what is already recorded; nothing is lost, nothing stuck."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import envelope, nir, read_topics, store_events

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


@dataclass
class Sent:
    kind: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    offset: int = -1


def _valid(n: int, *, run: str = "", event_id: str | None = None) -> tuple[str, bytes]:
    person = nir(7000 + n)
    payload = {
        "cotisation_id": f"COT-F{run}{n}",
        "nir": person,
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": "PL-IDF",
        "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
        "montant_cents": 195_000,
        "exigible_le": "2017-02-05",
    }
    return person, envelope("CotisationDue", payload, event_id=event_id)


small_headers = st.lists(
    st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=24)), max_size=3
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@st.composite
def hostile(draw: st.DrawFn) -> Sent:
    """One record an upstream could send, of any kind but the valid ones."""
    kind = draw(
        st.sampled_from(
            ["bytes", "json", "nested", "tombstone", "big", "big_header", "odd_valid", "envelope"]
        )
    )
    key = draw(st.none() | st.binary(max_size=20))
    headers = draw(small_headers)
    value: bytes | None
    if kind == "bytes":
        value = draw(st.binary(max_size=200))
    elif kind == "json":
        value = json.dumps(draw(json_values)).encode()
    elif kind == "nested":
        depth = draw(st.integers(500, 20_000))
        value = b"[" * depth + b"]" * depth
    elif kind == "tombstone":  # the client needs a key or a value
        value, key = None, key if key is not None else b"k"
    elif kind == "big":
        value = (
            b'{"event_type": "CotisationDue", "pad": "'
            + b"x" * draw(st.integers(70_000, 300_000))
            + b'"}'
        )
    elif kind == "big_header":
        value = draw(st.binary(max_size=50))
        headers = [*headers, ("trace", b"h" * draw(st.integers(17_000, 40_000)))]
    elif kind == "odd_valid":  # the shape of a valid input, with a hostile field
        n = draw(st.integers(0, 10**6))
        person, raw = _valid(n)
        document = json.loads(raw)
        field, odd = draw(
            st.sampled_from(
                [
                    ("montant_cents", 2**63 - 1),
                    ("montant_cents", 10**30),
                    ("montant_cents", -5),
                    ("cotisation_id", "C" * 3003),
                    ("cotisation_id", "a\x00b"),
                    ("caisse_de_base", "\u202e" * 70),
                    ("nir", "1" * 15),
                ]
            )
        )
        document["payload"][field] = odd
        value = json.dumps(document).encode()
        key = draw(st.sampled_from([person.encode(), None, b"not-the-nir"]))
    else:  # an envelope with arbitrary JSON in its fields
        document = {
            "event_id": draw(st.one_of(st.uuids().map(str), json_values)),
            "event_type": draw(st.sampled_from(["CotisationDue", "PaiementRecu", "X"])),
            "schema_version": draw(st.sampled_from([1, 2, "1", None])),
            "occurred_at": "2017-01-15T08:00:00Z",
            "source": draw(st.text(max_size=80)),
            "payload": draw(json_values),
        }
        value = json.dumps(document).encode()
    return Sent(kind, key, value, headers)


@st.composite
def batches(draw: st.DrawFn) -> list[Sent]:
    """Valid inputs, their re-sends, event ids reused with other content, hostile records."""
    records: list[Sent] = []
    valid: list[Sent] = []
    run = uuid.uuid4().hex[:8]  # examples share one store: their contributions differ
    for _ in range(draw(st.integers(20, 60))):
        choice = draw(st.sampled_from(["valid", "valid", "hostile", "resend", "reuse"]))
        if choice in ("resend", "reuse") and valid:
            earlier = draw(st.sampled_from(valid))
            if choice == "resend":
                records.append(Sent("resend", earlier.key, earlier.value, []))
            else:
                document = json.loads(earlier.value or b"{}")
                document["payload"]["montant_cents"] += 1
                records.append(Sent("reuse", earlier.key, json.dumps(document).encode(), []))
        elif choice == "hostile":
            records.append(draw(hostile()))
        else:
            person, value = _valid(len(records), run=run, event_id=str(uuid.uuid4()))
            headers = draw(small_headers)
            sent = Sent("valid", person.encode(), value, headers)
            valid.append(sent)
            records.append(sent)
    return records


async def _consumed(s: ServiceSettings, topic: str, end: int, timeout: float = 90.0) -> None:
    """Wait until the service's group committed past `end` on the topic's partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            offsets = await admin.list_consumer_group_offsets(s.collection_group)
            committed = {tp.topic: meta.offset for tp, meta in offsets.items()}
            if committed.get(topic, -1) >= end:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"the consumer did not commit past offset {end} in {timeout}s")
    finally:
        await admin.close()


async def _play(s: ServiceSettings, records: list[Sent]) -> Counter[str]:
    topic = s.topic_cotisations
    runtime = build_runtime("collection", s)
    async with runtime.running():
        producer = AIOKafkaProducer(
            bootstrap_servers=s.kafka_bootstrap_servers, max_request_size=2_000_000
        )
        await producer.start()
        try:
            for record in records:
                meta = await producer.send_and_wait(
                    topic, record.value, key=record.key, headers=record.headers
                )
                record.offset = meta.offset
        finally:
            await producer.stop()
        await _consumed(s, topic, records[-1].offset + 1)
        assert runtime.handler is not None and runtime.handler.stalled_seconds() == 0.0
        state = await runtime.probe()
        assert state["ready"] and not state["reasons"], state

        rows = await store_events(s.database_url.get_secret_value(), s.collection_schema)
        ended: Counter[int] = Counter()
        rejections: dict[int, dict[str, Any]] = {}
        for row in rows:
            payload, metadata = json.loads(row["payload"]), json.loads(row["metadata"])
            if row["event_type"] == "MessageRejete" and payload["topic"] == topic:
                ended[payload["offset"]] += 1
                rejections[payload["offset"]] = payload
            elif row["event_type"] == "CotisationDue" and metadata["origin"]["topic"] == topic:
                ended[metadata["origin"]["offset"]] += 1
        outcomes: Counter[str] = Counter()
        for record in records:
            count = ended[record.offset]
            if record.kind == "resend":
                assert count == 0, f"a re-sent input was recorded again: {record.kind}"
                outcomes["duplicate"] += 1
                continue
            assert count == 1, f"{record.kind} record at {record.offset} ended {count} times"
            rejected = rejections.get(record.offset)
            if record.kind == "valid":
                assert rejected is None, rejected and rejected["reason"]
            elif record.kind in ("reuse", "nested", "tombstone", "big", "big_header", "bytes"):
                assert rejected is not None, f"{record.kind} record was accepted"
            if record.kind == "reuse":
                assert rejected is not None and rejected["field"] == "event_id"
            if rejected is not None:  # kept byte for byte
                value = rejected["value"]
                assert (None if value is None else base64.b64decode(value)) == record.value
                key = rejected["key"]
                assert (None if key is None else base64.b64decode(key)) == record.key
                assert not re.search(r"\d{13}", rejected["reason"]), "a NIR-like run in a reason"
            outcomes["rejected" if rejected is not None else "recorded"] += 1

        # every rejection reaches its topic once, untouched (the relay still running)
        expected = {r.offset for r in records if r.offset in rejections}
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_rejets_collection],
            lambda m: expected <= {int(x.headers["source_offset"]) for x in m},
            timeout=60,
        )
        mine = [m for m in got if m.headers["source_topic"].decode() == topic]
        per_offset = Counter(int(m.headers["source_offset"]) for m in mine)
        assert set(per_offset) >= expected and max(per_offset.values(), default=1) == 1
        by_offset = {r.offset: r for r in records}
        for message in mine:
            sent = by_offset.get(int(message.headers["source_offset"]))
            if sent is not None:
                assert message.value == sent.value and message.key == sent.key
        return outcomes


TRIED: Counter[str] = Counter()


@settings(
    # a short run in the suite; `MANDAT_FUZZ_EXAMPLES=50 pytest tests/integration/test_fuzz.py
    # -s` for a long one (it prints what it tried)
    max_examples=int(os.environ.get("MANDAT_FUZZ_EXAMPLES", "4")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(records=batches())
def test_every_generated_record_ends_exactly_once(
    settings: ServiceSettings, records: list[Sent]
) -> None:
    s = settings.model_copy(update={"topic_partitions": 1})  # the order they were sent in
    outcomes = asyncio.run(_play(s, records))
    TRIED.update(r.kind for r in records)
    TRIED.update({f"outcome:{k}": n for k, n in outcomes.items()})
    print(f"fuzz: {len(records)} records, {dict(outcomes)}; so far {dict(TRIED)}")
