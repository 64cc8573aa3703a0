"""Traces without a broker: W3C trace context read from hostile headers, masking of what is
exported, the sampler's rules, log lines that say where in a trace they are, the relay's
outbound header, and FastStream's middleware never failing a batch by itself."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import nullcontext
from types import SimpleNamespace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from contracts.nir import make_nir
from services.adapters.eventstore.port import Transaction
from services.adapters.kafka.relay import Outgoing
from services.adapters.runtime import tracing
from services.adapters.runtime.logs import JsonFormatter

pytestmark = pytest.mark.unit

NIR = make_nir("2550814168025")
VALID = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.disable()


def test_a_valid_traceparent_names_a_remote_span_and_formats_back_the_same() -> None:
    ctx = tracing.parse_traceparent(VALID.encode())
    assert ctx is not None and ctx.is_remote and ctx.trace_flags.sampled
    assert tracing.format_traceparent(ctx) == VALID
    later = tracing.parse_traceparent(b"cc-" + VALID[3:].encode() + b"-what-comes-next")
    assert later is not None, "a later version may add fields"


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        b"",
        VALID.upper().encode(),
        VALID[:-1].encode(),
        (VALID + "-x").encode(),
        ("ff" + VALID[2:]).encode(),
        b"00-" + b"0" * 32 + b"-b7ad6b7169203331-01",
        b"00-0af7651916cd43dd8448eb211c80319c-" + b"0" * 16 + b"-01",
        VALID.encode() + b"\n",
        b"\xff" * 55,
        VALID.encode() * 20,
    ],
)
def test_anything_but_a_well_formed_traceparent_is_no_span(value: object) -> None:
    assert tracing.parse_traceparent(value) is None


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(["traceparent", "TraceParent", "tracestate"]), st.text()),
            st.one_of(st.none(), st.binary(max_size=200), st.text(max_size=100)),
        ),
        max_size=6,
    )
)
def test_no_header_makes_reading_the_trace_context_raise(headers: list[Any]) -> None:
    ctx = tracing.inbound_context(headers)
    assert ctx is None or (ctx.is_valid and ctx.is_remote)


def test_two_traceparent_headers_are_ambiguous_and_ignored() -> None:
    one = [("traceparent", VALID.encode())]
    assert tracing.inbound_context(one) is not None
    assert tracing.inbound_context(one * 2) is None


def test_what_is_exported_is_masked(spans: InMemorySpanExporter) -> None:
    with tracing.tracer().start_as_current_span(
        f"about {NIR}", attributes={"messaging.message.conversation_id": NIR, "n": (NIR, "x")}
    ) as span:
        span.add_event("seen", {"key": f"nir={NIR}"})
        span.set_status(Status(StatusCode.ERROR, f"refused {NIR}"))
    tracing.flush()
    (exported,) = spans.get_finished_spans()
    assert NIR not in repr(tracing.span_record(exported))
    assert NIR not in exported.name and NIR not in (exported.status.description or "")
    assert NIR not in repr(exported.events[0].attributes)
    assert exported.attributes is not None
    pair = exported.attributes["n"]
    assert isinstance(pair, tuple) and pair[1] == "x"


def test_a_query_is_traced_inside_a_trace_only(spans: InMemorySpanExporter) -> None:
    tracer = tracing.tracer()
    with tracer.start_as_current_span("poll", attributes={"db.system": "postgresql"}) as root:
        assert not root.is_recording()
    with (
        tracer.start_as_current_span("batch"),
        tracer.start_as_current_span("q", attributes={"db.system": "postgresql"}) as child,
    ):
        assert child.is_recording()
    assert {s.name for s in spans.get_finished_spans()} == {"batch", "q"}


def test_nothing_is_recorded_while_tracing_is_off() -> None:
    assert not tracing.active()
    with tracing.tracer().start_as_current_span("x") as span:
        assert not span.is_recording()
    assert tracing.broker_middlewares() == ()


def test_a_line_logged_in_a_span_says_which_and_a_console_span_is_a_json_line(
    spans: InMemorySpanExporter, caplog: pytest.LogCaptureFixture
) -> None:
    formatter = JsonFormatter("collection")
    record = logging.LogRecord("services.x", logging.INFO, __file__, 1, "outside", None, None)
    assert "trace_id" not in json.loads(formatter.format(record))
    with tracing.tracer().start_as_current_span("inside") as span:
        entry = json.loads(formatter.format(record))
        ctx = span.get_span_context()
    assert entry["trace_id"] == f"{ctx.trace_id:032x}"
    assert entry["span_id"] == f"{ctx.span_id:016x}"
    tracing.flush()
    with caplog.at_level(logging.INFO, logger="mandat.trace"):
        tracing.LogSpanExporter().export(spans.get_finished_spans())
    (line,) = [formatter.format(r) for r in caplog.records if r.name == "mandat.trace"]
    assert "\n" not in line
    shown = json.loads(line)["span"]
    assert shown["name"] == "inside" and shown["trace_id"] == entry["trace_id"]


class _Routes:
    topics = ("decisions", "rejections")
    event_types = frozenset({"X"})

    def __init__(self, upstream_trace: bool = False) -> None:
        self.upstream_trace = upstream_trace

    def route(self, event: Any) -> Outgoing:
        traced = [("traceparent", b"upstream"), ("tracestate", b"u=1")]
        headers = [*(traced if self.upstream_trace else []), ("event_id", b"e")]
        return Outgoing("rejections", b"k", b"v", headers, event.position)


def test_the_relay_writes_its_own_span_on_what_it_publishes(
    spans: InMemorySpanExporter,
) -> None:
    routes = tracing.TracedRoutes(_Routes())
    event = SimpleNamespace(position=7)
    outside = routes.route(event)
    assert outside is not None
    assert outside.headers == _Routes().route(event).headers  # outside a span
    with tracing.tracer().start_as_current_span("mandat.relay.publish") as span:
        out = routes.route(event)
    assert out is not None
    headers = dict(out.headers)
    assert [k for k, _ in out.headers].count("traceparent") == 1 and "tracestate" not in headers
    assert headers["event_id"] == b"e"
    assert headers["traceparent"] == tracing.format_traceparent(span.get_span_context()).encode()


def test_a_rejected_copy_with_its_upstream_trace_goes_out_untouched(
    spans: InMemorySpanExporter,
) -> None:
    routes = tracing.TracedRoutes(_Routes(upstream_trace=True))
    event = SimpleNamespace(position=7)
    with tracing.tracer().start_as_current_span("mandat.relay.publish"):
        out = routes.route(event)
    assert out is not None
    assert out.headers == _Routes(upstream_trace=True).route(event).headers


class _Unreadable:
    """A message whose headers FastStream's telemetry cannot read."""

    body = b""
    correlation_id = message_id = "m"
    raw_message = ()

    @property
    def batch_headers(self) -> Any:
        raise ValueError("unreadable")

    headers = batch_headers


async def test_the_consume_middleware_failing_by_itself_hands_the_batch_over(
    spans: InMemorySpanExporter,
) -> None:
    from faststream._internal.context import ContextRepo

    (factory,) = tracing.broker_middlewares()
    handled: list[object] = []

    async def handler(message: object) -> str:
        handled.append(message)
        return "done"

    middleware = factory((), context=ContextRepo())
    assert await middleware.consume_scope(handler, _Unreadable()) == "done"
    assert len(handled) == 1

    async def failing(message: object) -> None:
        handled.append(message)
        raise RuntimeError("the handler's own failure")

    record = SimpleNamespace(topic="t", partition=0, offset=1, key=None)
    readable = SimpleNamespace(
        raw_message=(record,),
        body=[b"x"],
        batch_headers=[{}],
        headers={},
        message_id="m",
        correlation_id="c",
    )
    middleware = factory((record,), context=ContextRepo())
    with pytest.raises(RuntimeError, match="handler's own"):  # not swallowed, not retried
        await middleware.consume_scope(failing, readable)
    await middleware.after_processed(RuntimeError, None, None)
    assert len(handled) == 2, "called once, in the span"
    tracing.flush()
    (consumed,) = [s for s in spans.get_finished_spans() if s.name == "t process"]
    assert consumed.status.status_code.name == "ERROR"


def test_a_ratio_of_zero_records_no_trace_but_still_propagates() -> None:
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False, ratio=0.0)
    try:
        with tracing.tracer().start_as_current_span("batch") as batch:
            assert not batch.is_recording() and batch.get_span_context().is_valid
            record = SimpleNamespace(topic="t", partition=0, offset=1, headers=[])
            # a fake transaction on purpose: an unsampled batch must not touch it at all
            tx = cast(Transaction, SimpleNamespace())
            assert isinstance(tracing.deciding(tx, record, None), type(nullcontext()))
            out = tracing.TracedRoutes(_Routes()).route(SimpleNamespace(position=1))
        assert out is not None
        traceparent = dict(out.headers)["traceparent"]
        assert traceparent is not None and traceparent.endswith(b"-00")
        tracing.flush()
        assert exporter.get_finished_spans() == ()
    finally:
        tracing.disable()
