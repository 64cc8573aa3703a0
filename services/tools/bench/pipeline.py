"""Whole path throughput and latency: input topic → service → store → relay → settlement topic.

For each service (`--service collection|benefits|both`), with topics, consumer groups and
store schemas of the run's own (suffix `bench<hex>`; dropped at the end unless `--keep`),
the service running in this process as `mandat <service> run` runs it (minus HTTP):

  registry     organisms, conventions of both objects and one affiliation per NIR are
               published on the registry topic; the service records them, then stops.
  service      `--events` inputs are published first (collection: CotisationDue, about 90 %
               delegated; benefits: PrestationEspecesDue, about 80 % delegated), then the
               service starts again (folding its store) and the clock runs from its first
               batch to the last decision read back from the settlement topic, every input
               decided (FastStream batch subscriber, parse, decide, one store commit per
               batch, offsets after the commit, relay publishing in store order).
  passthrough  the same messages, pre-published on a topic of their own, through a plain
               AIOKafkaConsumer (group) → AIOKafkaProducer (acks=all, idempotent, like the
               relay) → commit loop; from its first fetch to the last copy read back.
  latency      the service running, inputs paced at `--rate` for `--latency-seconds`; per
               input, from its send to its decision read back: median, p99, max; split at
               the decision's `occurred_at` (when the store recorded it) into send → recorded
               (broker, fetch, batch, parse, decide) and recorded → read back (COPY, COMMIT,
               NOTIFY, relay, broker).

Everything (service, producers, readers) shares one event loop: the readers only note the
arrival of each message (matched by the decision's `event_id` header), the cost of which
is counted against both paths alike. The ratio service / passthrough is what the service
(contract parsing, rules, the store's serial hash-chained commit, the relay) costs over
moving the same bytes through the same broker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import secrets
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from contracts import topics
from contracts.nir import sample_nir
from services.adapters.eventstore.server import server_settings
from services.adapters.runtime.handler import BatchReport
from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.service import ServiceRuntime
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog
from services.domain.catalog import ServiceDescription
from services.domain.kernel.processing import decision_id
from services.tools.audit.feed import envelope as feed_envelope
from services.tools.bench.shared import (
    Report,
    add_run_options,
    closing_lines,
    committed_reader,
    drop_schemas,
    ensure_run_topics,
    from_environment,
    latency_figures,
    passthrough_clients,
    run_and_print,
    spread,
)
from services.tools.options import Option, add_options, option_values
from services.tools.tasks import stop_task

SERVICES = tuple(catalog.SERVICES)
CAISSE = "PL-IDF"
ORGANISMS = 50
BATCH = 500  # records per fetch of the passthrough, as the services' batch_max_records
log = logging.getLogger(__name__)


OPTIONS = (
    Option(
        "--service", "both", "which service to measure (default both)", choices=(*SERVICES, "both")
    ),
    Option(
        "--events", 20_000, "inputs of the throughput run, and NIRs of the registry (default 20000)"
    ),
    Option("--rate", 500.0, "inputs per second of the latency run (default 500)"),
    Option("--latency-seconds", 20.0, "duration of the latency run (default 20)"),
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)
    add_run_options(parser, timeout=600.0, keep="leave the store schemas and topics behind")


def run_endpoints(args: argparse.Namespace) -> tuple[str, str]:
    """(database, broker) a benchmark measures against: its options, else the environment,
    else `.run/endpoints.env`."""
    from services.tools.bench.cli import resolve_database_url

    dsn = resolve_database_url(getattr(args, "database_url", None))
    return dsn, resolve_bootstrap(getattr(args, "bootstrap", None))


def run_with_broker(
    args: argparse.Namespace,
    measure: Callable[..., Coroutine[Any, Any, Report]],
    options: Iterable[Option],
    format_report: Callable[[Report], str],
) -> int:
    """Run a benchmark that has a broker and topics of its own (its options `options`, plus
    those of `add_run_options`) against the endpoints `args` name and print its report; the
    exit status: 0 when the report says every input was decided (`all_decided`)."""
    dsn, bootstrap = run_endpoints(args)
    values = option_values(args, options)
    report = run_and_print(
        measure(bootstrap, dsn, **values, timeout=args.timeout, keep=args.keep),
        args.json,
        format_report,
    )
    return 0 if report["all_decided"] else 1


def broker_benchmark(
    options: tuple[Option, ...],
    measure: Callable[..., Coroutine[Any, Any, Report]],
    format_report: Callable[[Report], str],
    *,
    keep: str,
    timeout: float = 1800.0,
) -> tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]:
    """(`configure`, `run`) of a benchmark with a broker and topics of its own: its
    `options` and `add_run_options`; `run_with_broker` its `measure`."""

    def configure(parser: argparse.ArgumentParser) -> None:
        add_options(parser, options)
        add_run_options(parser, timeout=timeout, keep=keep)

    def run(args: argparse.Namespace) -> int:
        return run_with_broker(args, measure, options, format_report)

    return configure, run


def resolve_bootstrap(explicit: str | None = None) -> str:
    """The broker to measure against: explicit, else $KAFKA_BOOTSTRAP_SERVERS, else
    `.run/endpoints.env`."""
    from services.adapters.kafka.security import secured

    if secured(ServiceSettings()):  # the benchmarks' own clients do not log in
        raise SystemExit(
            "MANDAT_KAFKA_SECURITY_PROTOCOL asks for Kafka logins, which the benchmarks' clients"
            " do not make: run them against a broker without authentication"
            " (`MANDAT_LOCAL_KAFKA_AUTH=off make up` on a fresh .run/)"
        )
    return from_environment(
        explicit,
        "KAFKA_BOOTSTRAP_SERVERS",
        "no broker: pass --bootstrap, set KAFKA_BOOTSTRAP_SERVERS, or start the stack (make up)",
    )


def run(args: argparse.Namespace) -> int:
    dsn, bootstrap = run_endpoints(args)
    service = getattr(args, "service", "both")
    run_and_print(
        measure(
            bootstrap,
            dsn,
            services=SERVICES if service == "both" else (service,),
            events=getattr(args, "events", 20_000),
            rate=getattr(args, "rate", 500.0),
            latency_seconds=getattr(args, "latency_seconds", 20.0),
            timeout=getattr(args, "timeout", 600.0),
            keep=getattr(args, "keep", False),
        ),
        getattr(args, "json", False),
        format_report,
    )
    return 0


# --- the messages (contract v1, as an upstream agency sends them) ---------------------------


nir = sample_nir


def _now_instant() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def envelope(
    event_type: str,
    payload: dict[str, Any],
    event_id: str,
    occurred_at: str = "2017-01-15T08:00:00Z",
) -> bytes:
    """A contract-v1 message value, sent as the caisse de base would."""
    return feed_envelope(
        event_type,
        payload,
        event_id=event_id,
        occurred_at=occurred_at,
        source=f"caisse-de-base/{CAISSE}",
    )


def organism_id(i: int) -> str:
    return f"OC-{i % ORGANISMS:04d}"


def registry_facts(nirs: int) -> list[tuple[bytes, str, dict[str, Any]]]:
    """(key, event type, payload) of the registry: organisms, conventions, affiliations.

    Every tenth organism has no collection convention (its contributions are not delegated:
    AUCUNE_CONVENTION), every fifth no benefits convention (VersementDirect)."""
    facts: list[tuple[bytes, str, dict[str, Any]]] = []
    for i in range(ORGANISMS):
        oid = organism_id(i)
        forme = "SOCIETE_ASSURANCE" if i % 7 == 3 else "MUTUELLE"
        facts.append(
            (
                oid.encode(),
                "OrganismeDeclare",
                {"organisme_id": oid, "nom": f"Organisme {oid}", "forme_juridique": forme},
            )
        )
    for i in range(ORGANISMS):
        oid = organism_id(i)
        for objet, tag, holds in (
            ("ENCAISSEMENT_CONTENTIEUX_COTISATIONS", "ENC", i % 10 != 9),
            ("VERSEMENT_PRESTATIONS_ESPECES", "VPE", i % 5 != 4),
        ):
            if holds:
                cid = f"CONV-{tag}-{i:04d}"
                facts.append(
                    (
                        cid.encode(),
                        "ConventionConclue",
                        {
                            "convention_id": cid,
                            "organisme_id": oid,
                            "objet": objet,
                            "caisses_de_base": [CAISSE, "PL-ARA"],
                            "effet_du": "2017-01-01",
                            "effet_au": None,
                        },
                    )
                )
    for n in range(nirs):
        number = nir(n)
        facts.append(
            (
                number.encode(),
                "AffiliationEnregistree",
                {
                    "nir": number,
                    "organisme_id": organism_id(n),
                    "mode": "CHOIX",
                    "effet_du": "2016-01-01",
                },
            )
        )
    return facts


def contribution(i: int, tag: str, number: str) -> tuple[str, dict[str, Any]]:
    return "CotisationDue", {
        "cotisation_id": f"COT-{tag}-{i:07d}",
        "nir": number,
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": CAISSE,
        "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
        "montant_cents": 100_000 + (i * 37) % 150_000,
        "exigible_le": "2017-02-05",
    }


def benefit(i: int, tag: str, number: str) -> tuple[str, dict[str, Any]]:
    categorie = ("PROFESSION_LIBERALE", "ARTISAN", "COMMERCANT")[i % 3]
    if i % 2:
        nature, periode, montant = "ALLOCATION_REPOS_MATERNEL", None, 326_900
    else:
        nature, montant = "IJ_MATERNITE", 236_456
        periode = {"debut": "2017-05-02", "fin": "2017-06-14"}
    return "PrestationEspecesDue", {
        "prestation_id": f"PRE-{tag}-{i:07d}",
        "nir": number,
        "categorie": categorie,
        "caisse_de_base": CAISSE,
        "nature": nature,
        "fait_generateur_le": "2017-05-02",
        "periode": periode,
        "montant_cents": montant,
    }


@dataclass(frozen=True)
class Kind:
    """A service of the catalog, with how the benchmark fabricates its main input."""

    service: ServiceDescription
    make_input: Callable[[int, str, str], tuple[str, dict[str, Any]]]

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def input_type(self) -> str:
        return self.service.main_input

    @property
    def final_types(self) -> frozenset[str]:
        return self.service.final_types

    def input_topic(self, s: ServiceSettings) -> str:
        return s.topic(
            next(t for t, types in self.service.inputs.items() if self.input_type in types)
        )

    def output_topic(self, s: ServiceSettings) -> str:
        return s.topic(self.service.decisions_topic)

    def schema(self, s: ServiceSettings) -> str:
        return s.schema_of(self.name)

    def runtime(self, s: ServiceSettings) -> ServiceRuntime:
        from services.adapters.runtime.apps import build_runtime

        return build_runtime(self.name, s)


KINDS = {
    "collection": Kind(catalog.COLLECTION, contribution),
    "benefits": Kind(catalog.BENEFITS, benefit),
}


@dataclass(frozen=True, slots=True)
class Message:
    key: bytes
    value: bytes
    event_id: str


def inputs(kind: Kind, count: int, nirs: int, tag: str) -> list[Message]:
    out = []
    for i in range(count):
        event_id = str(uuid.uuid4())
        event_type, payload = kind.make_input(i, tag, nir(i % nirs))
        out.append(
            Message(payload["nir"].encode(), envelope(event_type, payload, event_id), event_id)
        )
    return out


def run_settings(bootstrap: str, dsn: str, suffix: str) -> ServiceSettings:
    """Settings whose topics, groups and schemas belong to this run only."""
    names: dict[str, Any] = ServiceSettings.topics_under(suffix)
    return ServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DATABASE_URL=dsn,
        collection_schema=f"{suffix}_collection",
        benefits_schema=f"{suffix}_benefits",
        collection_group=f"{suffix}-collection",
        benefits_group=f"{suffix}-benefits",
        **names,
    )


# --- reading a topic back ------------------------------------------------------------------


class Follower:
    """A consumer read in a background task for as long as the block lasts; each record goes
    to `_seen` with the monotonic and wall times of the fetch that brought it. Subclasses
    set `self.consumer` (read committed: the relay publishes in transactions)."""

    consumer: AIOKafkaConsumer
    _task: asyncio.Task[None] | None = None

    async def _prepare(self) -> None:
        """After the consumer started, before reading (assign, seek)."""

    async def __aenter__(self) -> Self:
        await self.consumer.start()
        await self._prepare()
        self._task = asyncio.create_task(self._read(), name=f"follow-{type(self).__name__}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_task(self._task)
        await self.consumer.stop()

    async def _read(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=200)
            now, wall = time.monotonic(), time.time()
            for records in batch.values():
                for record in records:
                    self._seen(record, now, wall)

    def _seen(self, record: Any, now: float, wall: float) -> None:
        raise NotImplementedError


class Watcher(Follower):
    """Reads a topic from its start in the background and notes when each message arrives.

    With `expect`ed decision ids (the `event_id` header: decision ids are derived from the
    input's), each arrival is matched to its input without parsing the message; an
    unexpected final decision is matched by its `causation_id`. For `stamped` inputs the
    decision is parsed too, for when the store recorded it (its `occurred_at`)."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        final_types: frozenset[str] | None = None,
        service: str = "",
    ):
        self.topic = topic
        self.service = service
        self.final_types = final_types
        self.consumer = committed_reader(topic, bootstrap)
        self.expected: dict[bytes, str] = {}
        self.arrived: dict[str, float] = {}
        self.stamped: set[str] = set()
        self.recorded: dict[str, tuple[float, float]] = {}  # input -> (recorded, read), epoch
        self.count = 0
        self.parked = 0
        self.duplicates = 0
        self.types: Counter[str] = Counter()
        self.last = 0.0

    def expect(self, messages: Iterable[Message]) -> None:
        for m in messages:
            decision = decision_id(uuid.UUID(m.event_id), 1, self.service)
            self.expected[str(decision).encode()] = m.event_id

    def _seen(self, record: Any, now: float, wall: float) -> None:
        self.count += 1
        self.last = now
        if self.final_types is None:
            return
        headers = dict(record.headers)
        event_type = headers.get("event_type", b"").decode()
        self.types[event_type] += 1
        if event_type not in self.final_types:
            self.parked += event_type == topics.PARKED
            return
        cause = self.expected.get(headers.get("event_id", b""))
        if cause is None:
            cause = str(json.loads(record.value).get("causation_id"))
        if cause in self.arrived:
            self.duplicates += 1
            return
        self.arrived[cause] = now
        if cause in self.stamped:
            recorded = datetime.fromisoformat(json.loads(record.value)["occurred_at"])
            self.recorded[cause] = (recorded.timestamp(), wall)

    def decided(self, messages: Iterable[Message]) -> int:
        return sum(1 for m in messages if m.event_id in self.arrived)


async def until(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(poll)


async def awaited(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait up to `timeout` for a paced run's outputs; those still missing then are not an
    error but a figure of the run (it counts what arrived)."""
    with contextlib.suppress(TimeoutError):
        await until(condition, timeout, what, poll=0.05)


# --- the phases ----------------------------------------------------------------------------


def _producer(bootstrap: str, linger_ms: int) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
        max_batch_size=256 * 1024,
    )


async def publish(
    producer: AIOKafkaProducer, topic: str, messages: Iterable[tuple[bytes, bytes]]
) -> float:
    """Publish without waiting for each ack, then for all; returns the seconds it took."""
    started = time.perf_counter()
    futures = [await producer.send(topic, value, key=key) for key, value in messages]
    await asyncio.gather(*futures)
    return time.perf_counter() - started


class Batches:
    """The service's batch reports, with when each ended."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.reports: list[tuple[float, BatchReport]] = []
        runtime.on_report = lambda report: self.reports.append((time.monotonic(), report))

    def records(self) -> int:
        return sum(
            sum(r.inputs.values()) + sum(r.rejected.values()) + r.duplicates
            for _, r in self.reports
        )

    def rejected(self) -> int:
        return sum(sum(r.rejected.values()) for _, r in self.reports)

    @property
    def first_start(self) -> float:
        ended, report = self.reports[0]
        return ended - report.seconds

    @property
    def last_end(self) -> float:
        return self.reports[-1][0]

    def summary(self) -> dict[str, Any]:
        sizes = [
            sum(r.inputs.values()) + sum(r.rejected.values()) + r.duplicates
            for _, r in self.reports
        ]
        busy = sum(r.seconds for _, r in self.reports)
        return {
            "batches": len(self.reports),
            "mean_batch": round(statistics.fmean(sizes), 1) if sizes else 0,
            "max_batch": max(sizes, default=0),
            "handler_seconds": round(busy, 3),
            "retries": sum(r.attempts - 1 for _, r in self.reports),
            "duplicates": sum(r.duplicates for _, r in self.reports),
            "rejected": self.rejected(),
        }


async def fold_registry(
    kind: Kind, s: ServiceSettings, facts: int, timeout: float
) -> dict[str, Any]:
    """Let the service record the registry facts already on the topic, then stop it."""
    runtime = kind.runtime(s)
    batches = Batches(runtime)
    async with runtime.running():
        await until(
            lambda: batches.records() >= facts or batches.rejected() > 0,
            timeout,
            f"{kind.name} to record {facts} registry facts",
        )
        if batches.rejected():
            raise RuntimeError(
                f"{kind.name} rejected registry facts: "
                f"{[r.rejected for _, r in batches.reports if r.rejected]}"
            )
        await asyncio.sleep(0.5)  # let the last batch's offsets be committed
    seconds = batches.last_end - batches.first_start
    return {
        "facts": facts,
        "seconds": round(seconds, 3),
        "events_per_second": round(facts / seconds, 1),
    }


async def throughput_and_latency(
    kind: Kind,
    s: ServiceSettings,
    work: list[Message],
    *,
    rate: float,
    seconds: float,
    nirs: int,
    timeout: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Start the service on the pre-published inputs; time them to the last decision read
    back; then, still running, the paced latency run."""
    async with Watcher(
        s.kafka_bootstrap_servers, kind.output_topic(s), kind.final_types, service=kind.name
    ) as w:
        w.expect(work)
        runtime = kind.runtime(s)
        batches = Batches(runtime)
        entered = time.monotonic()
        async with runtime.running():
            ready = time.monotonic()
            await until(
                lambda: len(w.arrived) >= len(work) and w.decided(work) == len(work),
                timeout,
                f"{kind.name} to decide {len(work)} inputs",
                poll=0.05,
            )
            end = max(w.arrived[m.event_id] for m in work)
            start = batches.first_start
            counted = len(batches.reports)
            last_commit = batches.last_end
            throughput = {
                "events": len(work),
                "decided": w.decided(work),
                "seconds": round(end - start, 3),
                "events_per_second": round(len(work) / (end - start), 1),
                "startup_seconds": round(ready - entered, 3),
                "first_batch_after_ready_seconds": round(start - ready, 3),
                "wall_seconds_from_start": round(end - entered, 3),
                "relay_tail_seconds": round(end - last_commit, 3),
                "decisions": dict(sorted(w.types.items())),
                "parked": w.parked,
                "duplicates_read": w.duplicates,
                **batches.summary(),
            }
            batches.reports = batches.reports[counted:]
            latency = await paced(
                kind, s, w, rate=rate, seconds=seconds, nirs=nirs, timeout=timeout
            )
            latency |= {
                "batches": len(batches.reports),
                "mean_batch": batches.summary()["mean_batch"],
            }
    return throughput, latency


async def paced(
    kind: Kind,
    s: ServiceSettings,
    w: Watcher,
    *,
    rate: float,
    seconds: float,
    nirs: int,
    timeout: float,
) -> dict[str, Any]:
    """Inputs at a steady `rate` (each stamped with its send time); per input, the time
    from its send to its decision read back."""
    count = max(1, round(rate * seconds))
    topic = kind.input_topic(s)
    sent: dict[str, float] = {}
    sent_wall: dict[str, float] = {}
    messages: list[Message] = []
    producer = _producer(s.kafka_bootstrap_servers, linger_ms=0)
    await producer.start()
    try:
        futures = []
        start = time.monotonic()
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event_id = str(uuid.uuid4())
            event_type, payload = kind.make_input(i, "lat", nir(i % nirs))
            message = Message(
                payload["nir"].encode(),
                envelope(event_type, payload, event_id, occurred_at=_now_instant()),
                event_id,
            )
            w.expect([message])
            w.stamped.add(event_id)
            messages.append(message)
            sent[event_id], sent_wall[event_id] = time.monotonic(), time.time()
            futures.append(
                await producer.send(
                    topic,
                    message.value,
                    key=message.key,
                    headers=[("bench_sent_ns", str(time.time_ns()).encode())],
                )
            )
        last_sent = time.monotonic()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    await awaited(
        lambda: w.decided(messages) == count,
        min(timeout, 60.0 + seconds),
        "the latency run's decisions",
    )
    latencies = sorted(
        w.arrived[m.event_id] - sent[m.event_id] for m in messages if m.event_id in w.arrived
    )
    span = last_sent - start
    # where it goes: send → decision appended in the handler (the store's recorded_at, the
    # decision's occurred_at), then → read back (COPY, COMMIT, NOTIFY, relay, broker)
    split = [
        (
            w.recorded[m.event_id][0] - sent_wall[m.event_id],
            w.recorded[m.event_id][1] - w.recorded[m.event_id][0],
        )
        for m in messages
        if m.event_id in w.recorded
    ]
    to_store = sorted(a for a, _ in split)
    to_read = sorted(b for _, b in split)
    return {
        **latency_figures(latencies, rate=rate, sent=count, decided=len(latencies), span=span),
        "send_to_recorded_ms": spread(to_store),
        "recorded_to_read_back_ms": spread(to_read),
    }


async def passthrough(
    bootstrap: str, source: str, target: str, group: str, count: int, timeout: float
) -> dict[str, Any]:
    """Raw aiokafka: consume in a group, produce each value (and key) to `target`, commit
    the offsets once the batch is acknowledged; from the first fetch to the last copy read
    back."""
    async with Watcher(bootstrap, target) as w:
        consumer, producer = passthrough_clients(bootstrap, source, group)
        entered = time.monotonic()
        await consumer.start()
        await producer.start()
        try:
            ready = time.monotonic()
            copied, batches, first = 0, 0, None
            deadline = time.monotonic() + timeout
            while copied < count:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"passthrough copied {copied} of {count}")
                fetched = await consumer.getmany(timeout_ms=100, max_records=BATCH)
                if not fetched:
                    continue
                if first is None:
                    first = time.monotonic()
                futures = [
                    await producer.send(target, r.value, key=r.key)
                    for records in fetched.values()
                    for r in records
                ]
                await asyncio.gather(*futures)
                await consumer.commit()
                copied += len(futures)
                batches += 1
        finally:
            await producer.stop()
            await consumer.stop()
        await until(lambda: w.count >= count, timeout, "the passthrough's copies")
        assert first is not None
        return {
            "events": count,
            "copied": copied,
            "read_back": w.count,
            "seconds": round(w.last - first, 3),
            "events_per_second": round(count / (w.last - first), 1),
            "startup_seconds": round(ready - entered, 3),
            "batches": batches,
            "mean_batch": round(copied / batches, 1),
        }


# --- the run -------------------------------------------------------------------------------


def _load() -> list[float]:
    """The 1, 5 and 15-minute load averages: other work on the machine skews every figure."""
    return [round(x, 2) for x in os.getloadavg()]


async def _server(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return await server_settings(conn, ("server_version", "fsync", "synchronous_commit"))
    finally:
        await conn.close()


async def _cleanup(bootstrap: str, dsn: str, schemas: list[str], names: list[str]) -> None:
    await drop_schemas(dsn, *schemas)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        present = sorted(set(names) & set(await admin.list_topics()))
        if present:
            await admin.delete_topics(present)
    finally:
        await admin.close()


async def measure(
    bootstrap: str,
    dsn: str,
    *,
    services: Iterable[str] = SERVICES,
    events: int = 20_000,
    rate: float = 500.0,
    latency_seconds: float = 20.0,
    timeout: float = 600.0,
    keep: bool = False,
) -> dict[str, Any]:
    """Every phase for each service, in topics and schemas of the run's own; the report."""
    if events < 1 or rate <= 0 or latency_seconds <= 0:
        raise ValueError("--events, --rate and --latency-seconds must be positive")
    kinds = [KINDS[name] for name in services]
    suffix = f"bench{secrets.token_hex(4)}"
    s = await provision_services(run_settings(bootstrap, dsn, suffix))
    through = {
        k.name: (f"{suffix}.passthrough.{k.name}.in", f"{suffix}.passthrough.{k.name}.out")
        for k in kinds
    }
    names = [*s.all_topics(), *(t for pair in through.values() for t in pair)]
    report: dict[str, Any] = {
        "suffix": suffix,
        "kept": keep,
        "events": events,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": _load(),
        },
        "kafka": bootstrap,
        "postgres": await _server(dsn),
        "partitions": s.topic_partitions,
        "batch_max_records": s.batch_max_records,
        "services": {},
    }
    try:
        await ensure_run_topics(bootstrap, names, s)
        facts = registry_facts(events)
        producer = _producer(bootstrap, linger_ms=5)
        await producer.start()
        try:
            await publish(
                producer,
                s.topic_referentiel,
                ((key, envelope(t, p, str(uuid.uuid4()))) for key, t, p in facts),
            )
        finally:
            await producer.stop()
        for kind in kinds:
            result: dict[str, Any] = {"input_type": kind.input_type}
            result["registry"] = await fold_registry(kind, s, len(facts), timeout)
            work = inputs(kind, events, events, "tp")
            producer = _producer(bootstrap, linger_ms=5)
            await producer.start()
            try:
                took = await publish(
                    producer, kind.input_topic(s), ((m.key, m.value) for m in work)
                )
                await publish(producer, through[kind.name][0], ((m.key, m.value) for m in work))
            finally:
                await producer.stop()
            result["publish"] = {
                "events": events,
                "seconds": round(took, 3),
                "events_per_second": round(events / took, 1),
            }
            result["service"], result["latency"] = await throughput_and_latency(
                kind, s, work, rate=rate, seconds=latency_seconds, nirs=events, timeout=timeout
            )
            result["passthrough"] = await passthrough(
                bootstrap, *through[kind.name], f"{suffix}-passthrough-{kind.name}", events, timeout
            )
            result["ratio"] = round(
                result["service"]["events_per_second"] / result["passthrough"]["events_per_second"],
                3,
            )
            result["schema"] = kind.schema(s)
            report["services"][kind.name] = result
        report["machine"]["load_average_after"] = _load()
    finally:
        if not keep:
            await _cleanup(bootstrap, dsn, [s.collection_schema, s.benefits_schema], names)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as readable tables."""
    pg = report["postgres"]
    lines = [
        f"pipeline throughput and latency — Kafka {report['kafka']}, PostgreSQL "
        f"{pg['server_version']} (fsync={pg['fsync']}, synchronous_commit="
        f"{pg['synchronous_commit']}), {report['machine']['cpus']} CPUs, "
        f"Python {report['machine']['python']}",
        f"{report['events']} inputs per service, all published before the consumer starts; "
        f"{report['partitions']} partitions; timed from the first batch consumed to the last "
        "output read back",
        "",
        f"{'service':11} {'path':44} {'events':>7} {'seconds':>8} {'events/s':>9}",
    ]
    for name, r in _in_order(report["services"]):
        sv, pt = r["service"], r["passthrough"]
        lines.append(
            f"{name:11} {'service: topic → store → relay → topic':44} "
            f"{sv['events']:>7} {sv['seconds']:>8.2f} {sv['events_per_second']:>9,.0f}"
        )
        lines.append(
            f"{'':11} {'raw aiokafka consume → produce → commit':44} "
            f"{pt['events']:>7} {pt['seconds']:>8.2f} {pt['events_per_second']:>9,.0f}"
        )
        lines.append(
            f"{'':11} {'ratio service / passthrough':44} {'':>7} {'':>8} {r['ratio']:>9.3f}"
        )
    lines += [
        "",
        "latency, paced (send → decision read back from the settlement topic)",
        f"{'service':11} {'target/s':>8} {'achieved/s':>10} {'sent':>6} {'decided':>7} "
        f"{'median ms':>9} {'p99 ms':>8} {'max ms':>8}",
    ]
    for name, r in _in_order(report["services"]):
        lt = r["latency"]
        lines.append(
            f"{name:11} {lt['target_rate']:>8.0f} {lt['achieved_rate']:>10.1f} "
            f"{lt['sent']:>6} {lt['decided']:>7} {_fmt(lt['median_ms']):>9} "
            f"{_fmt(lt['p99_ms']):>8} {_fmt(lt['max_ms']):>8}"
        )
    lines += ["", "details"]
    for name, r in _in_order(report["services"]):
        sv, reg, pub = r["service"], r["registry"], r["publish"]
        busy = sv["handler_seconds"] / sv["seconds"] if sv["seconds"] else 0
        lt = r["latency"]
        split = ""
        if lt.get("send_to_recorded_ms") and lt.get("recorded_to_read_back_ms"):
            a, b = lt["send_to_recorded_ms"], lt["recorded_to_read_back_ms"]
            split = (
                f"  {name}: latency split, send → decision recorded median {a['median']:.1f}"
                f" / p99 {a['p99']:.1f} ms; recorded → read back median "
                f"{b['median']:.1f} / p99 {b['p99']:.1f} ms "
                f"({lt['batches']} batches of {lt['mean_batch']:.0f})"
            )
        lines += [
            f"  {name}: registry of {reg['facts']} facts recorded at "
            f"{reg['events_per_second']:,.0f}/s; inputs published at "
            f"{pub['events_per_second']:,.0f}/s",
            f"  {name}: service start {sv['startup_seconds']:.2f} s "
            f"(+{sv['first_batch_after_ready_seconds']:.2f} s to the first batch); "
            f"{sv['batches']} batches of {sv['mean_batch']:.0f} on average; "
            f"handler busy {sv['handler_seconds']:.2f} s ({busy:.0%}); last decision read "
            f"{sv['relay_tail_seconds']:.2f} s after the last commit",
            f"  {name}: decisions {', '.join(f'{k} {v}' for k, v in sv['decisions'].items())}",
            *([split] if split else []),
        ]
    lines += closing_lines(report, "topics and schemas")
    return "\n".join(lines)


def _in_order(services: dict[str, Any]) -> list[tuple[str, Any]]:
    return sorted(services.items(), key=lambda item: SERVICES.index(item[0]))


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
