"""The collection service at national scale: memory, start, throughput and latency by store size.

For an empty store and for each size of `--sizes` (default 1, 2 and 5 million events), in a
store schema, topics and a consumer group of that row's own (suffix `benchscale<hex>x<row>`,
dropped when the row ends, whatever happened, unless `--keep`):

  fill        the store is filled by bulk COPY (`EventStore.bulk_copy`), not through Kafka,
              with valid, hash-chained events: organisms and conventions, then one
              affiliation per NIR of the registry (`--nirs`, at most half the size), then
              rounds over every NIR of a contribution and its decision, and every other
              time a payment and its decision, until the size is reached. The events are
              those the service's real write path records: one block per organism is
              decided by the batch handler on the in-memory store, and each NIR's events
              are that block with its NIR, ids and event ids put in (decision ids derived
              from the input's as the processor derives them). The relay's checkpoint and
              the balances projection are set at the head, as if the history had long been
              published. Timed; the disk the store's `events` table takes
              (`pg_total_relation_size`, indexes and TOAST included) is reported. Then its
              decision state is folded (`mandat state catch-up`, what migrating a store
              to the state tables costs), timed apart; then the store is settled (VACUUM
              ANALYZE of both tables, CHECKPOINT), as autovacuum would in the hours after
              a bulk load: the runs measure a store at rest.
  start       `mandat collection run` as a process of its own; from its spawn to `/ready`
              answering 200 (its decision state is read by key: nothing is folded); its
              RSS (`/proc/<pid>/status`) then, and after the runs below.
  throughput  `--events` contributions (NIRs of the registry, the same bytes in every row),
              published before the start; from the first decision read back from the
              settlement topic to the last, every input decided. The raw aiokafka
              passthrough of the same messages (`bench pipeline`'s: consume → produce →
              commit, from its first fetch to its last copy read back) runs after the
              service stopped, in the same row; the ratio service / passthrough.
  latency     contributions paced at `--rate` for `--latency-seconds`, sent while the
              service runs (`bench load`'s paced driver); per input, from its send to its
              decision read back: median, p99, max.
  pair        the empty row only: a second instance joins the consumer group, and as many
              contributions as the throughput run are decided by the two (inputs/s, CPU
              per input of both), next to one instance's.

The empty row's store holds the registry the runs' inputs need (organisms, conventions and
the affiliations of their NIRs) and nothing else; the ratios the issue's targets use (RSS,
throughput and p99 of a size over the empty row) are printed beside each size.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import orjson

from services.adapters.eventstore import EventStore
from services.adapters.eventstore.leases import RelayCheckpoints
from services.adapters.eventstore.memory import MemoryEventStore
from services.adapters.eventstore.pool import Encoded
from services.adapters.eventstore.shards import MAX_SHARDS, read_layout
from services.adapters.runtime import state
from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.shards import ABOUT_ORGANISMS, shard_of
from services.domain.kernel.processing import decision_id
from services.domain.kernel.records import GENESIS_HASH, StoredEvent, canonical_bytes, chain_hash
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.bench.load import Pacing, Pauses, drive, payment
from services.tools.bench.pipeline import (
    KINDS,
    ORGANISMS,
    Message,
    Watcher,
    _cleanup,
    _load,
    _producer,
    _server,
    broker_benchmark,
    inputs,
    nir,
    passthrough,
    publish,
    registry_facts,
    run_settings,
    until,
)
from services.tools.bench.shared import ensure_run_topics
from services.tools.devstack.system import process_env
from services.tools.options import Option

KIND = KINDS["collection"]
RUN_NIRS = 1000  # the NIRs the throughput and latency inputs are about, in every row
MAX_NIRS = 1_000_000  # sample_nir is distinct below this
CHUNK = 20_000  # rows per COPY
_IDS = uuid.UUID("0d7c9e3a-51f4-4b8e-9a26-5ca1e0b00c12")
_T0 = datetime(2017, 1, 2, 8, 0, tzinfo=UTC)
_TEMPLATE_TAG = "TPL"


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from exc
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("sizes must be at least 2")
    return sizes


OPTIONS = (
    Option(
        "--sizes",
        (1_000_000, 2_000_000, 5_000_000),
        "stored events of each row, comma-separated (default 1000000,2000000,5000000)",
        type=_sizes,
    ),
    Option(
        "--nirs",
        1_000_000,
        "NIRs of the registry (each row: at most half its size; at most 1000000)",
    ),
    Option("--events", 20_000, "contributions of each throughput run (default 20000)"),
    Option("--rate", 500.0, "inputs per second of the latency run"),
    Option("--latency-seconds", 20.0, "duration of the latency run"),
    Option(
        "--shards",
        6,
        "shards of a last row's store, holding the runs' registry only, run by one instance "
        "then two (0: no such row; best a multiple of the topics' partitions)",
    ),
)
"""The options of the rows, named as `measure` takes them (with --timeout and --keep)."""


# --- the history: one block per organism decided by the real write path, then stamped ------


@dataclass(frozen=True, slots=True)
class Row:
    """A template row: its stream and bytes with the template's ids, and what it is: an
    input (`n` 0) or the n-th decision on the input `cause` rows before it."""

    stream_id: str
    version: int
    event_type: str
    payload: bytes
    metadata: bytes
    event_id: str
    n: int
    cause: int


@dataclass(frozen=True)
class Template:
    """What the batch handler recorded: the organisms and conventions (`prefix`), and, for
    each organism, an affiliation of NIR number `o` and a contribution and a payment on it
    with their decisions."""

    prefix: list[StoredEvent]
    affiliation: list[list[Row]]
    contribution: list[list[Row]]
    payment: list[list[Row]]


def _ids(o: int) -> tuple[str, str]:
    return f"COT-{_TEMPLATE_TAG}-{o:07d}", f"PAY-{_TEMPLATE_TAG}-{o:07d}"


async def template() -> Template:
    """Decide one block per organism through the batch handler, on the in-memory store."""
    store = MemoryEventStore("scale-template")
    # the in-memory store keeps the port the batch handler uses (Feeder names the class)
    feeder = Feeder(cast(EventStore, store), KIND.service, ServiceSettings(), seed="scale-t")
    for _, event_type, payload in registry_facts(ORGANISMS):
        feeder.message(event_type, payload)
    for o in range(ORGANISMS):
        event_type, payload = KIND.make_input(o, _TEMPLATE_TAG, nir(o))
        feeder.message(event_type, payload)
        feeder.message(*payment(o, _TEMPLATE_TAG, nir(o), payload["montant_cents"]))
    report = await feeder.flush()
    if report.rejected:
        raise RuntimeError(f"the template was rejected: {report.rejected}")
    events = await store.read_all(0, 100_000)
    prefix = [
        e for e in events if e.event_type != "AffiliationEnregistree" and "nir" not in e.payload
    ]
    blocks: dict[tuple[str, int], list[Row]] = {}
    by_id = {e.event_id: e for e in events}
    for e in events:
        if "nir" not in e.payload:
            continue
        o = next(i for i in range(ORGANISMS) if nir(i) == e.payload["nir"])
        part = _part(e, by_id)
        blocks.setdefault((part, o), []).append(_row(e, by_id))
    return Template(
        prefix,
        [blocks[("affiliation", o)] for o in range(ORGANISMS)],
        [blocks[("contribution", o)] for o in range(ORGANISMS)],
        [blocks[("payment", o)] for o in range(ORGANISMS)],
    )


def _input_of(e: StoredEvent, by_id: dict[uuid.UUID, StoredEvent]) -> StoredEvent:
    cause = e.metadata.get("causation_id")
    return by_id[uuid.UUID(cause)] if e.metadata.get("service") and cause else e


def _part(e: StoredEvent, by_id: dict[uuid.UUID, StoredEvent]) -> str:
    trigger = _input_of(e, by_id).event_type
    return {"AffiliationEnregistree": "affiliation", "PaiementRecu": "payment"}.get(
        trigger, "contribution"
    )


def _row(e: StoredEvent, by_id: dict[uuid.UUID, StoredEvent]) -> Row:
    trigger = _input_of(e, by_id)
    n = 0
    if trigger is not e:
        n = next(
            k for k in range(1, 10) if decision_id(trigger.event_id, k, "collection") == e.event_id
        )
    return Row(
        e.stream_id,
        e.stream_version,
        e.event_type,
        canonical_bytes(e.payload),
        canonical_bytes(e.metadata),
        str(e.event_id),
        n,
        e.position - trigger.position,
    )


def history(t: Template, size: int, nirs: int) -> Iterator[tuple[str, int, str, str, bytes, bytes]]:
    """(stream, version, event id, type, payload, metadata) of a store of about `size`
    events (whole blocks): the registry of `nirs` NIRs, then rounds of contributions."""
    for e in t.prefix:
        yield (
            e.stream_id,
            e.stream_version,
            str(e.event_id),
            e.event_type,
            canonical_bytes(e.payload),
            canonical_bytes(e.metadata),
        )
    made = len(t.prefix)
    for n in range(nirs):
        block = _stamped(t.affiliation[n % ORGANISMS], n, f"A{n}", "", "")
        made += len(block)
        yield from block
    r = 0
    while made < size:
        for n in range(nirs):
            if made >= size:
                return
            cotisation, paiement = f"COT-s{r}-{n:07d}", f"PAY-s{r}-{n:07d}"
            parts = [t.contribution] + ([t.payment] if (n + r) % 2 == 0 else [])
            for k, part in enumerate(parts):
                block = _stamped(part[n % ORGANISMS], n, f"{r}/{n}/{k}", cotisation, paiement)
                made += len(block)
                yield from block
        r += 1


def _stamped(
    rows: list[Row], n: int, key: str, cotisation: str, paiement: str
) -> list[tuple[str, int, str, str, bytes, bytes]]:
    """A template block with NIR number `n`, the given business ids and fresh event ids."""
    o = n % ORGANISMS
    number = nir(n)
    old_cot, old_pay = _ids(o)
    swaps = [(nir(o), number)]
    if cotisation:
        swaps += [(old_cot, cotisation), (old_pay, paiement)]
    out: list[tuple[str, int, str, str, bytes, bytes]] = []
    ids: list[str] = []
    for i, row in enumerate(rows):
        if row.n == 0:
            new_id = str(uuid.uuid5(_IDS, f"{key}/{i}"))
        else:
            cause = uuid.UUID(ids[i - row.cause])
            new_id = str(decision_id(cause, row.n, "collection"))
        ids.append(new_id)
        stream, payload, metadata = row.stream_id, row.payload, row.metadata
        for old, new in swaps:
            stream = stream.replace(old, new)
            payload = payload.replace(old.encode(), new.encode())
        if row.n:
            old_cause = rows[i - row.cause].event_id.encode()
            metadata = metadata.replace(old_cause, ids[i - row.cause].encode())
        out.append((stream, row.version, new_id, row.event_type, payload, metadata))
    return out


class Chain:
    """One store's rows (`COLUMNS`): positions from 1, hashes chained from genesis."""

    def __init__(self) -> None:
        self.position = 0
        self.previous = GENESIS_HASH

    def row(self, event: tuple[str, int, str, str, bytes, bytes]) -> tuple[Any, ...]:
        stream, version, event_id, event_type, payload, metadata = event
        self.position += 1
        position = self.position
        recorded_at = _T0 + timedelta(milliseconds=position)
        eid = uuid.UUID(event_id)
        self.previous = chain_hash(
            self.previous,
            position=position,
            stream_id=stream,
            stream_version=version,
            event_id=eid,
            event_type=event_type,
            schema_version=1,
            payload_json=payload,
            metadata_json=metadata,
            recorded_at=recorded_at,
        )
        return (
            position,
            stream,
            version,
            eid,
            event_type,
            1,
            Encoded(payload),
            Encoded(metadata),
            recorded_at,
            self.previous,
        )


def chained_rows(
    events: Iterator[tuple[str, int, str, str, bytes, bytes]],
) -> Iterator[tuple[Any, ...]]:
    """The store's rows (`COLUMNS`), positions from 1, hashes chained from genesis."""
    chain = Chain()
    return (chain.row(event) for event in events)


def shards_of(event: tuple[str, int, str, str, bytes, bytes], shards: int) -> range | tuple[int]:
    """The shards a history's event goes to, as the service would record it
    (services/adapters/runtime/shards.py)."""
    if shards == 1:
        return (0,)
    if event[3] in ABOUT_ORGANISMS:
        return range(shards)
    return (shard_of(orjson.loads(event[4])["nir"], shards),)


async def fill(
    s: ServiceSettings, dsn: str, t: Template, *, size: int, nirs: int
) -> dict[str, Any]:
    """COPY the history into the row's store (each event into its shard, for a store in
    shards); its relay checkpoints and balances at the head; the store folded into its
    state, then settled (vacuumed, analyzed, checkpointed)."""
    conn = await asyncpg.connect(dsn)
    try:
        layout = await read_layout(conn, KIND.schema(s))
    finally:
        await conn.close()
    stores = [await prepare_store(dsn, schema, max_size=2) for schema in layout.schemas]
    chains = [Chain() for _ in stores]
    chunks: list[list[tuple[Any, ...]]] = [[] for _ in stores]
    held = [_Holdings() for _ in stores]
    started = time.perf_counter()
    try:
        for event in history(t, size, nirs):
            for k in shards_of(event, layout.shards):
                row = chains[k].row(event)
                held[k].add(row)
                chunks[k].append(row)
                if len(chunks[k]) == CHUNK:
                    await stores[k].bulk_copy(chunks[k], chunk=CHUNK)
                    chunks[k] = []
        for store, chunk in zip(stores, chunks, strict=True):
            if chunk:
                await store.bulk_copy(chunk, chunk=CHUNK)
            await store.analyze()
        seconds = time.perf_counter() - started
        # the decision state of that history, as a store migrated to it gets it
        # (`mandat state catch-up`); a store written by the service keeps it as it goes
        folded = time.perf_counter()
        for store in stores:
            await state.catch_up(store, KIND.service.view)
        state_seconds = time.perf_counter() - folded
        settled = time.perf_counter()
        for store in stores:
            await store.settle()
    finally:
        for store in stores:
            await store.pool.close()
    conn = await asyncpg.connect(dsn)
    disk = state_disk = 0
    try:
        for schema, chain, holdings in zip(layout.schemas, chains, held, strict=True):
            await holdings.save(conn, schema, chain.position)
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")  # the bulk load's dirty pages written out now
        settle_seconds = time.perf_counter() - settled
        for schema in layout.schemas:
            events, states = await conn.fetchrow(
                "SELECT pg_total_relation_size(format('%I.events', $1::text)::regclass),"
                " pg_total_relation_size(format('%I.decision_state', $1::text)::regclass)",
                schema,
            )
            disk, state_disk = disk + int(events), state_disk + int(states)
    finally:
        await conn.close()
    head = sum(chain.position for chain in chains)
    return {
        "stored_events": head,
        "shards": layout.shards,
        "nirs": nirs,
        "seconds": round(seconds, 2),
        "events_per_second": round(head / seconds, 1) if seconds else None,
        "state_seconds": round(state_seconds, 2),
        "settle_seconds": round(settle_seconds, 2),  # VACUUM (ANALYZE), CHECKPOINT
        "disk_bytes": disk,
        "state_disk_bytes": state_disk,
    }


class _Holdings:
    """The balances projection of what is filled (sums of payments collected on account per
    organism and caisse), so that the service's projector starts at the head too."""

    def __init__(self) -> None:
        self.sums: dict[tuple[str, str], list[int]] = {}

    def add(self, row: tuple[Any, ...]) -> None:
        if row[4] != "PaiementEncaissePourCompte":
            return
        payload = orjson.loads(bytes(row[6]))
        held = self.sums.setdefault((payload["organisme_id"], payload["caisse_de_base"]), [0, 0])
        held[0] += payload["montant_cents"]
        held[1] += 1

    async def save(self, conn: asyncpg.Connection, schema: str, head: int) -> None:
        async with conn.transaction():
            await conn.executemany(
                f'INSERT INTO "{schema}".projection_sommes_detenues'
                " (organisme_id, caisse_de_base, montant_cents, paiements) VALUES ($1, $2, $3, $4)",
                [(o, c, v[0], v[1]) for (o, c), v in sorted(self.sums.items())],
            )
            await conn.execute(f'UPDATE "{schema}".projection_checkpoints SET position = $1', head)
            await RelayCheckpoints(schema).save(conn, KIND.name, head)


# --- the service as a process of its own ------------------------------------------------------


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM it when the benchmark's process dies, however
    it dies (killed, timed out), so that no service outlives its run."""
    import ctypes
    import signal as signals

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signals.SIGTERM)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_environment(s: ServiceSettings, port: int) -> dict[str, str]:
    """What makes `mandat collection run` use the row's settings: the stack's environment
    without secrets, its own login, its topics, schema, group and HTTP port."""
    endpoints = {
        "DATABASE_URL": s.database_url.get_secret_value(),
        "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
        "MANDAT_COLLECTION_DB_PASSWORD": _secret(s.collection_db_password),
    }
    env = process_env(KIND.name, endpoints)
    for name, value in s.model_dump().items():
        if name.startswith(("topic_", "collection_")) and isinstance(value, str | int):
            env[f"MANDAT_{name.upper()}"] = str(value)
    env["MANDAT_COLLECTION_HTTP_PORT"] = str(port)
    repo = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    return env


def _secret(value: Any) -> str:
    return str(value.get_secret_value()) if value is not None else ""


def rss_kib(pid: int) -> dict[str, int]:
    """A process's resident memory now and at its peak, in KiB (Linux)."""
    found: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0])
    return {"rss_kib": found.get("VmRSS", 0), "peak_rss_kib": found.get("VmHWM", 0)}


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


class ServiceProcess:
    """`mandat collection run` in a new session, its output in a file; stopped on exit
    (SIGTERM, then SIGKILL after 20 s)."""

    def __init__(self, s: ServiceSettings, workdir: Path) -> None:
        self.port = _free_port()
        self.env = service_environment(s, self.port)
        self.log = workdir / "collection.log"
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.tools.cli", KIND.name, "run"],
                cwd=self.workdir,  # not the repository: no .run/endpoints.env is read
                env=self.env,
                stdout=out,
                stderr=out,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def ready(self, timeout: float) -> float:
        """Seconds from the spawn to `/ready` answering 200."""
        assert self.process is not None
        started = time.monotonic()
        while not await asyncio.to_thread(_ready, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited ({self.process.returncode}): {self.tail()}")
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"the service was not ready in {timeout:.0f} s")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    def tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


class LockWatch:
    """While a run lasts, looks at the stores' append locks every few milliseconds
    (`pg_locks`, joined to the connections, whose names end with their process's id): how
    often two instances were appending at the same moment, and how often an append was
    waiting for a lock another held."""

    def __init__(self, dsn: str, schemas: Sequence[str], every: float = 0.005) -> None:
        self.dsn = dsn
        self.keys = [EventStore.lock_key_of(schema) for schema in schemas]
        self.every = every
        self.looks = self.both = self.waiting = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LockWatch:
        conn = await asyncpg.connect(self.dsn)
        self._task = asyncio.create_task(self._watch(conn))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task

    async def _watch(self, conn: asyncpg.Connection) -> None:
        try:
            while not self._stop.is_set():
                rows = await conn.fetch(
                    "SELECT a.application_name AS name, l.granted FROM pg_locks l"
                    " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
                    " AND l.objid::bigint = ANY($1::bigint[])",
                    self.keys,
                )
                holders = {r["name"].rsplit("-", 1)[-1] for r in rows if r["granted"]}
                self.looks += 1
                self.both += len(holders) >= 2
                self.waiting += any(not r["granted"] for r in rows)
                await asyncio.sleep(self.every)
        finally:
            await conn.close()

    def report(self) -> dict[str, Any]:
        looks = max(self.looks, 1)
        return {
            "looks": self.looks,
            "two_appending": round(self.both / looks, 3),
            "waiting": round(self.waiting / looks, 3),
        }


# --- one row ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Runs:
    """What each row runs on its store, the same in every row: `events` contributions as
    fast as they go, then a paced run at `rate` for `latency_seconds`."""

    events: int
    rate: float
    latency_seconds: float
    timeout: float  # bounds each wait
    keep: bool  # leave the row's schema and topics behind
    pair: bool = False  # then a run with two instances (the first row only)
    shards: int = 1  # the row's store split into that many shards


async def measure_row(
    bootstrap: str, dsn: str, t: Template, suffix: str, runs: Runs, *, size: int, nirs: int
) -> dict[str, Any]:
    """Fill a store of `size` events (0: the runs' registry only), then start, throughput,
    latency and the passthrough; with `runs.pair`, then the same throughput run again with
    a second instance in the group; the row's schema and topics dropped at the end."""
    plain = run_settings(bootstrap, dsn, suffix).model_copy(update={"store_shards": runs.shards})
    s = await provision_services(plain, (KIND.name,))
    through = (f"{suffix}.passthrough.in", f"{suffix}.passthrough.out")
    names = [*s.all_topics(), *through]
    row: dict[str, Any] = {"size": size, "suffix": suffix}
    run_nirs = min(RUN_NIRS, nirs)
    try:
        await ensure_run_topics(bootstrap, names, s)
        row["fill"] = await fill(s, dsn, t, size=size, nirs=nirs)
        work = inputs(KIND, runs.events, run_nirs, "tp")
        warm = inputs(KIND, 1, run_nirs, "warm")
        producer = _producer(bootstrap, linger_ms=5)
        await producer.start()
        try:
            await publish(producer, through[0], ((m.key, m.value) for m in work))
            with tempfile.TemporaryDirectory(prefix="mandat-scale-") as workdir:
                async with Watcher(
                    bootstrap, KIND.output_topic(s), KIND.final_types, "collection"
                ) as w:
                    w.expect([*warm, *work])
                    with ServiceProcess(s, Path(workdir)) as service:
                        row["ready_seconds"] = round(await service.ready(runs.timeout), 3)
                        row["rss_ready_kib"] = rss_kib(service.pid)["rss_kib"]
                        await _warm_up(producer, s, warm, w, runs.timeout)
                        row["service"] = await _throughput(
                            producer, s, work, w, (service,), runs.timeout
                        )
                        row["latency"] = await _latency(
                            s, run_nirs, runs.rate, runs.latency_seconds, runs.timeout
                        )
                        memory = rss_kib(service.pid)
                        row["rss_after_kib"] = memory["rss_kib"]
                        row["peak_rss_kib"] = memory["peak_rss_kib"]
                        if runs.pair:
                            row["pair"] = await _pair(
                                producer, s, w, service, Path(workdir), runs, run_nirs
                            )
        finally:
            await producer.stop()
        row["passthrough"] = await passthrough(
            bootstrap, *through, f"{suffix}-passthrough", runs.events, runs.timeout
        )
        pt = row["passthrough"]["events_per_second"]
        sv = row["service"]["events_per_second"]
        row["ratio"] = round(sv / pt, 3) if sv and pt else None
    finally:
        if not runs.keep:
            await _cleanup(bootstrap, dsn, [s.collection_schema, s.benefits_schema], names)
    return row


async def _warm_up(
    producer: Any, s: ServiceSettings, warm: list[Message], w: Watcher, timeout: float
) -> None:
    """One input decided before the clock runs: the service has joined its group and has
    its partitions (the group's join is not the path's cost)."""
    await publish(producer, KIND.input_topic(s), ((m.key, m.value) for m in warm))
    await until(lambda: w.decided(warm) == len(warm), timeout, "the warm-up input", 0.02)


async def _throughput(
    producer: Any,
    s: ServiceSettings,
    work: list[Message],
    w: Watcher,
    services: Sequence[ServiceProcess],
    timeout: float,
) -> dict[str, Any]:
    """`work` published to the running instances; from the first send to the last decision
    read back, and their CPU time meanwhile."""
    cpu_before = sum(cpu_seconds(service.pid) for service in services)
    conn = await asyncpg.connect(s.database_url.get_secret_value())
    try:
        schemas = (await read_layout(conn, KIND.schema(s))).schemas
    finally:
        await conn.close()
    async with LockWatch(s.database_url.get_secret_value(), schemas) as locks:
        started = time.monotonic()
        await publish(producer, KIND.input_topic(s), ((m.key, m.value) for m in work))
        await until(lambda: w.decided(work) == len(work), timeout, "the throughput run", 0.02)
    seconds = max(w.arrived[m.event_id] for m in work) - started
    cpu = sum(cpu_seconds(service.pid) for service in services) - cpu_before
    return {
        "instances": len(services),
        "shards": len(schemas),
        "locks": locks.report(),
        "events": len(work),
        "decided": w.decided(work),
        "seconds": round(seconds, 3),
        "events_per_second": round(len(work) / seconds, 1),
        "cpu_ms_per_input": round(1000 * cpu / len(work), 3),
        "decisions": dict(sorted(w.types.items())),
    }


async def _pair(
    producer: Any,
    s: ServiceSettings,
    w: Watcher,
    first: ServiceProcess,
    workdir: Path,
    runs: Runs,
    nirs: int,
) -> dict[str, Any]:
    """A second instance joins the group (the topics' partitions are shared out), then as
    many inputs as the throughput run, of the same kind over the same NIRs, are decided by
    the two: the inputs per second, and the CPU time of both per input."""
    second_dir = workdir / "second"
    second_dir.mkdir()
    work = inputs(KIND, runs.events, nirs, "tp2")
    warm = inputs(KIND, 6, nirs, "warm2")  # over the NIRs, so over every partition
    w.expect([*warm, *work])
    with ServiceProcess(s, second_dir) as second:
        await second.ready(runs.timeout)
        await _warm_up(producer, s, warm, w, runs.timeout)
        return await _throughput(producer, s, work, w, (first, second), runs.timeout)


async def _latency(
    s: ServiceSettings, nirs: int, rate: float, seconds: float, timeout: float
) -> dict[str, Any]:
    """`bench load`'s paced run against the running service, its driver in this loop."""
    pacing = Pacing((rate,), seconds, nirs, timeout, "loop")
    d = pacing.drive(KIND, s, KIND.input_topic(s), KIND.output_topic(s), False, rate)
    found = await drive(d, "loop", Pauses())
    keys = ("target_rate", "achieved_rate", "sent", "decided", "median_ms", "p99_ms", "max_ms")
    return {k: found[k] for k in keys}


async def measure(
    bootstrap: str,
    dsn: str,
    *,
    sizes: tuple[int, ...],  # the defaults are the options' (OPTIONS, add_run_options)
    nirs: int,
    events: int,
    rate: float,
    latency_seconds: float,
    shards: int,
    timeout: float,
    keep: bool,
) -> dict[str, Any]:
    """The empty row, then one row per size, then the empty row again in shards; the report."""
    if events < 2 or rate <= 0 or latency_seconds <= 0 or not 1 <= nirs <= MAX_NIRS:
        raise ValueError("--events ≥ 2, --rate and --latency-seconds > 0, 1 ≤ --nirs ≤ 1000000")
    if shards == 1 or not 0 <= shards <= MAX_SHARDS:
        raise ValueError(f"--shards: 0 (none) or 2 to {MAX_SHARDS}")
    suffix = f"benchscale{secrets.token_hex(4)}"
    t = await template()
    run_nirs = min(RUN_NIRS, nirs)
    report: dict[str, Any] = {
        "suffix": suffix,
        "kept": keep,
        "service": KIND.name,
        "memory_of": "a `mandat collection run` process (/proc/<pid>/status)",
        "nirs": nirs,
        "run_nirs": run_nirs,
        "events": events,
        "rate": rate,
        "latency_seconds": latency_seconds,
        "machine": {"cpus": os.cpu_count(), "load_average_before": _load()},
        "kafka": bootstrap,
        "postgres": await _server(dsn),
        "rows": [],
    }
    runs = Runs(events, rate, latency_seconds, timeout, keep)
    plan = [(0, run_nirs, 1), *((size, min(nirs, size // 2), 1) for size in sizes)]
    if shards:
        plan.append((0, run_nirs, shards))
    for index, (size, registry, split) in enumerate(plan):
        # one instance against two: on one store, and on one in shards
        on = dataclasses.replace(runs, pair=index == 0 or split > 1, shards=split)
        row = await measure_row(
            bootstrap, dsn, t, f"{suffix}x{index}", on, size=size, nirs=max(registry, run_nirs)
        )
        report["rows"].append(row)
    report["machine"]["load_average_after"] = _load()
    empty = report["rows"][0]
    for row in report["rows"]:
        row["ratios"] = {
            "rss": _ratio(row["rss_after_kib"], empty["rss_after_kib"]),
            "throughput": _ratio(
                row["service"]["events_per_second"], empty["service"]["events_per_second"]
            ),
            "p99": _ratio(row["latency"]["p99_ms"], empty["latency"]["p99_ms"]),
        }
    report["all_decided"] = all(
        r["service"]["decided"] == r["service"]["events"]
        and r["latency"]["decided"] == r["latency"]["sent"]
        and ("pair" not in r or r["pair"]["decided"] == r["pair"]["events"])
        for r in report["rows"]
    )
    for row in report["rows"]:
        if "pair" in row:
            row["pair"]["ratio"] = _ratio(
                row["pair"]["events_per_second"], row["service"]["events_per_second"]
            )
    return report


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


# --- the report -------------------------------------------------------------------------------


def format_report(r: dict[str, Any]) -> str:
    """The report as a table, one line per store size."""
    pg = r["postgres"]
    lines = [
        f"scale — {r['service']} by store size; Kafka {r['kafka']}, PostgreSQL "
        f"{pg['server_version']} (fsync={pg['fsync']}, synchronous_commit="
        f"{pg['synchronous_commit']}), {r['machine']['cpus']} CPUs",
        f"registry up to {r['nirs']:,} NIRs (at most half a row's size); runs: "
        f"{r['events']:,} contributions over {r['run_nirs']:,} NIRs, then {r['rate']:,.0f}/s "
        f"for {r['latency_seconds']:g} s; RSS of {r['memory_of']}",
        "",
        f"{'stored':>10} {'shards':>6} {'fill s':>7} {'state s':>7} {'disk MiB':>9} "
        f"{'state MiB':>9} "
        f"{'ready s':>8} {'RSS rdy':>8} {'RSS aft':>8} {'svc ev/s':>9} {'raw ev/s':>9} "
        f"{'ratio':>6} {'cpu ms/in':>9} {'med ms':>7} {'p99 ms':>7} {'max ms':>7} {'×RSS':>6} "
        f"{'×thr':>6} {'×p99':>6}",
    ]
    for row in r["rows"]:
        fl, sv, lt, x = row["fill"], row["service"], row["latency"], row["ratios"]
        lines.append(
            f"{fl['stored_events']:>10,} {fl['shards']:>6} {fl['seconds']:>7.1f} "
            f"{fl['state_seconds']:>7.1f} "
            f"{fl['disk_bytes'] / 2**20:>9,.0f} {fl['state_disk_bytes'] / 2**20:>9,.0f} "
            f"{row['ready_seconds']:>8.2f} "
            f"{row['rss_ready_kib'] / 1024:>8,.0f} {row['rss_after_kib'] / 1024:>8,.0f} "
            f"{_num(sv['events_per_second']):>9} "
            f"{_num(row['passthrough']['events_per_second']):>9} {_num(row['ratio'], 3):>6} "
            f"{sv['cpu_ms_per_input']:>9.3f} {_num(lt['median_ms'], 1):>7} "
            f"{_num(lt['p99_ms'], 1):>7} {_num(lt['max_ms'], 1):>7} "
            f"{_num(x['rss'], 2):>6} {_num(x['throughput'], 2):>6} {_num(x['p99'], 2):>6}"
        )
    for row in r["rows"]:
        if "pair" in row:
            lines += ["", _pair_line(row)]
    lines += [
        "",
        "RSS in MiB; ratio = service / raw passthrough; × = this row over the first (the "
        "registry of the runs only)",
        f"every input decided: {r['all_decided']}; load average (1, 5, 15 min) before "
        f"{r['machine']['load_average_before']}, after {r['machine'].get('load_average_after')}",
        f"schemas, roles and topics of {r['suffix']}: {'kept' if r['kept'] else 'dropped'}",
    ]
    return "\n".join(lines)


def _pair_line(row: dict[str, Any]) -> str:
    """One instance against two on a row's store, and how their appends met."""
    one, pair = row["service"], row["pair"]
    store = (
        f"the store in {one['shards']} shards" if one["shards"] > 1 else "the store in one piece"
    )
    return (
        f"{store} ({row['fill']['stored_events']:,} events): two instances "
        f"{_num(pair['events_per_second'])} inputs/s against {_num(one['events_per_second'])} "
        f"for one (×{_num(pair['ratio'], 2)}); CPU {pair['cpu_ms_per_input']:.3f} ms per input "
        f"for both, against {one['cpu_ms_per_input']:.3f}; of {pair['locks']['looks']:,} looks "
        f"at the append locks, {100 * pair['locks']['two_appending']:.1f} % saw both instances "
        f"appending at once, {100 * pair['locks']['waiting']:.1f} % an append waiting for a lock"
    )


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


configure, run = broker_benchmark(
    OPTIONS, measure, format_report, keep="leave each row's store schema and topics behind"
)
