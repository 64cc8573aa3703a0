"""Helpers of the integration tests: contract messages, a feed, reading topics and stores."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic import SecretStr

from contracts import outbound
from contracts.messages import wire_bytes, wire_envelope
from contracts.nir import sample_nir
from services.adapters.eventstore.shards import read_layout
from services.adapters.runtime.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[1]


nir = sample_nir

SHARDS = 6
"""The shards of a test's store in shards: two for each of the topics' three partitions."""


def envelope(
    event_type: str,
    payload: dict[str, Any],
    *,
    event_id: str | None = None,
    correlation_id: str | None = None,
) -> bytes:
    return wire_bytes(
        wire_envelope(
            event_type,
            payload,
            event_id=event_id or uuid.uuid4(),
            occurred_at="2017-01-15T08:00:00Z",
            source="caisse-de-base/PL-IDF",
            correlation_id=correlation_id,
        )
    )


def organisme(oid: str, forme: str = "MUTUELLE") -> tuple[str, dict[str, Any]]:
    return "OrganismeDeclare", {
        "organisme_id": oid,
        "nom": f"Organisme {oid}",
        "forme_juridique": forme,
    }


def convention(
    cid: str,
    oid: str,
    objet: str = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
    caisses: tuple[str, ...] = ("PL-IDF",),
    du: str = "2017-01-01",
    au: str | None = None,
) -> tuple[str, dict[str, Any]]:
    return "ConventionConclue", {
        "convention_id": cid,
        "organisme_id": oid,
        "objet": objet,
        "caisses_de_base": list(caisses),
        "effet_du": du,
        "effet_au": au,
    }


def affiliation(n: str, oid: str, du: str = "2016-01-01") -> tuple[str, dict[str, Any]]:
    return "AffiliationEnregistree", {
        "nir": n,
        "organisme_id": oid,
        "mode": "CHOIX",
        "effet_du": du,
    }


def cotisation(
    cid: str,
    n: str,
    *,
    debut: str = "2017-01-01",
    montant: int = 195000,
    categorie: str = "PROFESSION_LIBERALE",
) -> tuple[str, dict[str, Any]]:
    year = debut[:4]
    return "CotisationDue", {
        "cotisation_id": cid,
        "nir": n,
        "categorie": categorie,
        "caisse_de_base": "PL-IDF",
        "periode": {"debut": debut, "fin": f"{year}-12-31"},
        "montant_cents": montant,
        "exigible_le": f"{year}-02-05",
    }


def paiement(pid: str, cid: str, n: str, montant: int) -> tuple[str, dict[str, Any]]:
    return "PaiementRecu", {
        "paiement_id": pid,
        "cotisation_id": cid,
        "nir": n,
        "montant_cents": montant,
        "recu_le": "2017-03-01",
    }


def prestation(
    pid: str,
    n: str,
    *,
    jour: str = "2017-05-02",
    montant: int = 326900,
    nature: str = "ALLOCATION_REPOS_MATERNEL",
    categorie: str = "PROFESSION_LIBERALE",
) -> tuple[str, dict[str, Any]]:
    return "PrestationEspecesDue", {
        "prestation_id": pid,
        "nir": n,
        "categorie": categorie,
        "caisse_de_base": "PL-IDF",
        "nature": nature,
        "fait_generateur_le": jour,
        "periode": None,
        "montant_cents": montant,
    }


def key_of(payload: dict[str, Any]) -> bytes:
    for field in ("nir", "convention_id", "organisme_id"):
        if field in payload:
            return str(payload[field]).encode()
    raise ValueError("no key")


class Feed:
    """Publishes contract messages like an upstream agency (acks=all, idempotent)."""

    def __init__(self, bootstrap: str, **client_options: Any) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            **client_options,
        )

    async def __aenter__(self) -> Feed:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()

    async def send(
        self, topic: str, fact: tuple[str, dict[str, Any]], *, event_id: str | None = None
    ) -> str:
        event_id = event_id or str(uuid.uuid4())
        await self.producer.send_and_wait(
            topic, envelope(fact[0], fact[1], event_id=event_id), key=key_of(fact[1])
        )
        return event_id

    async def raw(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        await self.producer.send_and_wait(topic, value, key=key)


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]

    @property
    def json(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.value)
        return decoded

    @property
    def event_type(self) -> str:
        return self.headers["event_type"].decode()


async def read_topics(
    bootstrap: str,
    topics: list[str],
    until: Callable[[list[Received]], bool],
    timeout: float = 30.0,
    **client_options: Any,
) -> list[Received]:
    """Everything on `topics` from the beginning, until `until(messages)` holds (or timeout:
    then what was read, for the assertion to show)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",  # the relay publishes in transactions
        # above the largest rejection copy: aiokafka skips a record it cannot fetch whole
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **client_options,
    )
    await consumer.start()
    found: list[Received] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not until(found):
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                found.extend(
                    Received(r.topic, r.partition, r.offset, r.key, r.value, dict(r.headers))
                    for r in records
                )
        if until(found):  # give a duplicate a chance to show up
            await asyncio.sleep(0)
        return found
    finally:
        await consumer.stop()


async def store_schemas(conn: asyncpg.Connection, schema: str) -> tuple[str, ...]:
    """The schema of each shard of the store whose service schema is `schema`."""
    return (await read_layout(conn, schema)).schemas


async def store_events(database_url: str, schema: str) -> list[asyncpg.Record]:
    """Every event of the store (shard by shard, each in its order), with its shard."""
    conn = await asyncpg.connect(database_url)
    try:
        rows: list[asyncpg.Record] = []
        for shard, name in enumerate(await store_schemas(conn, schema)):
            rows += await conn.fetch(
                f"SELECT position, stream_id, event_id, event_type, payload::text AS payload, "
                f'metadata::text AS metadata, {shard} AS shard FROM "{name}".events'
                " ORDER BY position"
            )
        return rows
    finally:
        await conn.close()


def decisions_by_cause(rows: list[asyncpg.Record], types: frozenset[str]) -> dict[str, list[str]]:
    """Final decisions (not DecisionEnAttente) grouped by the input that caused them."""
    out: dict[str, list[str]] = {}
    for row in rows:
        if row["event_type"] in types:
            cause = json.loads(row["metadata"])["causation_id"]
            out.setdefault(cause, []).append(row["event_type"])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(settings: ServiceSettings, http_port: int) -> dict[str, str]:
    """The environment that makes `mandat <service> run` use these settings."""
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = settings.kafka_bootstrap_servers
    env["DATABASE_URL"] = settings.database_url.get_secret_value()
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if name.startswith(("topic_", "collection_", "benefits_")) and isinstance(value, str):
            env[f"MANDAT_{name.upper()}"] = value
    env["MANDAT_COLLECTION_HTTP_PORT"] = str(http_port)
    env["MANDAT_BENEFITS_HTTP_PORT"] = str(http_port)
    return env


def spawn_service(service: str, settings: ServiceSettings, log: Path) -> subprocess.Popen[bytes]:
    """`mandat <service> run` as a separate process (so a test can SIGKILL it)."""
    handle = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "services.tools.cli", service, "run"],
        cwd=REPO,
        env=service_env(settings, free_port()),
        stdout=handle,
        stderr=handle,
        start_new_session=True,
    )


async def publish_many(
    feed: Feed, topic: str, facts: list[tuple[str, dict[str, Any]]]
) -> list[str]:
    """Publish without waiting for each ack (then wait for all); returns the event ids."""
    ids, futures = [], []
    for fact in facts:
        event_id = str(uuid.uuid4())
        ids.append(event_id)
        futures.append(
            await feed.producer.send(topic, envelope(*fact, event_id=event_id), key=key_of(fact[1]))
        )
    await asyncio.gather(*futures)
    return ids


async def wait_for_store(
    database_url: str, schema: str, types: frozenset[str], count: int, timeout: float = 90.0
) -> int:
    """Poll the store until it holds `count` events of `types` (returns what it found; an
    event every shard records counts once)."""
    deadline = time.monotonic() + timeout
    found = -1
    while time.monotonic() < deadline:
        try:
            conn = await asyncpg.connect(database_url)
            try:
                union = " UNION ALL ".join(
                    f'SELECT event_id FROM "{name}".events WHERE event_type = ANY($1)'
                    for name in await store_schemas(conn, schema)
                )
                found = await conn.fetchval(
                    f"SELECT count(DISTINCT event_id) FROM ({union}) e", list(types)
                )
            finally:
                await conn.close()
        except (OSError, asyncpg.PostgresError):
            found = -1
        if found >= count:
            return int(found)
        await asyncio.sleep(0.3)
    return int(found)


async def create_topics(s: ServiceSettings) -> None:
    """The test's topics, created as the services would (auto-creation is off)."""
    from services.adapters.kafka.topics import ensure_topics

    await ensure_topics(
        s.kafka_bootstrap_servers,
        s.all_topics(),
        partitions=s.topic_partitions,
        replication_factor=s.topic_replication_factor,
        retention_ms=s.topic_retention_ms,
    )


REGISTRY_TYPES = frozenset(
    {"OrganismeDeclare", "ConventionConclue", "ConventionResiliee", "AffiliationEnregistree"}
)


async def send_registry(feed: Feed, s: ServiceSettings, schema: str, *facts: Any) -> None:
    """Publish registry facts and wait until the service has recorded them: facts with
    different keys travel on different partitions, in no guaranteed order."""
    dsn = s.database_url.get_secret_value()
    before = await wait_for_store(dsn, schema, REGISTRY_TYPES, 0, timeout=0.1)
    for fact in facts:
        await feed.send(s.topic_referentiel, fact)
    found = await wait_for_store(dsn, schema, REGISTRY_TYPES, max(before, 0) + len(facts))
    assert found >= max(before, 0) + len(facts), "the registry facts were not recorded"


async def assert_decided_exactly_once(
    s: ServiceSettings, schema: str, topic: str, final: frozenset[str], ids: list[str]
) -> tuple[list[asyncpg.Record], list[Received]]:
    """Every input has exactly one final decision in the store and on the settlement topic,
    and no message is on the topic twice; returns the store's rows and the topic's messages."""
    dsn = s.database_url.get_secret_value()
    found = await wait_for_store(dsn, schema, final, len(ids))
    assert found == len(ids), f"{found} final decisions in the store for {len(ids)} inputs"
    rows = await store_events(dsn, schema)
    by_cause = decisions_by_cause(rows, final)
    assert sorted(by_cause) == sorted(ids)
    assert all(len(v) == 1 for v in by_cause.values())

    def complete(messages: list[Received]) -> bool:
        return sum(m.event_type in final for m in messages) >= len(ids)

    await read_topics(s.kafka_bootstrap_servers, [topic], complete, timeout=60)
    await asyncio.sleep(2)  # let a late duplicate arrive, if the relay were to make one
    got = await read_topics(s.kafka_bootstrap_servers, [topic], complete, timeout=5)
    per_event = Counter(m.headers["event_id"] for m in got)
    assert max(per_event.values()) == 1, "a decision was published twice"
    assert sorted(m.json["causation_id"] for m in got if m.event_type in final) == sorted(ids)
    return rows, got


def kill(process: subprocess.Popen[bytes], how: signal.Signals = signal.SIGKILL) -> None:
    """Signal a spawned service's whole process group and wait for it to end."""
    os.killpg(process.pid, how)
    process.wait(40)


_DECISION_DEFAULTS: dict[str, Any] = {
    "nir": sample_nir(1),
    "caisse_de_base": "PL-IDF",
    "base_legale": ["CSS L611-20 al.1 (v. 2017-01-01)"],
    "regles_version": "al1-2017.1",
    "cotisation_id": "COT-1",
    "paiement_id": "PAI-1",
    "prestation_id": "PRE-1",
    "sujet_id": "COT-1",
    "organisme_id": "OC-1",
    "convention_id": "CONV-1",
    "montant_cents": 100,
    "solde_restant_cents": 0,
    "restant_du_cents": 100,
    "motif": "AUCUNE_CONVENTION",
    "recouvreur": None,
    "nature": "IJ_MALADIE",
}


def decision_payload(event_type: str, **fields: Any) -> dict[str, Any]:
    """A complete, valid payload of decision `event_type`: `fields`, and for every other
    field its model requires, a plausible value."""
    model = getattr(outbound, event_type)
    return {
        name: fields.get(name, _DECISION_DEFAULTS.get(name))
        for name in model.model_fields
        if name in fields or name in _DECISION_DEFAULTS
    }
