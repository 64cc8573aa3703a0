"""The operator's and auditor's commands on a store in shards, filled by a sharded collection
service through a real Kafka broker and a real PostgreSQL: each command runs shard by shard
and names each shard; a chain broken in one shard is found there, whatever `--jobs`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from support import (
    Feed,
    affiliation,
    convention,
    cotisation,
    nir,
    organisme,
    paiement,
    read_topics,
    send_registry,
    store_events,
    wait_for_store,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.adapters.runtime.shards import shard_of
from services.adapters.trust.signing import write_key_pair
from services.domain.catalog import COLLECTION
from services.tools.cli import main

pytestmark = pytest.mark.integration

PEOPLE = 18
PAYING = 6  # the first people also pay part of their contribution


@dataclass
class Filled:
    settings: ServiceSettings
    people: list[str]
    rows: list[asyncpg.Record]  # every event, with its shard
    argv: list[str]  # where the command line finds the collection store

    @property
    def shards(self) -> int:
        assert self.settings.store_shards is not None and self.settings.store_shards > 1
        return self.settings.store_shards

    @property
    def schemas(self) -> list[str]:
        return [f"{self.settings.collection_schema}_s{k}" for k in range(self.shards)]

    def heads(self) -> list[int]:
        return [
            max(r["position"] for r in self.rows if r["shard"] == k) for k in range(self.shards)
        ]


@pytest.fixture
async def filled(sharded_settings: ServiceSettings) -> AsyncIterator[Filled]:
    """A sharded collection store: contributions of people in every shard, some paid."""
    s = sharded_settings
    dsn = s.database_url.get_secret_value()
    people = [nir(300 + k) for k in range(PEOPLE)]
    shards = s.store_shards or 1
    assert len({shard_of(n, shards) for n in people}) == shards > 1  # each shard holds someone
    async with (
        build_runtime("collection", s).running(),
        Feed(s.kafka_bootstrap_servers) as feed,
    ):
        await send_registry(
            feed,
            s,
            s.collection_schema,
            organisme("OC-1"),
            convention("CNV-1", "OC-1"),
            *(affiliation(n, "OC-1") for n in people),
        )
        for n in people:
            await feed.send(s.topic_cotisations, cotisation(f"COT-{n}", n))
        final = COLLECTION.final_types
        assert await wait_for_store(dsn, s.collection_schema, final, PEOPLE) == PEOPLE
        for n in people[:PAYING]:
            await feed.send(s.topic_cotisations, paiement(f"PAY-{n}", f"COT-{n}", n, 50_000))
        decided = await wait_for_store(dsn, s.collection_schema, final, PEOPLE + PAYING)
        assert decided == PEOPLE + PAYING
    yield Filled(
        s,
        people,
        await store_events(dsn, s.collection_schema),
        [
            "--database-url",
            dsn,
            "--collection-schema",
            s.collection_schema,
            "--benefits-schema",
            s.benefits_schema,
            "--service",
            "collection",
        ],
    )


async def mandat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


def _steady(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A report's entries without their timings (the only part that differs run to run)."""
    return [
        {k: v for k, v in e.items() if k not in ("seconds", "events_per_second")} for e in entries
    ]


async def test_replay_and_chain_run_shard_by_shard_the_same_with_any_jobs(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = {}
    for jobs in ("1", "3"):
        code, out = await mandat(capsys, "replay", "verify", *filled.argv, "--jobs", jobs, "--json")
        report = json.loads(out)
        assert code == 0 and report["ok"], out
        reports[jobs] = _steady(report["services"])
    assert reports["1"] == reports["3"]
    shards = reports["1"]
    assert [e["schema"] for e in shards] == filled.schemas
    assert [e["shard"] for e in shards] == list(range(filled.shards))
    assert [e["last_position"] for e in shards] == filled.heads()
    final = COLLECTION.final_types
    assert sum(e["matched"] for e in shards) >= sum(r["event_type"] in final for r in filled.rows)
    assert all(e["decisions_checked"] > 0 for e in shards)  # each shard decided someone

    code, out = await mandat(capsys, "replay", "verify", *filled.argv)
    lines = [line for line in out.splitlines() if line.startswith("collection (schema")]
    assert code == 0 and [line.split()[2].rstrip("):") for line in lines] == filled.schemas

    chains = {}
    for jobs in ("1", "3"):
        code, out = await mandat(capsys, "audit", "chain", *filled.argv, "--jobs", jobs, "--json")
        report = json.loads(out)
        assert code == 0 and report["ok"], out
        chains[jobs] = _steady(report["services"])
    assert chains["1"] == chains["3"]
    assert [e["checked"] for e in chains["1"]] == filled.heads()
    assert [e["schema"] for e in chains["1"]] == filled.schemas
    code, out = await mandat(capsys, "audit", "chain", *filled.argv)
    assert code == 0 and out.count(": chain OK over") == filled.shards and "audit chain: OK" in out


async def test_a_chain_broken_in_one_shard_is_found_there_whatever_the_jobs(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    """Back-dating one payment in one shard: that shard's chain breaks at its row, the
    other shards' hold, and the command fails."""
    victim = filled.people[0]
    shard = shard_of(victim, filled.shards)
    [row] = [
        r
        for r in filled.rows
        if r["event_type"] == "PaiementRecu" and json.loads(r["payload"])["nir"] == victim
    ]
    conn = await asyncpg.connect(filled.settings.database_url.get_secret_value())
    try:
        async with conn.transaction():
            await conn.execute(f'SET LOCAL search_path TO "{filled.schemas[shard]}"')
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            await conn.execute(
                "UPDATE events SET recorded_at = recorded_at - interval '1 day'"
                " WHERE position = $1",
                row["position"],
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()

    reports = {}
    for jobs in ("1", "3"):
        code, out = await mandat(capsys, "audit", "chain", *filled.argv, "--jobs", jobs, "--json")
        report = json.loads(out)
        assert code == 1 and not report["ok"]
        reports[jobs] = _steady(report["services"])
    assert reports["1"] == reports["3"]
    broken = [e for e in reports["1"] if not e["ok"]]
    assert [(e["shard"], e["schema"]) for e in broken] == [(shard, filled.schemas[shard])]
    assert broken[0]["first_broken"] == row["position"]
    assert broken[0]["detail"]["event_type"] == "PaiementRecu"
    assert broken[0]["checked"] == row["position"] - 1
    code, out = await mandat(capsys, "audit", "chain", *filled.argv, "--jobs", "2")
    assert code == 1 and out.count(": chain OK over") == filled.shards - 1
    assert f"(schema {filled.schemas[shard]}): chain BROKEN at position {row['position']}" in out
    assert "audit chain: BROKEN" in out


async def test_a_trail_is_found_in_the_shard_that_holds_it(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    person = filled.people[1]
    home = filled.schemas[shard_of(person, filled.shards)]
    for subject in (f"COT-{person}", f"PAY-{person}", person):
        code, out = await mandat(capsys, "audit", "trail", subject, *filled.argv, "--json")
        assert code == 0, subject
        [found] = json.loads(out)["services"]
        assert found["schema"] == home and found["subject"] == subject
        types = [e["event_type"] for e in found["entries"]]
        assert "PaiementRecu" in types, types
        assert ("CotisationDue" in types) == (not subject.startswith("PAY-")), types
        held = [r for r in filled.rows if r["shard"] == found["shard"]]
        positions = {r["position"] for r in held}
        assert {e["position"] for e in found["entries"]} <= positions
    code, out = await mandat(capsys, "audit", "trail", f"COT-{person}", *filled.argv, "--jobs", "4")
    assert code == 0 and out.startswith(f"collection (schema {home}): ")
    code, out = await mandat(capsys, "audit", "trail", "COT-NOBODY", *filled.argv)
    assert code == 1 and "nothing recorded about COT-NOBODY" in out


async def test_state_projections_and_redrive_run_shard_by_shard(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    for again in ([], ["--from-zero"]):  # each shard's state is current; then refolded
        code, out = await mandat(capsys, "state", "catch-up", *filled.argv, *again)
        lines = out.splitlines()
        assert code == 0 and len(lines) == filled.shards
        for schema, head, line in zip(filled.schemas, filled.heads(), lines, strict=True):
            start = 0 if again else head
            assert line.startswith(
                f"collection (schema {schema}): decision state folded from #{start} up to #{head} "
            ), line

    code, out = await mandat(capsys, "projections", "rebuild", *filled.argv, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"], out
    assert sorted({p["schema"] for p in report["projections"]}) == sorted(filled.schemas)
    assert {p["shard"] for p in report["projections"]} == set(range(filled.shards))

    code, out = await mandat(
        capsys,
        "rejections",
        "redrive",
        *filled.argv,
        "--kind",
        "all",
        "--dry-run",
        "--bootstrap-servers",
        filled.settings.kafka_bootstrap_servers,
        "--json",
    )
    report = json.loads(out)
    assert code == 0 and [r["schema"] for r in report["services"]] == filled.schemas
    assert all(r["selected"] == [] for r in report["services"])  # nothing was refused


async def test_each_shard_is_anchored_checked_and_proven_on_its_own(
    filled: Filled, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path, unique: str
) -> None:
    """Each shard has its own chain, so its own signed anchors: `audit anchor` signs each,
    `audit chain --public-key` checks each against its own, and a proof about a person is a
    proof in the shard of their NIR, checked offline."""
    write_key_pair(tmp_path / "anchor.pem")
    public = str(tmp_path / "anchor.pem.pub")
    kafka = [
        "--anchors-topic",
        f"t{unique}.anchors",
        "--bootstrap-servers",
        filled.settings.kafka_bootstrap_servers,
    ]

    async def run(*argv: str) -> tuple[int, bytes, str]:
        capsysbinary.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = capsysbinary.readouterr()
        return code, captured.out, captured.err.decode()

    code, out, err = await run(
        "audit", "anchor", *filled.argv, "--key", str(tmp_path / "anchor.pem"), *kafka
    )
    lines = out.decode().splitlines()
    assert code == 0, err
    assert [line.split()[2].rstrip("):") for line in lines] == filled.schemas
    assert all(line.endswith("published") for line in lines), lines

    code, out, err = await run(
        "audit", "chain", *filled.argv, "--public-key", public, *kafka, "--jobs", "3", "--json"
    )
    report = json.loads(out)
    assert code == 0 and report["ok"], err
    assert [e["schema"] for e in report["services"]] == filled.schemas
    for entry, head in zip(report["services"], filled.heads(), strict=True):
        assert entry["anchors"]["verified"] == entry["anchors"]["holding"] == 1
        assert entry["anchors"]["latest"]["tree_head"]["size"] == head

    person = filled.people[2]
    home = filled.schemas[shard_of(person, filled.shards)]
    code, proof, err = await run(
        "audit", "prove", f"COT-{person}", *filled.argv, "--public-key", public, *kafka
    )
    assert code == 0, err
    [part] = json.loads(proof)["services"]
    assert part["anchor"]["schema"] == home
    assert {e["event_type"] for e in part["events"]} >= {"CotisationDue", "PaiementRecu"}
    (tmp_path / "proof.json").write_bytes(proof)
    code, out, _ = await run(
        "audit", "check-proof", str(tmp_path / "proof.json"), "--public-key", public
    )
    assert code == 0 and b"check-proof: OK" in out


async def test_republish_sends_each_shard_in_its_order_and_a_shared_fact_once(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    s = filled.settings
    topic = s.topic_audit_replay
    code, out = await mandat(
        capsys,
        "replay",
        "republish",
        *filled.argv,
        "--include-inputs",
        "--topic",
        topic,
        "--bootstrap-servers",
        s.kafka_bootstrap_servers,
        "--json",
    )
    assert code == 0, out
    report = json.loads(out)["services"]
    assert [r["schema"] for r in report] == filled.schemas
    # every event once: a fact about organisms is in each shard, under one event id
    expected = {r["event_id"] for r in filled.rows}
    assert sum(r["sent"] for r in report) == len(expected)
    got = await read_topics(
        s.kafka_bootstrap_servers, [topic], lambda m: len(m) >= len(expected), timeout=60
    )
    assert sorted(m.headers["event_id"].decode() for m in got) == sorted(map(str, expected))
    for m in got:  # each names its shard, and is that shard's event at that position
        shard = int(m.headers["store_shard"])
        [row] = [
            r
            for r in filled.rows
            if r["shard"] == shard and r["position"] == int(m.headers["store_position"])
        ]
        assert str(row["event_id"]) == m.headers["event_id"].decode()
    for shard in range(filled.shards):  # and each shard's messages on a partition in its order
        for partition in {m.partition for m in got}:
            positions = [
                int(m.headers["store_position"])
                for m in sorted(got, key=lambda m: m.offset)
                if m.partition == partition and int(m.headers["store_shard"]) == shard
            ]
            assert positions == sorted(positions)
