"""One input's trace, through a real Kafka broker and a real PostgreSQL: FastStream's consume
span, then parse, append and decide under it, then the relay's publish span in a trace of
its own that links to the append which recorded the decision, and whose context the
published decision carries. Hostile trace headers are ignored, and trace context stays out
of the record: the hash chain holds and replay matches."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from support import cotisation, envelope, key_of, nir, read_topics

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.pool import create_pool
from services.adapters.runtime import tracing
from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION
from services.tools.audit.replay import replay

pytestmark = pytest.mark.integration

UPSTREAM_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
UPSTREAM_SPAN = 0xB7AD6B7169203331
UPSTREAM = f"00-{UPSTREAM_TRACE:032x}-{UPSTREAM_SPAN:016x}-01".encode()
Headers = list[tuple[str, bytes | None]]
HOSTILE: list[Headers] = [
    [("traceparent", b"\xff\xfe\x00garbage")],
    [("traceparent", None)],
    [("traceparent", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01")],  # all-zero trace id
    [("traceparent", b"ff-" + b"1" * 32 + b"-" + b"1" * 16 + b"-01")],  # version ff
    [("traceparent", UPSTREAM + b"-extra")],  # version 00 with more fields
    [("traceparent", b"0" * 5_000)],  # long, under the contract's 16 KiB of headers
    [("traceparent", UPSTREAM), ("traceparent", UPSTREAM)],  # two: ambiguous
    [("tracestate", b"\x00" * 300), ("baggage", b"\xc3(=%%%;;,,")],
]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.disable()


def one(found: list[ReadableSpan], what: str) -> ReadableSpan:
    assert len(found) == 1, f"{what}: {[s.name for s in found]}"
    return found[0]


def parent_of(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, span.name
    return one([s for s in spans if s.context.span_id == span.parent.span_id], span.name)


def attribute(span: ReadableSpan, key: str) -> AttributeValue:
    assert span.attributes is not None, span.name
    return span.attributes[key]


def position_of(span: ReadableSpan, key: str) -> int:
    """A store position a span holds (an int attribute)."""
    value = attribute(span, key)
    assert isinstance(value, int), (span.name, key, value)
    return value


async def send(s: ServiceSettings, messages: list[tuple[bytes, bytes, Headers]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for key, value, headers in messages:
            await producer.send_and_wait(s.topic_cotisations, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def test_one_input_is_followed_from_its_record_to_its_published_decision(
    settings: ServiceSettings, spans: InMemorySpanExporter
) -> None:
    s, n = settings, nir(700)
    fact = cotisation("COT-T1", n, debut="2018-01-01")
    event_id = "4d7f2f8e-6c1a-4b59-9d3e-2f6a1c0b7e11"
    async with build_runtime("collection", s).running():
        await send(
            s, [(key_of(fact[1]), envelope(*fact, event_id=event_id), [("traceparent", UPSTREAM)])]
        )
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_cotisations], lambda m: len(m) >= 1
        )
    tracing.flush()
    finished = list(spans.get_finished_spans())
    decision = got[0]

    decide = one(
        [
            x
            for x in finished
            if x.name == "mandat.decide" and (x.attributes or {}).get("mandat.event_id") == event_id
        ],
        "the input's decide span",
    )
    # the upstream span is a link of the input's decide span, not its parent
    assert [(k.context.trace_id, k.context.span_id) for k in decide.links] == [
        (UPSTREAM_TRACE, UPSTREAM_SPAN)
    ]
    append = parent_of(decide, finished)
    assert append.name == "mandat.append"
    consume = parent_of(append, finished)
    assert consume.name == f"{s.topic_cotisations} process" and consume.kind == SpanKind.CONSUMER
    parse = one(
        [x for x in finished if x.name == "mandat.parse" and x.parent == consume.context],
        "the batch's parse span",
    )
    assert parse.context.trace_id == consume.context.trace_id
    position = int(decision.headers["store_position"])
    first = position_of(append, "mandat.store.first_position")
    assert first <= position <= position_of(append, "mandat.store.position")
    assert position_of(decide, "mandat.store.position") >= position
    # across the store: the relay's span, a root of its own, links to that append
    publish = one(
        [
            x
            for x in finished
            if x.name == "mandat.relay.publish"
            and position_of(x, "mandat.store.first_position")
            <= position
            <= position_of(x, "mandat.store.position")
        ],
        "the relay span that published the decision",
    )
    assert publish.parent is None and publish.kind == SpanKind.PRODUCER
    assert (append.context.trace_id, append.context.span_id) in {
        (k.context.trace_id, k.context.span_id) for k in publish.links
    }
    # and the decision carries the relay span, for a downstream consumer to continue
    ctx = tracing.parse_traceparent(decision.headers["traceparent"])
    assert ctx is not None
    assert (ctx.trace_id, ctx.span_id) == (publish.context.trace_id, publish.context.span_id)
    # the store's queries are in the batch's trace; none is traced outside one
    queries = [x for x in finished if (x.attributes or {}).get("db.system")]
    assert any(q.parent == append.context for q in queries)
    assert all(q.parent is not None for q in queries)

    # trace context is not part of the record: the chain holds, replay matches, and the
    # recorded content does not mention the trace
    pool = await create_pool(
        s.database_url.get_secret_value(), s.collection_schema, as_service_role=False
    )
    try:
        store = EventStore(pool, s.collection_schema)
        assert (await store.verify_chain()).ok
        summary = await replay(store, COLLECTION)
        assert summary.ok and summary.decisions_checked >= 1
        for event in await store.read_all(0, 1000):
            text = repr((event.payload, event.metadata))
            assert f"{consume.context.trace_id:032x}" not in text
            assert f"{UPSTREAM_TRACE:032x}" not in text
    finally:
        await pool.close()


async def test_malformed_trace_headers_are_ignored_and_every_record_is_decided(
    settings: ServiceSettings, spans: InMemorySpanExporter
) -> None:
    s = settings
    messages: list[tuple[bytes, bytes, Headers]] = []
    ids: list[str] = []
    for i, headers in enumerate(HOSTILE):
        fact = cotisation(f"COT-H{i}", nir(710 + i), debut="2018-01-01")
        ids.append(f"5e8a3b1c-0f2d-4c6e-9a7b-{i:012d}")
        messages.append((key_of(fact[1]), envelope(*fact, event_id=ids[-1]), headers))
    async with build_runtime("collection", s).running():
        await send(s, messages)
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations, s.topic_rejets_collection],
            lambda m: len(m) >= len(HOSTILE),
        )
    tracing.flush()
    assert len(got) == len(HOSTILE)
    assert {m.topic for m in got} == {s.topic_reglements_cotisations}, "none is rejected"
    assert all(tracing.parse_traceparent(m.headers["traceparent"]) for m in got)
    decides = [
        x
        for x in spans.get_finished_spans()
        if x.name == "mandat.decide" and (x.attributes or {}).get("mandat.event_id") in ids
    ]
    assert {attribute(x, "mandat.event_id") for x in decides} == set(ids)
    assert all(not x.links for x in decides), "a malformed or ambiguous traceparent is no link"


async def test_a_rejected_copy_keeps_its_upstream_trace_and_one_without_gets_the_relay_s(
    settings: ServiceSettings, spans: InMemorySpanExporter
) -> None:
    s = settings
    async with build_runtime("collection", s).running():
        await send(s, [(b"k", b"{not json", [("traceparent", UPSTREAM), ("x", b"kept")])])
        await send(s, [(b"k", b"{not json either", [("x", b"kept")])])
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: len(m) >= 2
        )
    tracing.flush()
    traced = next(m for m in got if m.value == b"{not json")
    assert traced.headers["x"] == b"kept" and traced.headers["traceparent"] == UPSTREAM
    bare = next(m for m in got if m.value == b"{not json either")
    ctx = tracing.parse_traceparent(bare.headers["traceparent"])
    assert ctx is not None and ctx.trace_id != UPSTREAM_TRACE
    publish = [x for x in spans.get_finished_spans() if x.name == "mandat.relay.publish"]
    assert (ctx.trace_id, ctx.span_id) in {(p.context.trace_id, p.context.span_id) for p in publish}


async def test_a_trace_context_already_kept_for_a_position_never_blocks_the_inputs(
    settings: ServiceSettings, spans: InMemorySpanExporter, database_url: str
) -> None:
    """Rows of `trace_contexts` at the positions the service will take (a tail cut and
    taken again, a restore of the events without them): tracing keeps what is there and
    every input is decided, nothing rejected."""
    s = settings
    pool = await create_pool(database_url, s.collection_schema, min_size=1, max_size=1)
    try:
        await pool.execute(
            "INSERT INTO trace_contexts SELECT n, n, $1 FROM generate_series(1, 200) AS n",
            "00-" + "1" * 32 + "-" + "1" * 16 + "-01",
        )
    finally:
        await pool.close()
    facts = [cotisation(f"COT-TC{i}", nir(720 + i), debut="2018-01-01") for i in range(3)]
    async with build_runtime("collection", s).running():
        await send(s, [(key_of(f[1]), envelope(*f), []) for f in facts])
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations, s.topic_rejets_collection],
            lambda m: len(m) >= 3,
        )
    assert sorted(m.topic for m in got) == [s.topic_reglements_cotisations] * 3
