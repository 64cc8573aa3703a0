"""Event store write throughput: single appends, batches of 100 and 1,000, against raw COPY.

In a fresh schema (`bench_<random>`, dropped at the end), as the services' role:

  single      one event per `EventStore.transaction()` (`append_at`, as the services append);
  batch 100   100 events per `EventStore.transaction()`, appended as the services do it
  batch 1000  (`append_at` at the version they know): lock, head, one COPY, notify, commit;
  COPY        the rows of `batch 1000` again, `copy_records_to_table` into a plain table of
              the same columns (no key, no constraint, no trigger), 1,000 per transaction.

Every event is a realistic collection decision (`EncaissementDelegue` for a
`CotisationDue`, about 500 bytes of JSON). The ratio batched/COPY is what the store's
guarantees (serial positions, hash chain, unique ids and versions) cost over a bare insert.
"""

from __future__ import annotations

import argparse
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any
from uuid import uuid4

import asyncpg

from services.adapters.eventstore import EventStore, NewEvent
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import create_pool
from services.adapters.eventstore.server import server_settings
from services.domain.kernel.records import StoredEvent
from services.tools.bench.shared import drop_and_close, run_and_print
from services.tools.options import JSON, Option, add_options

BATCH_SIZES = (100, 1000)
COPY_CHUNK = 1000
RAW_TABLE = "raw_events"
_COLUMNS = tuple(f.name for f in fields(StoredEvent))  # the events table's columns
_RAW_DDL = f"""
CREATE TABLE {RAW_TABLE} (
    position bigint, stream_id text, stream_version integer, event_id uuid, event_type text,
    schema_version smallint, payload jsonb, metadata jsonb, recorded_at timestamptz,
    hash bytea
)"""


OPTIONS = (
    Option("--events", 2000, "single-event appends, one transaction each (default 2000)"),
    Option(
        "--batched-events",
        20_000,
        "events written by each batched mode and by COPY (default 20000)",
    ),
    JSON,
)


def run(args: argparse.Namespace) -> int:
    from services.tools.bench.cli import resolve_database_url

    dsn = resolve_database_url(getattr(args, "database_url", None))
    run_and_print(
        measure(dsn, events=args.events, batched_events=getattr(args, "batched_events", 20_000)),
        args.json,
        format_report,
    )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)


# --- the workload --------------------------------------------------------------------------


def decision(i: int, tag: str) -> tuple[str, NewEvent]:
    """The i-th delegated-collection decision of a run: its stream and event."""
    cotisation_id = f"C{tag}-{i:07d}"
    nir = f"1840{i % 10}75{i % 1_000_000:06d}{i % 97:03d}"[:15]
    payload = {
        "nir": nir,
        "caisse_de_base": "CPAM-75",
        "base_legale": ["CSS L611-20 al.1 (v. 2017-01-01)"],
        "regles_version": "al1-2017.1",
        "cotisation_id": cotisation_id,
        "organisme_id": f"OC-{i % 50:04d}",
        "convention_id": f"CONV-ENC-{i % 50:04d}",
        "montant_cents": 100_000 + i % 90_000,
        "faits_retenus": {
            "affiliation": {
                "organisme_id": f"OC-{i % 50:04d}",
                "mode": "CHOIX",
                "effet_du": "2016-07-01",
            },
            "organisme": {"organisme_id": f"OC-{i % 50:04d}", "forme_juridique": "MUTUELLE"},
            "convention": {
                "convention_id": f"CONV-ENC-{i % 50:04d}",
                "objet": "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
                "effet_du": "2016-01-01",
                "effet_au": None,
            },
        },
    }
    metadata = {
        "causation_id": str(uuid4()),
        "correlation_id": f"corr-{tag}-{i}",
        "service": "collection",
    }
    return f"cotisation-{cotisation_id}", NewEvent(
        uuid4(), "EncaissementDelegue", payload, metadata
    )


def json_bytes(value: Any) -> int:
    """Size of a value's JSON text, as the pool sends it."""
    return len(json.dumps(value, ensure_ascii=False).encode())


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    label: str
    events: int
    transactions: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


# --- the phases ----------------------------------------------------------------------------


async def _single(store: EventStore, work: Sequence[tuple[str, NewEvent]]) -> Phase:
    started = time.perf_counter()
    for stream_id, event in work:
        async with store.transaction() as tx:
            tx.append_at(stream_id, 1, event)
    return Phase(
        "single",
        "single append (append_at, 1/tx)",
        len(work),
        len(work),
        time.perf_counter() - started,
    )


async def _batched(store: EventStore, work: Sequence[tuple[str, NewEvent]], size: int) -> Phase:
    transactions = 0
    started = time.perf_counter()
    for start in range(0, len(work), size):
        async with store.transaction() as tx:
            for stream_id, event in work[start : start + size]:
                tx.append_at(stream_id, 1, event)
        transactions += 1
    return Phase(
        f"batch_{size}",
        f"batch of {size} (one transaction)",
        len(work),
        transactions,
        time.perf_counter() - started,
    )


async def _copy(pool: asyncpg.Pool, schema: str, rows: Sequence[tuple[Any, ...]]) -> Phase:
    transactions = 0
    async with pool.acquire() as conn:
        started = time.perf_counter()
        for start in range(0, len(rows), COPY_CHUNK):
            async with conn.transaction():
                await conn.copy_records_to_table(
                    RAW_TABLE,
                    records=rows[start : start + COPY_CHUNK],
                    columns=list(_COLUMNS),
                    schema_name=schema,
                )
            transactions += 1
        seconds = time.perf_counter() - started
    return Phase(
        f"copy_{COPY_CHUNK}",
        f"raw COPY, {COPY_CHUNK}/tx, no constraint",
        len(rows),
        transactions,
        seconds,
    )


async def measure(dsn: str, *, events: int = 2000, batched_events: int = 20_000) -> dict[str, Any]:
    """Run the four phases in a fresh schema (dropped afterwards); the report as a dict."""
    if events < 1 or batched_events < 1:
        raise ValueError("--events and --batched-events must be positive")
    schema = f"bench_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(dsn)
    try:
        shown = await server_settings(admin, ("server_version", "fsync", "synchronous_commit"))
        server = {
            "version": shown["server_version"],
            "fsync": shown["fsync"],
            "synchronous_commit": shown["synchronous_commit"],
        }
        await apply_migrations(admin, schema)
        await admin.execute(f'SET search_path TO "{schema}"')
        await admin.execute(_RAW_DDL)
        pool = await create_pool(dsn, schema, max_size=2)
        raw_pool = await create_pool(dsn, schema, max_size=1, as_service_role=False)
        try:
            store = EventStore(pool, schema)
            phases = [await _single(store, [decision(i, "s") for i in range(events)])]
            for size in BATCH_SIZES:
                work = [decision(i, f"b{size}") for i in range(batched_events)]
                before = await store.head()
                phases.append(await _batched(store, work, size))
            rows = await store.rows_after(before)
            phases.append(await _copy(raw_pool, schema, rows))
            sample = decision(0, "size")[1]
        finally:
            await raw_pool.close()
            await pool.close()
    finally:
        await drop_and_close(admin, schema)
    rates = {p.name: p.events_per_second for p in phases}
    copy_rate = rates[f"copy_{COPY_CHUNK}"]
    return {
        "schema": schema,
        "server": server,
        "payload_bytes": json_bytes(sample.payload),
        "metadata_bytes": json_bytes(sample.metadata),
        "event_type": sample.event_type,
        "modes": {
            p.name: asdict(p)
            | {"seconds": round(p.seconds, 4), "events_per_second": round(p.events_per_second, 1)}
            for p in phases
        },
        "ratios": {
            **{
                f"batch_{s}_over_copy": round(rates[f"batch_{s}"] / copy_rate, 3)
                for s in BATCH_SIZES
            },
            "batch_1000_over_single": round(rates["batch_1000"] / rates["single"], 1),
        },
    }


def format_report(report: dict[str, Any]) -> str:
    """The report as a readable table."""
    server = report["server"]
    lines = [
        f"event store write throughput — PostgreSQL {server['version']}, "
        f"fsync={server['fsync']}, synchronous_commit={server['synchronous_commit']}",
        f"{report['event_type']} events: payload {report['payload_bytes']} B + metadata "
        f"{report['metadata_bytes']} B of JSON, "
        f"schema {report['schema']} (dropped)",
        "",
        f"{'mode':40} {'events':>8} {'transactions':>13} {'seconds':>9} {'events/s':>10}",
    ]
    for mode in report["modes"].values():
        lines.append(
            f"{mode['label']:40} {mode['events']:>8} {mode['transactions']:>13} "
            f"{mode['seconds']:>9.3f} {mode['events_per_second']:>10,.0f}"
        )
    ratios = report["ratios"]
    lines += [
        "",
        "batched / COPY: "
        + ", ".join(f"batch {s} = {ratios[f'batch_{s}_over_copy']:.2f}" for s in BATCH_SIZES),
        f"batch 1000 / single: {ratios['batch_1000_over_single']:.1f}x",
    ]
    return "\n".join(lines)
