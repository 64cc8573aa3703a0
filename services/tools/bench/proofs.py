"""Proofs of a subject: size and verification time, for 100 events in a store of 1,000,000.

In a fresh schema (`bench_proofs_<random>`, dropped at the end) the store is filled by bulk
COPY with generated rows carrying correct chain hashes (what the appender would have
written): contributions and their decisions about many people, and, spread evenly through
the store, 50 inputs and 50 decisions about one person (100 events). An anchor is signed
over the whole store with a throw-away key (no Kafka: the anchor is given to the prover).

Measured:
  tree        the Merkle root over every row, streamed from the store (chain hashes only) -
              what `audit chain --public-key` and an anchorer without an anchor do once;
  prove       `prove_service`: the subject's trail, one pass over the chain hashes for every
              audit path, the proof document;
  check       `check_proof` on the proof's bytes with the public key alone (best of 5);
  extend      an anchorer's frontier extended by 1,000 new rows and signed (best of 3).
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from contracts.nir import make_nir
from services.adapters.eventstore import EventStore
from services.adapters.eventstore.migrations import apply_migrations
from services.adapters.eventstore.pool import Encoded, create_pool
from services.adapters.trust.anchors import Anchor, sign
from services.adapters.trust.merkle import Frontier
from services.adapters.trust.storetree import chain_hashes, tree_of
from services.domain.kernel.records import GENESIS_HASH, NewEvent, chained
from services.tools.audit.proofs import check_proof, proof_bytes, prove_service
from services.tools.bench.shared import drop_and_close, run_and_print
from services.tools.options import JSON, Option, add_options

SUBJECT = make_nir("1750175123456")
_IDS = UUID("6b2a1f0e-5c4d-4e3b-9a8f-7d6c5b4a3e21")
_T0 = datetime(2017, 1, 2, 8, 0, tzinfo=UTC)


OPTIONS = (
    Option("--rows", 1_000_000, "rows in the store (default 1,000,000)"),
    Option(
        "--subject-events", 100, "events about the subject, spread through the store (default 100)"
    ),
    JSON,
)


def run(args: argparse.Namespace) -> int:
    from services.tools.bench.cli import resolve_database_url

    dsn = resolve_database_url(getattr(args, "database_url", None))
    run_and_print(
        measure(dsn, rows=args.rows, subject_events=args.subject_events), args.json, format_report
    )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)


# --- the store ------------------------------------------------------------------------------


def _event(
    i: int, about_subject: bool
) -> tuple[str, int, UUID, str, dict[str, Any], dict[str, Any]]:
    """Row i (0-based): a contribution due (even), and the decision on it (odd)."""
    pair = i // 2
    nir = (
        SUBJECT
        if about_subject
        else make_nir(f"1{pair % 99 + 1:02d}{pair % 12 + 1:02d}75{pair % 1_000_000:06d}")
    )
    cotisation_id = f"COT-{pair:08d}"
    input_id = uuid5(_IDS, f"in-{pair}")
    if i % 2 == 0:
        payload = {
            "cotisation_id": cotisation_id,
            "nir": nir,
            "categorie": "ARTISAN",
            "caisse_de_base": "PL-IDF",
            "montant_cents": 100_000 + pair % 90_000,
            "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
            "exigible_le": "2017-02-05",
        }
        return (
            f"cotisation-{cotisation_id}",
            1,
            input_id,
            "CotisationDue",
            payload,
            {"source": "bench", "causation_id": None},
        )
    payload = {
        "cotisation_id": cotisation_id,
        "nir": nir,
        "caisse_de_base": "PL-IDF",
        "organisme_id": f"OC-{pair % 50:04d}",
        "montant_cents": 100_000 + pair % 90_000,
        "base_legale": ["CSS L611-20 al.1 (v. 2017-01-01)"],
        "regles_version": "al1-2017.1",
    }
    return (
        f"cotisation-{cotisation_id}",
        2,
        uuid5(_IDS, f"out-{pair}"),
        "EncaissementDelegue",
        payload,
        {"causation_id": str(input_id)},
    )


def rows(
    start: int, stop: int, previous: bytes, about: Callable[[int], bool]
) -> Iterator[tuple[Any, ...]]:
    """The store's rows at positions start+1..stop, chained after `previous`; `about(pair)`
    says which input/decision pairs are about the subject."""
    for i in range(start, stop):
        stream_id, version, event_id, event_type, payload, metadata = _event(i, about(i // 2))
        recorded_at = _T0 + timedelta(milliseconds=i)
        event = NewEvent(event_id, event_type, payload, metadata)
        payload_json, metadata_json, previous = chained(
            previous, i + 1, stream_id, version, event, recorded_at
        )
        yield (
            i + 1,
            stream_id,
            version,
            event_id,
            event_type,
            1,
            Encoded(payload_json),
            Encoded(metadata_json),
            recorded_at,
            previous,
        )


def spread(count: int, subject_events: int) -> Callable[[int], bool]:
    """The subject's input/decision pairs, evenly spread over `count` rows."""
    pairs = max(subject_events // 2, 1)
    stride = max(count // 2 // pairs, 1)
    return lambda pair: pair % stride == stride // 2 and pair // stride < pairs


async def fill(store: EventStore, count: int, subject_events: int) -> tuple[Frontier, bytes, float]:
    """COPY the rows in chunks; the frontier of the tree over them, the last chain hash,
    and the seconds it took."""
    frontier = Frontier()
    started = time.perf_counter()
    chunk: list[tuple[Any, ...]] = []
    last = GENESIS_HASH
    for row in rows(0, count, GENESIS_HASH, spread(count, subject_events)):
        frontier.push_data(row[-1])
        chunk.append(row)
        if len(chunk) == 20_000:
            await store.bulk_copy(chunk)
            last, chunk = chunk[-1][-1], []
    if chunk:
        await store.bulk_copy(chunk)
        last = chunk[-1][-1]
    return frontier, last, time.perf_counter() - started


# --- the measures ---------------------------------------------------------------------------


async def measure(dsn: str, *, rows: int = 1_000_000, subject_events: int = 100) -> dict[str, Any]:
    """Fill a fresh schema, prove, check; the report as a dict (the schema is dropped)."""
    if rows < 2 or not 2 <= subject_events <= rows:
        raise ValueError("--rows must be at least 2, --subject-events between 2 and --rows")
    schema = f"bench_proofs_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(dsn)
    try:
        await apply_migrations(admin, schema)
        pool = await create_pool(dsn, schema, max_size=2)
        try:
            store = EventStore(pool, schema)
            return await _measure(store, rows, subject_events)
        finally:
            await pool.close()
    finally:
        await drop_and_close(admin, schema)


async def _measure(store: EventStore, count: int, subject_events: int) -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    frontier, last, fill_seconds = await fill(store, count, subject_events)
    await store.analyze()
    started = time.perf_counter()
    tree = await tree_of(store, count)
    tree_seconds = time.perf_counter() - started
    assert tree.root() == frontier.root()
    anchor = _sign(key, store, frontier, last)

    started = time.perf_counter()
    made = await prove_service(store, "collection", SUBJECT, anchor)
    prove_seconds = time.perf_counter() - started
    proof = proof_bytes(SUBJECT, [made.part])
    checks = []
    for _ in range(5):
        started = time.perf_counter()
        report = check_proof(proof, [key.public_key()])
        checks.append(time.perf_counter() - started)
        assert report.ok, report.failure
    altered = proof[:100] + bytes([proof[100] ^ 1]) + proof[101:]
    assert not check_proof(altered, [key.public_key()]).ok

    extend = await _extend(store, frontier, last)
    paths = [len(e["path"]) for e in made.part["events"]]
    return {
        "schema": store.schema,
        "rows": count,
        "subject_events": made.proven,
        "fill_seconds": round(fill_seconds, 2),
        "tree_seconds": round(tree_seconds, 3),
        "rows_per_second_tree": round(count / tree_seconds),
        "prove_seconds": round(prove_seconds, 3),
        "proof_bytes": len(proof),
        "path_hashes_per_event": max(paths),
        "check_seconds_best": round(min(checks), 4),
        "check_seconds_median": round(sorted(checks)[2], 4),
        "extend_1000_rows_seconds": round(extend, 4),
    }


def _sign(key: Ed25519PrivateKey, store: EventStore, frontier: Frontier, last: bytes) -> Anchor:
    """An anchor of the store's collection tree as it stands, signed now."""
    return sign(
        key,
        service="collection",
        schema=store.schema,
        frontier=frontier,
        chain_hash=last,
        anchored_at=datetime.now(UTC),
    )


async def _extend(store: EventStore, frontier: Frontier, last: bytes) -> float:
    """What an anchor costs an anchorer that keeps its frontier: read the chain hashes of
    1,000 new rows, fold them, sign (best of 3, rows appended by COPY in between)."""
    best = float("inf")
    key = Ed25519PrivateKey.generate()
    for _ in range(3):
        start = frontier.size
        more = list(rows(start, start + 1000, last, lambda pair: False))
        await store.bulk_copy(more)
        began = time.perf_counter()
        async for position, digest in chain_hashes(store, start):
            assert position == frontier.size + 1
            frontier.push_data(digest)
            last = digest
        _sign(key, store, frontier, last)
        best = min(best, time.perf_counter() - began)
    return best


def format_report(report: dict[str, Any]) -> str:
    """The report as lines."""
    return "\n".join(
        [
            f"proofs — {report['subject_events']} events about one person in a store of "
            f"{report['rows']:,} rows (schema {report['schema']}, dropped)",
            f"  fill (generate, chain, COPY)      {report['fill_seconds']:>9.2f} s",
            f"  tree over every row (streamed)    {report['tree_seconds']:>9.3f} s "
            f"({report['rows_per_second_tree']:,} rows/s)",
            f"  prove (trail + one tree pass)     {report['prove_seconds']:>9.3f} s",
            f"  proof size                        {report['proof_bytes']:>9,} bytes "
            f"({report['path_hashes_per_event']} hashes per audit path)",
            f"  check offline (best / median of 5) {report['check_seconds_best'] * 1000:>8.1f} ms"
            f" / {report['check_seconds_median'] * 1000:.1f} ms",
            f"  anchor 1,000 new rows (frontier)  {report['extend_1000_rows_seconds'] * 1000:>9.1f}"
            " ms",
        ]
    )
