"""Signed anchors outside the database, against a real PostgreSQL and a real Kafka broker:
an insider with the database (a superuser) rewrites, truncates and reuses positions; the
hash chain alone says OK, `mandat audit chain --public-key` names each; proofs of a subject
verify offline and fail on any altered byte."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.adapters.eventstore import EventStore, NewEvent, StoredEvent
from services.adapters.eventstore.pool import create_pool
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.trust.anchorer import Anchorer, AnchorRefused
from services.adapters.trust.anchors import read_anchors
from services.adapters.trust.signing import (
    key_id,
    load_private_key,
    load_public_key,
    write_key_pair,
)
from services.domain.catalog import BENEFITS, COLLECTION
from services.domain.kernel.records import GENESIS_HASH, expected_hash
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.sample import NIR_A, NIR_B, Sample, due, payment, record_sample
from services.tools.cli import main

pytestmark = pytest.mark.integration


@dataclass
class Signed:
    """Two stores filled through the services' write path, and the means to anchor them."""

    collection: EventStore
    benefits: EventStore
    feeder: Feeder  # more collection history
    sample: Sample
    key: Ed25519PrivateKey
    key_file: Path
    public_file: Path
    topic: str
    bootstrap: str
    database_url: str
    argv: list[str]  # database, schemas
    kafka_argv: list[str]  # anchors topic, bootstrap

    def anchorer(self, store: EventStore | None = None, **options: Any) -> Anchorer:
        store = store or self.collection
        service = "collection" if store is self.collection else "benefits"
        return Anchorer(
            store,
            service=service,
            key=self.key,
            bootstrap_servers=self.bootstrap,
            topic=self.topic,
            **options,
        )

    async def anchor(self, store: EventStore | None = None) -> int:
        async with self.anchorer(store) as anchorer:
            anchor = await anchorer.anchor_now()
        assert anchor is not None
        return anchor.size

    async def more(self, tag: str, contributions: int = 2) -> None:
        """More contributions and payments about NIR A (4 rows each)."""
        for i in range(contributions):
            self.feeder.message(*due(f"COT-{tag}-{i}", NIR_A, 2017, 10000 + i))
            self.feeder.message(*payment(f"PAY-{tag}-{i}", f"COT-{tag}-{i}", NIR_A, 5000))
        await self.feeder.flush()


@pytest.fixture
async def signed(
    settings: ServiceSettings, database_url: str, kafka_bootstrap: str, unique: str, tmp_path: Path
) -> AsyncIterator[Signed]:
    collection = await prepare_store(database_url, settings.collection_schema)
    benefits = await prepare_store(database_url, settings.benefits_schema)
    write_key_pair(tmp_path / "anchor.pem")
    try:
        feeder = Feeder(collection, COLLECTION, settings)
        sample = await record_sample(feeder, Feeder(benefits, BENEFITS, settings))
        topic = f"t{unique}.anchors"
        yield Signed(
            collection,
            benefits,
            feeder,
            sample,
            load_private_key(tmp_path / "anchor.pem"),
            tmp_path / "anchor.pem",
            tmp_path / "anchor.pem.pub",
            topic,
            kafka_bootstrap,
            database_url,
            [
                "--database-url",
                database_url,
                "--collection-schema",
                settings.collection_schema,
                "--benefits-schema",
                settings.benefits_schema,
            ],
            ["--anchors-topic", topic, "--bootstrap-servers", kafka_bootstrap],
        )
    finally:
        await collection.pool.close()
        await benefits.pool.close()


async def mandat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


async def chain(
    s: Signed, capsys: pytest.CaptureFixture[str], *, keys: bool = True
) -> tuple[int, dict[str, Any]]:
    """`audit chain --json` on the collection store (with the anchors when `keys`)."""
    extra = ["--public-key", str(s.public_file), *s.kafka_argv] if keys else []
    code, out = await mandat(
        capsys, "audit", "chain", *s.argv, "--service", "collection", "--json", *extra
    )
    [report] = json.loads(out)["services"]
    return code, report


# --- what an insider with the database does ---------------------------------------------------


async def as_superuser(s: Signed, edit: Callable[[asyncpg.Connection], Awaitable[None]]) -> None:
    """Run `edit` on the collection store as the database's superuser, the append-only
    trigger disabled for the time of it (what the services' role cannot do)."""
    pool = await create_pool(s.database_url, s.collection.schema, as_service_role=False)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            await edit(conn)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await pool.close()


async def recompute_hashes(conn: asyncpg.Connection, since: int) -> int:
    """Re-chain every hash from `since` on with the project's own chain_hash; returns how
    many rows were re-hashed."""
    previous = await conn.fetchval("SELECT hash FROM events WHERE position = $1", since - 1)
    previous = bytes(previous) if previous is not None else GENESIS_HASH
    rows = await conn.fetch(
        "SELECT position, stream_id, stream_version, event_id, event_type,"
        " schema_version, payload, metadata, recorded_at, hash FROM events"
        " WHERE position >= $1 ORDER BY position",
        since,
    )
    for row in rows:
        event = StoredEvent(*row)
        previous = expected_hash(previous, event)
        await conn.execute(
            "UPDATE events SET hash = $1 WHERE position = $2", previous, event.position
        )
    return len(rows)


async def rewrite_payment(s: Signed, paiement_id: str, cents: int) -> int:
    """Change a recorded payment's amount and re-chain everything after it."""
    [row] = [
        e
        for e in await s.collection.read_all(0, 10_000)
        if e.payload.get("paiement_id") == paiement_id and e.event_type == "PaiementRecu"
    ]

    async def edit(conn: asyncpg.Connection) -> None:
        payload = dict(row.payload, montant_cents=cents)
        await conn.execute(
            "UPDATE events SET payload = $1 WHERE position = $2", payload, row.position
        )
        assert await recompute_hashes(conn, row.position) > 1

    await as_superuser(s, edit)
    return row.position


async def truncate(s: Signed, rows: int) -> int:
    """Delete the last `rows` rows; returns the new head."""
    head = await s.collection.head()
    await as_superuser(
        s, lambda conn: conn.execute("DELETE FROM events WHERE position > $1", head - rows)
    )
    assert await s.collection.head() == head - rows
    return head - rows


async def append_directly(s: Signed, count: int) -> None:
    """Rows appended by the store's own appender (what a service does after a truncation)."""
    for i in range(count):
        async with s.collection.transaction() as tx:
            version = await tx.stream_version(f"reuse-{i}")
            tx.append_at(
                f"reuse-{i}",
                version + 1,
                NewEvent(
                    uuid.uuid4(), "CotisationDue", {"cotisation_id": f"COT-R-{i}", "nir": NIR_B}
                ),
            )


# --- the tests --------------------------------------------------------------------------------


async def test_keygen_anchor_and_an_untouched_store_holds(
    signed: Signed, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    s = signed
    code, out = await mandat(capsys, "audit", "keygen", "--out", str(tmp_path / "new.pem"))
    assert stat.S_IMODE(os.stat(tmp_path / "new.pem").st_mode) == 0o600
    assert code == 0 and key_id(load_public_key(tmp_path / "new.pem.pub")) in out
    code, _ = await mandat(capsys, "audit", "keygen", "--out", str(tmp_path / "new.pem"))
    assert code == 2  # never overwritten
    code, out = await mandat(
        capsys, "audit", "anchor", "--key", str(s.key_file), *s.argv, *s.kafka_argv
    )
    assert code == 0 and out.count("published") == 2
    code, out = await mandat(
        capsys, "audit", "anchor", "--key", str(s.key_file), *s.argv, *s.kafka_argv
    )
    assert code == 0 and out.count("nothing new since") == 2  # only when the head moved
    code, out = await mandat(
        capsys,
        "audit",
        "chain",
        *s.argv,
        "--json",
        "--public-key",
        str(s.public_file),
        *s.kafka_argv,
    )
    report = json.loads(out)
    assert code == 0 and report["ok"]
    for service, store in zip(report["services"], (s.collection, s.benefits), strict=True):
        anchors = service["anchors"]
        assert anchors["verified"] == anchors["holding"] == 1 and not anchors["findings"]
        assert anchors["latest"]["tree_head"]["size"] == await store.head()
    code, out = await mandat(
        capsys, "audit", "chain", *s.argv, "--public-key", str(s.public_file), *s.kafka_argv
    )
    assert code == 0 and "1 signed anchors checked, 1 hold" in out and "audit chain: OK" in out


async def test_a_rewrite_with_recomputed_hashes_is_named_with_where_it_lies(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    s = signed
    first = await s.anchor()
    await s.more("M1")
    second = await s.anchor()
    await s.more("M2")
    third = await s.anchor()
    position = await rewrite_payment(s, "PAY-M1-1", 1)
    assert first < position <= second

    code, report = await chain(s, capsys, keys=False)
    assert code == 0 and report["ok"]  # the chain alone cannot see it: the gap closed here
    code, report = await chain(s, capsys)
    assert code == 1 and report["first_broken"] is None  # the chain itself holds
    [finding] = report["anchors"]["findings"]
    assert finding["problem"] == "rewritten"
    assert (finding["from_position"], finding["to_position"]) == (first + 1, second)
    assert finding["disagreeing"] == 2 and report["anchors"]["holding"] == 1
    code, out = await mandat(
        capsys,
        "audit",
        "chain",
        *s.argv,
        "--service",
        "collection",
        "--public-key",
        str(s.public_file),
        *s.kafka_argv,
    )
    assert code == 1 and "REWRITTEN: the record up to #" in out and "audit chain: BROKEN" in out
    assert third > second


async def test_a_truncated_tail_is_named(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    s = signed
    await s.anchor()
    await s.more("T")
    anchored = await s.anchor()
    head = await truncate(s, 5)

    code, report = await chain(s, capsys, keys=False)
    assert code == 0  # what the issue found: chain OK after deleting the tail
    code, report = await chain(s, capsys)
    assert code == 1
    [finding] = report["anchors"]["findings"]
    assert finding["problem"] == "truncated"
    assert (finding["head"], finding["anchored_size"]) == (head, anchored)
    assert f"rows #{head + 1} to #{anchored} were deleted" in finding["message"]


async def test_positions_reused_after_a_truncation_are_named(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    s = signed
    before = await s.anchor()
    await s.more("R")
    anchored = await s.anchor()
    head = await truncate(s, 5)
    await append_directly(s, 8)  # the store takes the deleted positions again, and more
    assert await s.collection.head() == head + 8 > anchored

    code, report = await chain(s, capsys, keys=False)
    assert code == 0  # chain OK: the new rows chain to what is left
    code, report = await chain(s, capsys)
    assert code == 1
    [finding] = report["anchors"]["findings"]
    assert finding["problem"] == "reused"
    assert finding["first_position"] == head + 1
    assert finding["rows"] == anchored - head and finding["anchored_size"] == anchored
    assert before < head

    # reused, but fewer rows than were deleted: both truncation and reuse are named
    await truncate(s, 8)
    await append_directly(s, 3)
    code, report = await chain(s, capsys)
    problems = {f["problem"]: f for f in report["anchors"]["findings"]}
    assert code == 1 and set(problems) == {"truncated", "reused"}
    assert problems["reused"]["first_position"] == head + 1


async def test_a_bad_signature_and_junk_on_the_topic_are_named_and_not_relied_upon(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    s = signed
    await s.anchor()
    await rewrite_payment(s, "PAY-A-2", 1)
    forger = Anchorer(
        s.collection,
        service="collection",
        key=Ed25519PrivateKey.generate(),
        bootstrap_servers=s.bootstrap,
        topic=s.topic,
    )
    async with forger:  # someone without the key anchors the rewritten store
        forged = await forger.anchor_now()
        assert forged is not None
        producer = await forger._open_producer()
        await producer.send_and_wait(s.topic, b"\x00\xffnot an anchor", key=b"collection")
        await producer.send_and_wait(s.topic, forged.to_bytes()[:-3] + b"}}}", key=b"collection")
    code, report = await chain(s, capsys)
    problems = sorted(f["problem"] for f in report["anchors"]["findings"])
    assert code == 1
    assert problems == ["bad signature", "rewritten", "unreadable anchor", "unreadable anchor"]
    assert report["anchors"]["verified"] == 1


async def test_the_anchorer_task_keeps_its_cadence_and_anchors_only_when_the_head_moves(
    signed: Signed,
) -> None:
    s = signed
    by_count = s.anchorer(every_events=6, every_seconds=3600, poll_seconds=0.05)
    task = asyncio.create_task(by_count.run())
    try:
        start = await s.collection.head()
        await until(lambda: by_count.anchored >= start, 20)  # the sample is >= 6 rows
        await s.more("C1", 1)  # 4 rows: below the count, no anchor
        await asyncio.sleep(0.6)
        assert by_count.anchored == start
        await s.more("C2", 1)  # 8 rows since: an anchor
        await until(lambda: by_count.anchored == start + 8, 20)
        assert by_count.stalled_seconds() == 0.0 and by_count.stall_reason is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    by_time = s.anchorer(every_events=10**6, every_seconds=0.3, poll_seconds=0.05)
    task = asyncio.create_task(by_time.run())
    try:
        await until(lambda: by_time.last is not None, 20)  # resumed from the last anchor
        resumed = by_time.anchored
        assert resumed == start + 8
        await s.more("C3", 1)
        await until(lambda: by_time.anchored == resumed + 4, 20)
        await asyncio.sleep(1.0)  # several periods, nothing new: no anchor
        assert by_time.anchored == resumed + 4
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    records = await read_anchors(s.bootstrap, s.topic)
    sizes = [r.anchor.size for r in records if r.anchor is not None]
    assert sizes == [start, start + 8, start + 12]  # one anchor per move, none repeated


async def until(condition: Callable[[], bool], seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_the_anchorer_refuses_to_sign_over_a_store_that_contradicts_it(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    s = signed
    anchorer = s.anchorer()
    async with anchorer:
        assert await anchorer.anchor_now() is not None
        await truncate(s, 3)
        await append_directly(s, 5)
        with pytest.raises(AnchorRefused, match="no longer has the chain hash"):
            await anchorer.anchor_now()
        assert anchorer.stall_reason and "refuses to anchor" in anchorer.stall_reason
        assert anchorer.stalled_seconds() >= 0.0 and anchorer.refused
        with pytest.raises(AnchorRefused):
            await anchorer.anchor_now()  # for good
    restarted = s.anchorer()  # a restart reads its last anchor from the topic
    async with restarted:
        with pytest.raises(AnchorRefused, match="no longer has the chain hash"):
            await restarted.anchor_now()
    code, out = await mandat(
        capsys,
        "audit",
        "anchor",
        "--key",
        str(s.key_file),
        *s.argv,
        "--service",
        "collection",
        *s.kafka_argv,
    )
    assert code == 1 and "REFUSED" in out
    await truncate(s, 10)
    with pytest.raises(AnchorRefused, match="its tail was deleted"):
        async with s.anchorer() as again:
            await again.anchor_now()
    records = await read_anchors(s.bootstrap, s.topic)
    assert len(records) == 1  # nothing signed over the tampered store


async def test_a_restarted_anchorer_extends_its_last_anchor_without_refolding(
    signed: Signed, capsys: pytest.CaptureFixture[str]
) -> None:
    s = signed
    first = await s.anchor()
    await s.more("X", 3)
    counting = CountingPool(s.collection.pool)
    store = EventStore(counting, s.collection.schema)
    async with Anchorer(
        store,
        service="collection",
        key=s.key,
        bootstrap_servers=s.bootstrap,
        topic=s.topic,
        batch=4,
    ) as anchorer:
        anchor = await anchorer.anchor_now()
    reads = counting.hash_reads
    assert anchor is not None and anchor.size == await s.collection.head() > first
    assert min(reads) == first  # read from its last anchor on, not from position 0
    code, report = await chain(s, capsys)
    assert code == 0 and report["anchors"]["holding"] == 2


class CountingPool:
    """A pool that notes from where the chain hashes are read."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.hash_reads: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if query.startswith("SELECT position, hash FROM events"):
            self.hash_reads.append(args[0])
        return await self.pool.fetch(query, *args, **kwargs)


async def run(capsysbinary: pytest.CaptureFixture[bytes], *argv: str) -> tuple[int, bytes, str]:
    """`mandat` with its stdout as bytes (a proof) and its stderr as text."""
    capsysbinary.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    captured = capsysbinary.readouterr()
    return code, captured.out, captured.err.decode()


async def test_a_proof_verifies_offline_and_fails_on_any_altered_byte(
    signed: Signed, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    s = signed
    await s.anchor()
    await s.anchor(s.benefits)
    await s.more("P", 1)
    code, proof, err = await run(
        capsysbinary,
        "audit",
        "prove",
        NIR_A,
        *s.argv,
        "--public-key",
        str(s.public_file),
        *s.kafka_argv,
    )
    assert code == 0, err
    assert "after the latest anchor" in err and NIR_A not in err  # COT-P-0 is not anchored
    document = json.loads(proof)
    assert {p["anchor"]["service"] for p in document["services"]} == {"collection", "benefits"}
    assert all(
        e["payload"].get("cotisation_id") != "COT-P-0"
        for p in document["services"]
        for e in p["events"]
    )

    path = tmp_path / "proof.json"
    path.write_bytes(proof)
    check = ["audit", "check-proof", str(path), "--public-key", str(s.public_file)]
    code, out, _ = await run(capsysbinary, *check)
    assert code == 0 and b"check-proof: OK" in out
    assert NIR_A.encode() not in out
    for at in range(0, len(proof), max(len(proof) // 40, 1)):  # bytes across the whole file
        path.write_bytes(proof[:at] + bytes([proof[at] ^ 0x20]) + proof[at + 1 :])
        code, out, _ = await run(capsysbinary, *check)
        assert code == 1 and b"check-proof: FAILED" in out, at
    write_key_pair(tmp_path / "other.pem")
    path.write_bytes(proof)
    code, out, _ = await run(
        capsysbinary,
        "audit",
        "check-proof",
        str(path),
        "--public-key",
        str(tmp_path / "other.pem.pub"),
    )
    assert code == 1 and b"bad signature" in out


async def test_a_proof_with_a_consistency_proof_and_a_store_that_no_longer_proves(
    signed: Signed, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    s = signed
    first = await s.anchor()
    await s.more("K")
    await s.anchor()
    code, proof, err = await run(
        capsysbinary,
        "audit",
        "prove",
        "COT-K-0",
        *s.argv,
        "--service",
        "collection",
        "--extends",
        str(first),
        *s.kafka_argv,
    )
    assert code == 0, err
    [part] = json.loads(proof)["services"]
    assert part["consistency"]["anchor"]["tree_head"]["size"] == first
    assert [e["event_type"] for e in part["events"] if e["position"] > first] == [
        "CotisationDue",
        "EncaissementDelegue",
        "PaiementRecu",
        "PaiementEncaissePourCompte",
    ]
    (tmp_path / "p.json").write_bytes(proof)
    code, out, _ = await run(
        capsysbinary,
        "audit",
        "check-proof",
        str(tmp_path / "p.json"),
        "--public-key",
        str(s.public_file),
    )
    assert code == 0 and b"consistency OK" in out

    code, consistency, err = await run(
        capsysbinary,
        "audit",
        "consistency",
        *s.argv,
        "--service",
        "collection",
        "--from-size",
        str(first),
        *s.kafka_argv,
    )
    assert code == 0, err
    assert json.loads(consistency)["services"][0]["events"] == []
    (tmp_path / "c.json").write_bytes(consistency)
    code, out, _ = await run(
        capsysbinary,
        "audit",
        "check-proof",
        str(tmp_path / "c.json"),
        "--public-key",
        str(s.public_file),
    )
    assert code == 0 and b"consistency OK" in out

    await rewrite_payment(s, "PAY-K-0", 1)
    code, _, err = await run(
        capsysbinary, "audit", "prove", "COT-K-0", *s.argv, "--service", "collection", *s.kafka_argv
    )
    assert code == 1 and "does not hold what the anchor" in err


async def test_one_anchorer_leads_per_store_and_a_failing_one_reports_its_stall(
    signed: Signed, database_url: str
) -> None:
    s = signed

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(database_url)

    pair = [
        s.anchorer(every_events=1, every_seconds=3600, poll_seconds=0.05, connect=connect)
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(a.run()) for a in pair]
    try:
        head = await s.collection.head()
        await until(lambda: any(a.anchored == head for a in pair), 30)
        await s.more("L", 1)
        head = await s.collection.head()
        await until(lambda: any(a.anchored == head for a in pair), 30)
        assert [a.leader for a in pair].count(True) == 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    sizes = [r.anchor.size for r in await read_anchors(s.bootstrap, s.topic) if r.anchor]
    assert sizes == sorted(set(sizes)) and sizes[-1] == head  # no anchor made twice

    unreachable = Anchorer(
        s.collection,
        service="collection",
        key=s.key,
        bootstrap_servers="127.0.0.1:1",
        topic=s.topic,
        every_events=1,
        poll_seconds=0.05,
    )
    assert unreachable.stalled_seconds() == 0.0
    task = asyncio.create_task(unreachable.run())
    try:
        await until(lambda: unreachable.stall_reason is not None, 60)
        await asyncio.sleep(0.1)
        assert unreachable.stalled_seconds() > 0 and unreachable.refused is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
