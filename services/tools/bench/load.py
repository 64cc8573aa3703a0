"""Latency under load: steady input rates on a store of 200,000 events and more, next to a
raw aiokafka passthrough at the same rates on the same broker, in the same run.

For one service (`--service`, default collection), in topics, groups and a store schema of
the run's own (prefix `benchload<hex>`; dropped at the end unless `--keep`):

  fill      the store is filled to `--events` through the service's real write path
            (`services.tools.audit.feed.Feeder`: the BatchHandler, without Kafka): the registry
            (organisms, conventions, one affiliation per NIR), then contributions and
            payments (collection) or cash benefits (benefits) spread over `--events / 10`
            NIRs. Timed; the store's size is reported.
  start     the service starts on that store in this process, as `mandat <service> run`
            runs it (minus HTTP): it folds the whole store, then its relay publishes the
            backlog. Timed until `/ready` says ready (`runtime.probe()`), the relay's lag is
            0 and the balances projection has caught up, so that no start-up work overlaps
            the runs.
  service   for each rate of `--rates`, inputs paced at that rate for `--seconds` (NIRs of
            the store: every input is decided, none parked); per input, from its send to its
            decision read back from the settlement topic.
  raw       the same rates and the same bytes through a plain AIOKafkaConsumer (group,
            fetch settings of the service) → AIOKafkaProducer (acks=all, idempotent, as the
            relay) → commit loop in this process; per message, from its send to its copy
            read back.

The load generator (paced sender and output reader, each run's messages built before its
clock starts) runs in a process of its own by default, as an upstream and a downstream
would: this process's event loop then holds the service alone (or the passthrough), and
its figures (CPU time, time waiting for a CPU, stalls, garbage-collector pauses, resident
memory) are the service's. `--generator loop` puts it in the service's event loop instead,
as the pipeline benchmark does. Latency is given from the actual send (median, p90, p99,
max) and, for p99 and max, from the time the pacing meant to send it, which counts a
sender held up too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import secrets
import statistics
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.service import ServiceRuntime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.kernel.processing import decision_id
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.bench.pipeline import (
    BATCH,
    KINDS,
    Batches,
    Follower,
    Kind,
    _cleanup,
    _load,
    _producer,
    _server,
    awaited,
    envelope,
    nir,
    registry_facts,
    run_settings,
    run_with_broker,
    until,
)
from services.tools.bench.shared import (
    add_run_options,
    closing_lines,
    ensure_run_topics,
    latency_figures,
    ms,
    passthrough_clients,
    spread,
)
from services.tools.options import Option, add_options
from services.tools.tasks import stop_task

TARGET_P99_MS = 100.0  # at 2,000 inputs/s (issue 9)
TARGET_RATE = 2000.0
GENERATORS = ("process", "loop")
RAW_HEADER = "bench_id"  # what the raw passthrough's reader matches its copies by
log = logging.getLogger(__name__)


def _rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of rates: {text!r}") from exc
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


OPTIONS = (
    Option(
        "--service",
        "collection",
        "which service to measure (default collection)",
        choices=tuple(KINDS),
    ),
    Option("--events", 200_000, "fill the store to at least this many events (default 200000)"),
    Option(
        "--rates",
        (500.0, 2000.0),
        "inputs per second of each run, comma-separated (default 500,2000)",
        type=_rates,
    ),
    Option("--seconds", 60.0, "duration of each paced run (default 60)"),
    Option("--write-batch", 5000, "records per store transaction while filling (default 5000)"),
    Option(
        "--generator",
        "process",
        "where the paced sender and the output reader run: a process of their own "
        "(default), or the service's event loop, as in the pipeline benchmark",
        choices=GENERATORS,
    ),
)


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)
    add_run_options(parser, timeout=900.0, keep="leave the store schema and topics behind")


def run(args: argparse.Namespace) -> int:
    return run_with_broker(args, measure, OPTIONS, format_report)


# --- the store ------------------------------------------------------------------------------


def payment(i: int, tag: str, number: str, due: int) -> tuple[str, dict[str, Any]]:
    """A payment of half of contribution `i` (made by `pipeline.contribution(i, tag, …)`)."""
    return "PaiementRecu", {
        "paiement_id": f"PAY-{tag}-{i:07d}",
        "cotisation_id": f"COT-{tag}-{i:07d}",
        "nir": number,
        "montant_cents": due // 2,
        "recu_le": "2017-03-01",
    }


def history(kind: Kind, nirs: int, tag: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The registry of `nirs` persons, then inputs of the service without end (collection:
    each contribution, and a payment towards every other one, right after it)."""
    for _, event_type, payload in registry_facts(nirs):
        yield event_type, payload
    i = 0
    while True:
        event_type, payload = kind.make_input(i, tag, nir(i % nirs))
        yield event_type, payload
        if kind.name == "collection" and i % 2 == 0:
            yield payment(i, tag, payload["nir"], payload["montant_cents"])
        i += 1


async def fill(
    kind: Kind, s: ServiceSettings, dsn: str, *, events: int, nirs: int, write_batch: int
) -> dict[str, Any]:
    """Record history in the service's store, in batches, until it holds `events` rows."""
    store = await prepare_store(dsn, kind.schema(s))
    try:
        feeder = Feeder(store, kind.service, s, seed=kind.schema(s))
        started = time.perf_counter()
        head, messages, rejected = 0, 0, 0
        source = history(kind, nirs, "fill")
        while head < events:
            # about two events per message: the last batches shrink to land near `events`
            size = min(write_batch, max(100, (events - head) // 2))
            for _ in range(size):
                feeder.message(*next(source))
            report = await feeder.flush()
            rejected += sum(report.rejected.values())
            messages += size
            head = await store.head()
        seconds = time.perf_counter() - started
    finally:
        await store.pool.close()
    if rejected:
        raise RuntimeError(f"the fill had {rejected} inputs rejected: the bench is wrong")
    return {
        "stored_events": head,
        "messages": messages,
        "nirs": nirs,
        "seconds": round(seconds, 3),
        "events_per_second": round(head / seconds, 1),
    }


# --- reading outputs back -------------------------------------------------------------------


class Arrivals(Follower):
    """Reads a topic from its end (what is already there is not this run's) and notes when
    each awaited message arrives, matched by a header's value. With `final_types`, only a
    message whose `event_type` header is one of them counts as its input's decision; with
    `recorded`, the message's `occurred_at` (when the store recorded a decision) is kept."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        partitions: int,
        header: str,
        *,
        final_types: frozenset[str] | None = None,
        recorded: bool = False,
    ) -> None:
        self.topic = topic
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.header = header
        self.final_types = final_types
        self.recorded = recorded
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",  # the relay publishes in transactions
        )
        self.awaited: dict[bytes, int] = {}
        self.arrived: dict[int, float] = {}  # input index -> monotonic arrival
        self.stored: dict[int, tuple[float, float]] = {}  # index -> (recorded, read), epoch
        self.types: Counter[str] = Counter()
        self.unexpected = 0
        self.not_final = 0
        self.duplicates = 0

    async def _prepare(self) -> None:
        self.consumer.assign(self.partitions)
        await self.consumer.seek_to_end(*self.partitions)
        for tp in self.partitions:  # resolve the end now, before anything is sent
            await self.consumer.position(tp)

    def _seen(self, record: Any, now: float, wall: float) -> None:
        headers = dict(record.headers)
        index = self.awaited.get(headers.get(self.header) or b"")
        if index is None:
            self.unexpected += 1
            return
        if self.final_types is not None:
            event_type = (headers.get("event_type") or b"").decode("utf-8", "replace")
            self.types[event_type] += 1
            if event_type not in self.final_types:
                self.not_final += 1
                return
        if index in self.arrived:
            self.duplicates += 1
            return
        self.arrived[index] = now
        if self.recorded:
            at = datetime.fromisoformat(json.loads(record.value)["occurred_at"])
            self.stored[index] = (at.timestamp(), wall)


# --- what else happens in the process during a run ------------------------------------------


def _schedstat() -> tuple[float, float]:
    """This thread's time on a CPU and waiting for one (run queue), in seconds (Linux)."""
    try:
        fields = Path("/proc/thread-self/schedstat").read_text().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


@dataclass
class Pauses:
    """What else held the event loop's thread while entered: garbage-collector pauses, stalls
    of the loop, its CPU time, and its time waiting for a CPU (a busy machine). A stall whose
    CPU time is near its length was work in the loop; one with little CPU time was the thread
    waiting for a CPU."""

    tick: float = 0.005
    stall: float = 0.05  # a loop lag beyond this is a stall, kept with its CPU time
    gc_pauses: list[tuple[int, float, float]] = field(default_factory=list)  # gen, wall, cpu
    loop_lags: list[float] = field(default_factory=list)
    stalls: list[tuple[float, float]] = field(default_factory=list)  # (wall, cpu) seconds
    _gc_started: tuple[float, float] = (0.0, 0.0)
    _entered: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    _left: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    _task: asyncio.Task[None] | None = None

    def _gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = (time.perf_counter(), time.thread_time())
        else:
            wall, cpu = self._gc_started
            generation = int(info.get("generation", -1))
            self.gc_pauses.append(
                (generation, time.perf_counter() - wall, time.thread_time() - cpu)
            )

    async def _watch(self) -> None:
        while True:
            before, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.tick)
            lag = time.perf_counter() - before - self.tick
            self.loop_lags.append(lag)
            if lag > self.stall:
                self.stalls.append((lag, time.thread_time() - cpu))

    @staticmethod
    def _now() -> tuple[float, float, float, float]:
        on_cpu, waiting = _schedstat()
        return time.perf_counter(), time.thread_time(), on_cpu, waiting

    async def __aenter__(self) -> Pauses:
        gc.callbacks.append(self._gc)
        self._entered = self._now()
        self._task = asyncio.create_task(self._watch(), name="loop-lag")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._left = self._now()
        gc.callbacks.remove(self._gc)
        await stop_task(self._task)

    def summary(self) -> dict[str, Any]:
        lags = sorted(self.loop_lags)
        by_generation = Counter(g for g, _, _ in self.gc_pauses)
        longest = max(self.gc_pauses, key=lambda p: p[1], default=(-1, 0.0, 0.0))
        wall = self._left[0] - self._entered[0]
        cpu = self._left[1] - self._entered[1]
        return {
            "wall_seconds": round(wall, 3),
            "loop_thread_cpu_seconds": round(cpu, 3),
            "loop_thread_runqueue_wait_seconds": round(self._left[3] - self._entered[3], 3),
            "loop_lag_ms": spread(lags),
            "loop_stalls": len(self.stalls),
            "loop_stall_ms": [[ms(w), ms(c)] for w, c in sorted(self.stalls)[-5:]],
            "gc_collections": {str(g): n for g, n in sorted(by_generation.items())},
            "gc_pause_total_ms": ms(sum(w for _, w, _ in self.gc_pauses)),
            "gc_pause_cpu_ms": ms(sum(c for _, _, c in self.gc_pauses)),
            "gc_pause_max_ms": [ms(longest[1]), ms(longest[2])],
        }


def memory() -> dict[str, int]:
    """This process's resident memory now and at its peak, in KiB (Linux)."""
    found = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return {"rss_kib": found.get("VmRSS", 0), "peak_rss_kib": found.get("VmHWM", 0)}


# --- a paced run ----------------------------------------------------------------------------


class Outgoing(NamedTuple):
    """A message to send, built before the run (building it is not the service's cost).
    Only bytes and strings: the garbage collector untracks such tuples, so the run's
    messages add nothing to the service's collections."""

    key: bytes
    value: bytes
    awaited: bytes  # the header value its output will carry
    headers: tuple[tuple[str, bytes], ...]


async def paced(
    bootstrap: str,
    topic: str,
    arrivals: Arrivals,
    *,
    rate: float,
    messages: Sequence[Outgoing],
    wait: float,
) -> dict[str, Any]:
    """Send `messages` at a steady `rate`; wait (up to `wait` seconds after the last send)
    for each one's output; the latencies."""
    count = len(messages)
    planned: list[float] = []
    sent: list[float] = []
    sent_wall: list[float] = []
    producer = _producer(bootstrap, linger_ms=0)
    await producer.start()
    try:
        pending: deque[asyncio.Future[Any]] = deque()  # acks not yet checked
        start = time.monotonic()
        for i, out in enumerate(messages):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            arrivals.awaited[out.awaited] = i
            planned.append(due)
            sent.append(time.monotonic())
            sent_wall.append(time.time())
            pending.append(
                await producer.send(topic, out.value, key=out.key, headers=list(out.headers))
            )
            while pending and pending[0].done():
                pending.popleft().result()  # a send that failed fails the run
        last_sent = time.monotonic()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    await awaited(lambda: len(arrivals.arrived) >= count, wait, f"the outputs of {topic}")
    got = arrivals.arrived
    latencies = sorted(got[i] - sent[i] for i in got)
    from_plan = sorted(got[i] - planned[i] for i in got)
    lags = sorted(s - p for s, p in zip(sent, planned, strict=True))
    span = last_sent - start
    result: dict[str, Any] = {
        **latency_figures(latencies, rate=rate, sent=count, decided=len(got), span=span),
        "from_planned_send_ms": spread(from_plan),
        "sender_lag_ms": spread(lags),
        "duplicates_read": arrivals.duplicates,
        "unexpected_read": arrivals.unexpected,
    }
    if arrivals.recorded:
        # where it goes: send → decision recorded in the store (its occurred_at), then →
        # read back (COMMIT, NOTIFY, relay, broker)
        split = [
            (arrivals.stored[i][0] - sent_wall[i], arrivals.stored[i][1] - arrivals.stored[i][0])
            for i in arrivals.stored
        ]
        result["send_to_recorded_ms"] = spread(sorted(a for a, _ in split))
        result["recorded_to_read_back_ms"] = spread(sorted(b for _, b in split))
        result["decision_types"] = dict(sorted(arrivals.types.items()))
        result["not_final_read"] = arrivals.not_final
    return result


def prepared(kind: Kind, tag: str, nirs: int, count: int, *, raw: bool) -> list[Outgoing]:
    """The run's inputs (ids of its `tag`, NIRs of the store), built before its clock starts;
    collected once, so that the tuples are untracked. For the service, the output awaited is
    the input's first decision (its id is derived from the input's); for the raw path, the
    copy carrying the same `bench_id` header."""
    messages = []
    for i in range(count):
        event_id = uuid.uuid4()
        event_type, payload = kind.make_input(i, tag, nir(i % nirs))
        value = envelope(event_type, payload, str(event_id), occurred_at="2017-01-15T08:00:00Z")
        key = payload["nir"].encode()
        if raw:
            marker = event_id.bytes.hex().encode()
            messages.append(Outgoing(key, value, marker, ((RAW_HEADER, marker),)))
        else:
            awaited = str(decision_id(event_id, 1, kind.name)).encode()
            messages.append(Outgoing(key, value, awaited, ()))
    gc.collect()
    return messages


def _count(rate: float, seconds: float) -> int:
    return max(1, round(rate * seconds))


def _batches(batches: Batches, since: int) -> dict[str, Any]:
    reports = [r for _, r in batches.reports[since:]]
    sizes = [sum(r.inputs.values()) + sum(r.rejected.values()) + r.duplicates for r in reports]
    seconds = sorted(r.seconds for r in reports)
    return {
        "batches": len(reports),
        "mean_batch": round(statistics.fmean(sizes), 1) if sizes else 0,
        "max_batch": max(sizes, default=0),
        "handler_ms": spread(seconds),
        "handler_busy_seconds": round(sum(seconds), 3),
        "rejected": sum(sum(r.rejected.values()) for r in reports),
        "retries": sum(r.attempts - 1 for r in reports),
    }


@dataclass(frozen=True)
class Drive:
    """One paced run as the load generator needs it: plain values, so that it can run in a
    process of its own."""

    bootstrap: str
    service: str
    source: str  # the topic it sends to
    target: str  # the topic it reads outputs from
    partitions: int
    raw: bool  # outputs are the raw passthrough's copies, not the service's decisions
    tag: str
    nirs: int
    rate: float
    seconds: float
    wait: float

    def prepare(self) -> list[Outgoing]:
        kind = KINDS[self.service]
        return prepared(kind, self.tag, self.nirs, _count(self.rate, self.seconds), raw=self.raw)

    def arrivals(self) -> Arrivals:
        if self.raw:
            return Arrivals(self.bootstrap, self.target, self.partitions, RAW_HEADER)
        return Arrivals(
            self.bootstrap,
            self.target,
            self.partitions,
            "event_id",
            final_types=KINDS[self.service].final_types,
            recorded=True,
        )

    async def send(self, messages: Sequence[Outgoing], arrivals: Arrivals) -> dict[str, Any]:
        return await paced(
            self.bootstrap, self.source, arrivals, rate=self.rate, messages=messages, wait=self.wait
        )


async def drive(d: Drive, generator: str, pauses: Pauses) -> dict[str, Any]:
    """Run `d`, in this event loop or in a process of its own (`generator`), with `pauses`
    watching this loop while the messages are sent."""
    if generator == "loop":
        messages = d.prepare()
        async with d.arrivals() as arrivals, pauses:
            return await d.send(messages, arrivals)
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_generate, args=(theirs, d), name=f"load-{d.tag}", daemon=True
    )
    process.start()
    loop = asyncio.get_running_loop()
    try:
        deadline = time.monotonic() + d.wait + 2 * d.seconds + 120  # start, build, run, wait
        kind, value = await loop.run_in_executor(None, _receive, ours, process, deadline)
        if kind != "sending":
            raise RuntimeError(f"the load generator failed: {value}")
        async with pauses:
            kind, value = await loop.run_in_executor(None, _receive, ours, process, deadline)
        if kind != "done":
            raise RuntimeError(f"the load generator failed: {value}")
        return dict(value)
    finally:
        await loop.run_in_executor(None, process.join, 10)
        if process.is_alive():
            process.terminate()
        ours.close()


def _receive(conn: Connection, process: BaseProcess, deadline: float) -> tuple[str, Any]:
    """The generator's next message; an error if it died first or took too long."""
    while not conn.poll(1.0):
        if not process.is_alive() and not conn.poll(0):
            raise RuntimeError(f"the load generator exited with code {process.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError("the load generator did not answer in time")
    message: tuple[str, Any] = conn.recv()
    return message


def _generate(conn: Connection, d: Drive) -> None:
    """The load generator's process: build the messages, say so, send them, report."""

    async def main() -> dict[str, Any]:
        messages = d.prepare()
        async with d.arrivals() as arrivals:
            conn.send(("sending", None))
            result = await d.send(messages, arrivals)
        return result

    try:
        conn.send(("done", asyncio.run(main())))
    except BaseException as exc:  # the parent says why the run failed
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


@dataclass(frozen=True)
class Pacing:
    """The paced runs asked for, through the service and through the raw passthrough
    alike: one per rate, `seconds` long, over `nirs` NIRs of the store, their load
    generator where `generator` says."""

    rates: tuple[float, ...]
    seconds: float
    nirs: int
    timeout: float
    generator: str = "process"

    def drive(
        self, kind: Kind, s: ServiceSettings, source: str, target: str, raw: bool, rate: float
    ) -> Drive:
        """The run at `rate` from `source` to `target` (raw: through the passthrough)."""
        return Drive(
            s.kafka_bootstrap_servers,
            kind.name,
            source,
            target,
            s.topic_partitions,
            raw,
            f"{'R' if raw else 'L'}{int(rate)}",
            self.nirs,
            rate,
            self.seconds,
            min(self.timeout, 60.0 + self.seconds),
        )


async def service_runs(kind: Kind, s: ServiceSettings, pacing: Pacing) -> dict[str, Any]:
    """Start the service on the filled store, let it settle, then one paced run per rate."""
    timeout = pacing.timeout
    result: dict[str, Any] = {}
    runtime = kind.runtime(s)
    batches = Batches(runtime)
    entered = time.monotonic()
    async with runtime.running():
        result["start"] = await settle(runtime, entered, timeout)
        result["start"]["memory"] = memory()
        runs = []
        for rate in pacing.rates:
            d = pacing.drive(kind, s, kind.input_topic(s), kind.output_topic(s), False, rate)
            since = len(batches.reports)
            load_before = _load()
            pauses = Pauses()
            one = await drive(d, pacing.generator, pauses)
            one |= {
                "service": _batches(batches, since),
                **pauses.summary(),
                "memory": memory(),
                "load_average": [load_before, _load()],
            }
            runs.append(one)
            await _relay_idle(runtime, timeout)
        result["runs"] = runs
    return result


async def settle(runtime: ServiceRuntime, entered: float, timeout: float) -> dict[str, Any]:
    """From the service's start: until its store is folded (the subscriber starts), it says
    ready, its relay has published the whole store, and its projector has caught up."""
    running = time.monotonic()
    ready: float | None = None
    deadline = running + timeout
    while True:
        state = await runtime.probe()
        now = time.monotonic()
        if state["ready"] and ready is None:
            ready = now
        if (
            ready is not None
            and state.get("relay_leader")
            and state["relay_published"] >= state["store_head"]
        ):
            break
        if now > deadline:
            raise TimeoutError(f"the service did not settle in {timeout:.0f} s: {state}")
        await asyncio.sleep(0.1)
    relayed = now
    assert runtime.projector is not None
    projector = runtime.projector
    head = state["store_head"]
    await until(lambda: projector.position >= head, timeout, "the projector", poll=0.1)
    return {
        "store_head": head,
        "folded_seconds": round(running - entered, 3),
        "ready_seconds": round(ready - entered, 3),
        "relay_caught_up_seconds": round(relayed - entered, 3),
        "projector_caught_up_seconds": round(time.monotonic() - entered, 3),
    }


async def _relay_idle(runtime: ServiceRuntime, timeout: float) -> None:
    """Between runs: until everything recorded is published (the runs stay apart)."""
    deadline = time.monotonic() + timeout
    while True:
        state = await runtime.probe()
        if state.get("relay_leader") and state["relay_published"] >= state["store_head"]:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("the relay did not catch up between runs")
        await asyncio.sleep(0.1)


# --- the raw baseline -----------------------------------------------------------------------


async def _copy(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, target: str) -> None:
    """What the service's consumer and relay do, minus the service: fetch a batch, produce
    each record (key, value, headers), wait for the acks, commit the offsets."""
    while True:
        fetched = await consumer.getmany(timeout_ms=100, max_records=BATCH)
        if not fetched:
            continue
        futures = [
            await producer.send(target, r.value, key=r.key, headers=list(r.headers))
            for records in fetched.values()
            for r in records
        ]
        await asyncio.gather(*futures)
        await consumer.commit()


async def raw_runs(
    kind: Kind, s: ServiceSettings, source: str, target: str, group: str, pacing: Pacing
) -> list[dict[str, Any]]:
    """The paced runs through the raw passthrough (running for all of them)."""
    bootstrap = s.kafka_bootstrap_servers
    consumer, producer = passthrough_clients(
        bootstrap, source, group, fetch_max_wait_ms=50, max_poll_records=BATCH
    )
    await consumer.start()
    await producer.start()
    copying = asyncio.create_task(_copy(consumer, producer, target), name="raw-passthrough")
    runs = []
    try:
        await until(lambda: bool(consumer.assignment()), pacing.timeout, "the raw consumer's group")
        for rate in pacing.rates:
            d = pacing.drive(kind, s, source, target, True, rate)
            load_before = _load()
            pauses = Pauses()
            one = await drive(d, pacing.generator, pauses)
            if copying.done():
                copying.result()  # the passthrough failed: say why
            one |= {**pauses.summary(), "load_average": [load_before, _load()]}
            runs.append(one)
    finally:
        await stop_task(copying)
        await producer.stop()
        await consumer.stop()
    return runs


# --- the whole run --------------------------------------------------------------------------


async def measure(
    bootstrap: str,
    dsn: str,
    *,
    service: str = "collection",
    events: int = 200_000,
    rates: tuple[float, ...] = (500.0, 2000.0),
    seconds: float = 60.0,
    write_batch: int = 5000,
    generator: str = "process",
    timeout: float = 900.0,
    keep: bool = False,
) -> dict[str, Any]:
    """Fill, start, the service's runs, then the raw runs; the report."""
    if events < 1 or seconds <= 0 or write_batch < 1 or not rates or min(rates) <= 0:
        raise ValueError("--events, --seconds, --write-batch and --rates must be positive")
    if generator not in GENERATORS:
        raise ValueError(f"--generator is one of {', '.join(GENERATORS)}")
    kind = KINDS[service]
    nirs = max(100, events // 10)
    suffix = f"benchload{secrets.token_hex(4)}"
    s = await provision_services(run_settings(bootstrap, dsn, suffix), (kind.name,))
    raw_in, raw_out = f"{suffix}.raw.in", f"{suffix}.raw.out"
    names = [*s.all_topics(), raw_in, raw_out]
    report: dict[str, Any] = {
        "suffix": suffix,
        "kept": keep,
        "service": kind.name,
        "input_type": kind.input_type,
        "events_target": events,
        "rates": list(rates),
        "seconds": seconds,
        "machine": {"cpus": os.cpu_count(), "load_average_before": _load()},
        "kafka": bootstrap,
        "postgres": await _server(dsn),
        "partitions": s.topic_partitions,
        "batch_max_records": s.batch_max_records,
        "generator": generator,
        "target": {"rate": TARGET_RATE, "p99_ms": TARGET_P99_MS},
    }
    try:
        await ensure_run_topics(bootstrap, names, s)
        report["fill"] = await fill(kind, s, dsn, events=events, nirs=nirs, write_batch=write_batch)
        gc.collect()  # the fill's own view is garbage now: the service's memory is its own
        report["fill"]["memory"] = memory()
        pacing = Pacing(rates, seconds, nirs, timeout, generator)
        ran = await service_runs(kind, s, pacing)
        report["start"], report["service_runs"] = ran["start"], ran["runs"]
        gc.collect()
        report["raw_runs"] = await raw_runs(
            kind,
            s,
            raw_in,
            raw_out,
            f"{suffix}-raw",
            pacing,
        )
        report["machine"]["load_average_after"] = _load()
        report["memory_peak_kib"] = memory()["peak_rss_kib"]
    finally:
        if not keep:
            await _cleanup(bootstrap, dsn, [s.collection_schema, s.benefits_schema], names)
    runs = [*report["service_runs"], *report["raw_runs"]]
    report["all_decided"] = all(r["decided"] == r["sent"] for r in runs)
    at_target = [r for r in report["service_runs"] if r["target_rate"] == TARGET_RATE]
    report["target"]["met"] = (
        all(r["p99_ms"] is not None and r["p99_ms"] <= TARGET_P99_MS for r in at_target)
        if at_target
        else None
    )
    return report


# --- the report -----------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    """The report as readable tables."""
    pg, fl, st = r["postgres"], r["fill"], r["start"]
    lines = [
        f"latency under load — {r['service']} ({r['input_type']}), load generator in "
        f"{'a process of its own' if r['generator'] == 'process' else 'the service loop'}, "
        f"Kafka {r['kafka']}, "
        f"PostgreSQL {pg['server_version']} (fsync={pg['fsync']}, synchronous_commit="
        f"{pg['synchronous_commit']}), {r['machine']['cpus']} CPUs, {r['partitions']} "
        f"partitions, batches of up to {r['batch_max_records']}",
        f"store: {fl['stored_events']:,} events ({fl['messages']:,} messages over "
        f"{fl['nirs']:,} NIRs) filled through the BatchHandler in {fl['seconds']:.1f} s "
        f"({fl['events_per_second']:,.0f} events/s)",
        f"start: store folded in {st['folded_seconds']:.1f} s, ready after "
        f"{st['ready_seconds']:.1f} s, relay lag 0 after {st['relay_caught_up_seconds']:.1f} s,"
        f" projections caught up after {st['projector_caught_up_seconds']:.1f} s",
        "",
        "latency, send → output read back (ms); * = from the planned send time",
        f"{'path':8} {'rate/s':>7} {'achieved':>9} {'sent':>7} {'decided':>7} {'median':>8} "
        f"{'p90':>8} {'p99':>8} {'max':>8} {'p99*':>8} {'max*':>8}",
    ]
    pairs = zip(r["service_runs"], r["raw_runs"], strict=True)
    for service, raw in pairs:
        for label, run in (("service", service), ("raw", raw)):
            plan = run["from_planned_send_ms"] or {}
            lines.append(
                f"{label:8} {run['target_rate']:>7,.0f} {run['achieved_rate']:>9,.1f} "
                f"{run['sent']:>7,} {run['decided']:>7,} {_fmt(run['median_ms']):>8} "
                f"{_fmt(run['p90_ms']):>8} {_fmt(run['p99_ms']):>8} {_fmt(run['max_ms']):>8} "
                f"{_fmt(plan.get('p99')):>8} {_fmt(plan.get('max')):>8}"
            )
    target = r["target"]
    if target.get("met") is not None:
        verdict = "met" if target["met"] else "NOT met"
        lines.append(
            f"target p99 ≤ {target['p99_ms']:.0f} ms at {target['rate']:,.0f}/s: {verdict}"
        )
    lines += ["", "details"]
    for run in r["service_runs"]:
        sv = run["service"]
        lines.append(
            f"  service {run['target_rate']:,.0f}/s: {sv['batches']} batches of "
            f"{sv['mean_batch']:.0f} on average (max {sv['max_batch']}), handler "
            f"{_split(sv['handler_ms'])}, busy {sv['handler_busy_seconds']:.1f} s; "
            f"send → recorded {_split(run['send_to_recorded_ms'])}; recorded → read back "
            f"{_split(run['recorded_to_read_back_ms'])}"
        )
        lines += [f"    {line}" for line in _process(run)]
    for run in r["raw_runs"]:
        lines.append(f"  raw {run['target_rate']:,.0f}/s:")
        lines += [f"    {line}" for line in _process(run)]
    mem = [
        ("after the fill", fl["memory"]["rss_kib"]),
        ("service settled", st["memory"]["rss_kib"]),
    ]
    mem += [
        (f"after {run['target_rate']:,.0f}/s", run["memory"]["rss_kib"])
        for run in r["service_runs"]
    ]
    holds = "service" if r["generator"] == "process" else "service, sender, reader"
    lines.append(
        f"  RSS of this process ({holds}): "
        + ", ".join(f"{label} {kib / 1024:,.0f} MiB" for label, kib in mem)
        + f"; peak {r['memory_peak_kib'] / 1024:,.0f} MiB"
    )
    lines += closing_lines(r, "topics and schema")
    return "\n".join(lines)


def _process(run: dict[str, Any]) -> list[str]:
    gc_counts = ", ".join(f"gen{g} {n}" for g, n in run["gc_collections"].items()) or "-"
    stalls = ", ".join(f"{w:.0f} ({c:.0f} on CPU)" for w, c in run["loop_stall_ms"]) or "-"
    return [
        f"this process's loop thread: {run['loop_thread_cpu_seconds']:.1f} s on CPU, "
        f"{run['loop_thread_runqueue_wait_seconds']:.1f} s waiting for a CPU, in "
        f"{run['wall_seconds']:.1f} s; load average {run['load_average'][0][0]} → "
        f"{run['load_average'][1][0]}",
        f"event-loop lag {_split(run['loop_lag_ms'])}; {run['loop_stalls']} stalls > 50 ms, "
        f"longest (ms) {stalls}; sender lag {_split(run['sender_lag_ms'])}",
        f"GC {sum(run['gc_collections'].values())} collections ({gc_counts}), "
        f"{run['gc_pause_total_ms']:.0f} ms in all ({run['gc_pause_cpu_ms']:.0f} ms on CPU), "
        f"longest {run['gc_pause_max_ms'][0]:.1f} ms ({run['gc_pause_max_ms'][1]:.1f} on CPU)",
    ]


def _split(spread: dict[str, float] | None) -> str:
    if not spread:
        return "-"
    return f"median {spread['median']:.1f} / p99 {spread['p99']:.1f} / max {spread['max']:.1f} ms"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"
