"""Traces (OpenTelemetry): one input followed from its Kafka record to the decision the relay
publishes, across the store between them.

What a trace holds, for a batch of records:

- FastStream's consume span (``<topic> process``, its Kafka telemetry middleware) is the
  batch's root; under it ``mandat.parse`` (the batch parsed by the contract) and one
  ``mandat.append`` per store transaction, with the positions it took. Under the append,
  one ``mandat.decide`` per record handed to the processor (its topic, partition, offset,
  event id and the positions of what it recorded), and the asyncpg instrumentation's spans.
- A record's W3C ``traceparent`` header, when there is exactly one and it is well formed,
  becomes a *link* of its decide span (a batch span cannot have hundreds of parents). Any
  other value -- binary, huge, malformed, repeated -- is ignored: tracing never fails a
  record.
- The append span's context is stored beside the events it appended (``trace_contexts``,
  one row per transaction, outside the hash chain: trace context is operational metadata,
  never part of the record nor of what replay re-executes). The relay's
  ``mandat.relay.publish`` span, one per Kafka transaction, *links* to the append spans of
  the events it publishes, and its context is written as ``traceparent`` on every decision
  and rejection it sends, so a downstream consumer continues the trace.

Tracing is process-wide, like logging, and off unless the settings choose an exporter
(``MANDAT_TRACE_EXPORTER``: ``none``, ``console`` or ``otlp``). Off, every hook below is a
flag test. Whatever is exported passes through `mask_personal` first: a NIR an upstream put
in a header, or a database error quoted in an exception event, never leaves the process.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, TraceFlags

from contracts import mask_personal
from services.adapters.eventstore.store import StoreTransaction

if TYPE_CHECKING:
    from opentelemetry.util.types import Attributes

    from services.adapters.eventstore.port import Store, Transaction
    from services.adapters.eventstore.store import EventStore
    from services.adapters.kafka.relay import Outgoing, Router
    from services.adapters.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_LINKS = 128
"""OpenTelemetry's default limit of links per span: a relay batch links to at most this many
store transactions (the first ones), and says how many it left out."""

_TRACEPARENT = re.compile(rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TRACER_NAME = "mandat"


# ----------------------------------------------------------------------- the switch


class _Switch(Sampler):
    """Samples nothing while tracing is off: spans are then non-recording, and cheap. On, a
    query outside any trace (the relay's polling, readiness probes: several a second, all
    alike) is not sampled either: a query is traced as part of a batch or a publication."""

    def __init__(self) -> None:
        self.on = False
        self.inner = ParentBased(TraceIdRatioBased(1.0))

    def should_sample(
        self,
        parent_context: Any,
        trace_id: int,
        name: str,
        kind: Any = None,
        attributes: Attributes = None,
        links: Any = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if not self.on:
            return SamplingResult(Decision.DROP)
        if attributes and "db.system" in attributes:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                return SamplingResult(Decision.DROP)
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"mandat switch ({'on' if self.on else 'off'})"


class _Forward(SpanProcessor):
    """The one processor of the process's provider, forwarding to the exporter of the day
    (a provider cannot drop a processor, and tests install and remove theirs)."""

    def __init__(self) -> None:
        self.inner: SpanProcessor | None = None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if self.inner is not None:
            self.inner.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        if self.inner is not None:
            self.inner.on_end(span)

    def shutdown(self) -> None:
        if self.inner is not None:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis) if self.inner is not None else True


@dataclass
class _State:
    provider: TracerProvider | None = None
    switch: _Switch | None = None
    forward: _Forward | None = None
    asyncpg: bool = False


_state = _State()
_active = False  # read on every hook: a plain global is the cheapest test


def active() -> bool:
    """Whether spans are recorded and exported now."""
    return _active


def tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


def enable(
    exporter: SpanExporter, *, service: str = "mandat", batch: bool = True, ratio: float = 1.0
) -> None:
    """Record spans from now on and export them (masked) to `exporter`; replaces the
    exporter enabled before, if any. `ratio`: the share of traces recorded (a batch's, a
    relay publication's), all of a trace or none of it."""
    global _active
    if _state.provider is None:
        switch, forward = _Switch(), _Forward()
        provider = TracerProvider(
            sampler=switch, resource=Resource.create({"service.name": f"mandat-{service}"})
        )
        provider.add_span_processor(forward)
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            log.warning("a tracer provider was set before mandat's: its spans go there")
        trace.set_tracer_provider(provider)
        _state.provider, _state.switch, _state.forward = provider, switch, forward
    assert _state.switch is not None and _state.forward is not None
    _instrument_asyncpg()
    # it warns of every baggage entry it cannot read, quoting it: upstream text, at the
    # rate upstream chooses
    logging.getLogger("opentelemetry.baggage").setLevel(logging.ERROR)
    previous = _state.forward.inner
    masked = _Masked(exporter)
    _state.forward.inner = BatchSpanProcessor(masked) if batch else SimpleSpanProcessor(masked)
    if previous is not None:
        previous.shutdown()
    _state.switch.inner = ParentBased(TraceIdRatioBased(ratio))
    _state.switch.on = _active = True


def disable() -> None:
    """Stop recording; what was recorded is exported first."""
    global _active
    _active = False
    if _state.switch is not None:
        _state.switch.on = False
    if _state.forward is not None and _state.forward.inner is not None:
        inner, _state.forward.inner = _state.forward.inner, None
        inner.shutdown()


def flush(timeout_millis: int = 10_000) -> bool:
    """Export what is recorded now (tests read the exporter after this)."""
    return _state.forward.force_flush(timeout_millis) if _state.forward is not None else True


def configure(settings: ServiceSettings, service: str) -> None:
    """Enable the exporter the settings choose, unless tracing is on already (a test's
    in-memory exporter, or another service of the same process)."""
    if _active or settings.trace_exporter == "none":
        return
    enable(exporter_for(settings), service=service, ratio=settings.trace_sample_ratio)
    log.info("traces exported to %s", settings.trace_exporter)


def exporter_for(settings: ServiceSettings) -> SpanExporter:
    if settings.trace_exporter == "console":
        return LogSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_endpoint)  # None: OTEL_EXPORTER_OTLP_*


def _instrument_asyncpg() -> None:
    """Spans for the store's queries (statements only, never their parameters)."""
    if _state.asyncpg:
        return
    try:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        AsyncPGInstrumentor(capture_parameters=False).instrument()  # type: ignore[no-untyped-call]
        _state.asyncpg = True
    except Exception as exc:  # a missing optional package: traces without query spans
        log.warning("asyncpg instrumentation unavailable: %s", type(exc).__name__)


# ------------------------------------------------------------------------ exporters


class LogSpanExporter(SpanExporter):
    """The console exporter: each span is one JSON log line (logger ``mandat.trace``), like
    every other line the process writes."""

    def __init__(self) -> None:
        self.log = logging.getLogger("mandat.trace")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.log.isEnabledFor(logging.INFO):
            return SpanExportResult.SUCCESS
        for span in spans:
            self.log.info("span %s", span.name, extra={"span": span_record(span)})
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A span as a plain dict: ids in hex, the parent's, its links, attributes."""
    ctx = span.get_span_context()
    return {
        "name": span.name,
        "kind": span.kind.name.lower(),
        "trace_id": f"{ctx.trace_id:032x}" if ctx else None,
        "span_id": f"{ctx.span_id:016x}" if ctx else None,
        "parent_id": f"{span.parent.span_id:016x}" if span.parent else None,
        "links": [
            {"trace_id": f"{k.context.trace_id:032x}", "span_id": f"{k.context.span_id:016x}"}
            for k in span.links
        ],
        "start_ns": span.start_time,
        "duration_ms": ((span.end_time or 0) - (span.start_time or 0)) / 1e6,
        "status": span.status.status_code.name.lower(),
        "attributes": dict(span.attributes or {}),
    }


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal(value)
    if isinstance(value, tuple | list):
        return tuple(_mask(v) for v in value)
    return value


def _mask_attributes(attributes: Attributes) -> dict[str, Any]:
    return {mask_personal(k): _mask(v) for k, v in (attributes or {}).items()}


def _texts(span: ReadableSpan) -> Iterator[str]:
    """Every text of `span` a NIR could hide in."""
    yield span.name
    if span.status.description:
        yield span.status.description
    for attributes in (
        span.attributes,
        *(e.attributes for e in span.events),
        *(k.attributes for k in span.links),
    ):
        for key, value in (attributes or {}).items():
            yield key
            if isinstance(value, str):
                yield value
            elif isinstance(value, tuple | list):
                yield from (v for v in value if isinstance(v, str))
    yield from (e.name for e in span.events)


def masked(span: ReadableSpan) -> ReadableSpan:
    """`span`, or a copy of it whose texts (name, attributes, events, links, status) are
    masked when one needs it (copying every span would cost as much as making it)."""
    texts = "\x00".join(_texts(span))  # one scan: most spans hold nothing to mask
    if mask_personal(texts) == texts:
        return span
    return ReadableSpan(
        name=mask_personal(span.name),
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_mask_attributes(span.attributes),
        events=[
            Event(mask_personal(e.name), _mask_attributes(e.attributes), e.timestamp)
            for e in span.events
        ],
        links=[Link(k.context, _mask_attributes(k.attributes)) for k in span.links],
        kind=span.kind,
        status=Status(
            span.status.status_code,
            None if span.status.description is None else mask_personal(span.status.description),
        ),
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class _Masked(SpanExporter):
    """Every exported span goes through `masked` first."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([masked(s) for s in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


# -------------------------------------------------------------- W3C trace context


def parse_traceparent(value: object) -> SpanContext | None:
    """The remote span a W3C ``traceparent`` value names, or None for anything else
    (wrong type, not ASCII, too long, a malformed field, all-zero ids, version ff)."""
    if not isinstance(value, bytes | bytearray | str) or len(value) > 512:
        return None
    raw = value.encode("ascii", "replace") if isinstance(value, str) else bytes(value)
    match = _TRACEPARENT.fullmatch(raw.strip(b" \t"))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest):
        return None
    tid, sid = int(trace_id, 16), int(span_id, 16)
    if tid == 0 or sid == 0:
        return None
    return SpanContext(tid, sid, is_remote=True, trace_flags=TraceFlags(int(flags, 16) & 1))


def inbound_context(headers: Sequence[tuple[Any, Any]]) -> SpanContext | None:
    """The span a record's headers name: exactly one well-formed ``traceparent``, else none
    (two of them are ambiguous). Never raises, whatever the headers hold."""
    try:
        found = [v for k, v in headers if isinstance(k, str) and k.lower() == TRACEPARENT]
    except Exception:
        return None
    return parse_traceparent(found[0]) if len(found) == 1 else None


def format_traceparent(ctx: SpanContext) -> str:
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags) & 1:02x}"


# ------------------------------------------------------------------ consuming side


def parse_span(records: Sequence[Any]) -> contextlib.AbstractContextManager[Any]:
    """``mandat.parse``: the batch parsed by the contract."""
    if not _active:
        return contextlib.nullcontext()
    return tracer().start_as_current_span(
        "mandat.parse", attributes={"messaging.batch.message_count": len(records)}
    )


def deciding(tx: Transaction, record: Any, message: Any) -> contextlib.AbstractContextManager[Any]:
    """``mandat.decide``: one record handed to the processor, linked to its upstream span
    (nothing in a batch whose trace is not sampled)."""
    if not _active or not trace.get_current_span().is_recording():
        return contextlib.nullcontext()
    return _deciding(tx, record, message)


@contextlib.contextmanager
def _deciding(tx: Transaction, record: Any, message: Any) -> Iterator[None]:
    # Tracing must never decide a record's fate: the handler treats anything raised around
    # the decision as the record's fault, so a failure of the span itself is only logged.
    with contextlib.ExitStack() as stack:
        span: Span | None = None
        try:
            attributes: dict[str, Any] = {
                "messaging.destination.name": str(record.topic),
                "messaging.kafka.destination.partition": int(record.partition),
                "messaging.kafka.message.offset": int(record.offset),
            }
            event_id = getattr(message, "event_id", None)
            if event_id is not None:
                attributes["mandat.event_id"] = str(event_id)
                attributes["mandat.event_type"] = str(message.event_type)
            upstream = inbound_context(record.headers)
            links = [Link(upstream)] if upstream is not None else []
            before = tx.head_position
            span = stack.enter_context(
                tracer().start_as_current_span("mandat.decide", attributes=attributes, links=links)
            )
        except Exception:
            log.warning("no decide span for this record", exc_info=True)
        yield
        if span is not None and tx.head_position > before:
            try:
                span.set_attribute("mandat.store.first_position", before + 1)
                span.set_attribute("mandat.store.position", tx.head_position)
            except Exception:
                log.warning("decide span not completed", exc_info=True)


def appending(store: Store) -> contextlib.AbstractAsyncContextManager[Transaction]:
    """The store transaction, inside a ``mandat.append`` span whose context is stored with
    the positions it appends (for the relay's link; only the PostgreSQL store has the table
    that keeps it)."""
    if not _active:
        return store.transaction()
    return _appending(store)


@contextlib.asynccontextmanager
async def _appending(store: Store) -> AsyncIterator[Transaction]:
    with tracer().start_as_current_span("mandat.append") as span:
        async with store.transaction() as tx:
            before = tx.head_position
            yield tx
            if tx.head_position > before and span.is_recording():
                span.set_attribute("mandat.store.first_position", before + 1)
                span.set_attribute("mandat.store.position", tx.head_position)
                if isinstance(tx, StoreTransaction):
                    await _remember(tx, before + 1, span.get_span_context())


async def _remember(tx: StoreTransaction, first: int, ctx: SpanContext) -> None:
    """Keep the append span's context beside the positions it took, in the transaction."""
    if ctx.is_valid:
        await tx.note_trace(first, format_traceparent(ctx))


# ----------------------------------------------------------------------- the relay


async def recorded_contexts(store: EventStore, first: int, last: int) -> list[SpanContext]:
    """The append spans that recorded positions `first`..`last` (ranges never overlap: one
    row per transaction, in store order), the earliest first."""
    found = [parse_traceparent(t) for t in await store.trace_contexts(first, last, MAX_LINKS + 1)]
    return [ctx for ctx in found if ctx is not None]


def relay_publishing(
    store: EventStore,
) -> Any:
    """The relay's hook: ``mandat.relay.publish`` around the publication of `events`."""

    def around(events: Sequence[Any]) -> contextlib.AbstractAsyncContextManager[Any]:
        if not _active or not events:
            return contextlib.nullcontext()
        return _publishing(store, events)

    return around


@contextlib.asynccontextmanager
async def _publishing(store: EventStore, events: Sequence[Any]) -> AsyncIterator[None]:
    first, last = events[0].position, events[-1].position
    try:
        recorded = await recorded_contexts(store, first, last)
    except Exception as exc:  # tracing never stops the relay
        log.warning("could not read the trace contexts to link: %s", type(exc).__name__)
        recorded = []
    links = [Link(ctx) for ctx in recorded[:MAX_LINKS]]
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation": "publish",
        "messaging.batch.message_count": len(events),
        "mandat.store.first_position": first,
        "mandat.store.position": last,
        "mandat.links_left_out": max(0, len(recorded) - MAX_LINKS),
    }
    # a root: the relay's loop belongs to no trace; its links say where the events came from
    with tracer().start_as_current_span(
        "mandat.relay.publish",
        context=otel_context.Context(),
        kind=SpanKind.PRODUCER,
        links=links,
        attributes=attributes,
    ):
        yield


@dataclass(frozen=True, slots=True)
class TracedRoutes:
    """A service's routes, whose messages carry the current relay span as ``traceparent``.
    A rejected copy goes out untouched: when it came with trace headers of its upstream,
    they stay and the relay adds none (its trace is the upstream's)."""

    inner: Router

    @property
    def topics(self) -> tuple[str, ...]:
        return self.inner.topics

    @property
    def event_types(self) -> frozenset[str]:
        return self.inner.event_types

    def route(self, event: Any) -> Outgoing | None:
        out = self.inner.route(event)
        if out is None or not _active:
            return out
        ctx = trace.get_current_span().get_span_context()
        if not ctx.is_valid:
            return out
        if any(k in (TRACEPARENT, TRACESTATE) for k, _ in out.headers):
            return out  # a rejected copy's own trace headers, as they came
        return replace(out, headers=[*out.headers, (TRACEPARENT, format_traceparent(ctx).encode())])


# ------------------------------------------------------------------------ FastStream


def broker_middlewares() -> tuple[Any, ...]:
    """FastStream's Kafka telemetry middleware (guarded), when tracing is on."""
    if not _active:
        return ()
    return (_guarded_telemetry(),)


def _guarded_telemetry() -> Any:
    """FastStream's Kafka telemetry middleware, except that a failure of its own before the
    handler runs (a header it cannot read) hands the batch over without a span, instead of
    failing it -- a failed batch is redelivered, forever."""
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware
    from faststream.kafka.response import KafkaPublishCommand
    from faststream.opentelemetry.middleware import BaseTelemetryMiddleware

    class Guarded(BaseTelemetryMiddleware[KafkaPublishCommand]):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            reached = False

            async def handler(message: Any) -> Any:
                nonlocal reached
                reached = True
                return await call_next(message)

            try:
                return await super().consume_scope(handler, msg)
            except Exception as exc:
                if reached:
                    raise
                log.warning("no consume span for a batch: %s", type(exc).__name__)
                return await call_next(msg)

    class GuardedKafkaTelemetry(KafkaTelemetryMiddleware):
        def __call__(self, msg: Any, /, *, context: Any) -> Any:
            return Guarded(
                msg,
                tracer=self._tracer,
                settings_provider_factory=self._settings_provider_factory,
                metrics_container=self._metrics,
                context=context,
            )

    return GuardedKafkaTelemetry(include_messages_counters=False)
