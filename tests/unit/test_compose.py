"""docker-compose.yml runs the same stack as `make up`, with the project's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from services.devstack import kafka, postgres, stack
from services.runtime.settings import ServiceSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).split(":")[-2]) for p in service.get("ports", [])}


def test_the_compose_file_has_kafka_postgres_and_both_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "kafka",
        "postgres",
        "migrate",
        "collection",
        "benefits",
        "dashboard",
    }


def test_kafka_is_the_same_line_as_the_local_broker_in_kraft_mode(
    compose: dict[str, Any],
) -> None:
    service = compose["services"]["kafka"]
    image, version = service["image"].split(":")
    assert image == "apache/kafka"
    assert version.split(".")[:2] == kafka.KAFKA_VERSION.split(".")[:2]
    env = service["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # the project creates its topics
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"


def test_host_ports_are_the_project_defaults(compose: dict[str, Any]) -> None:
    defaults = ServiceSettings.model_fields
    services = compose["services"]
    assert host_ports(services["kafka"]) == {stack.KAFKA_PORT}
    assert host_ports(services["postgres"]) == {stack.POSTGRES_PORT}
    assert host_ports(services["collection"]) == {defaults["collection_http_port"].default}
    assert host_ports(services["benefits"]) == {defaults["benefits_http_port"].default}
    assert host_ports(services["dashboard"]) == {defaults["dashboard_http_port"].default}


def test_the_dashboard_finds_each_service_by_its_compose_name(compose: dict[str, Any]) -> None:
    env = compose["services"]["dashboard"]["environment"]
    settings = ServiceSettings(
        **{k: v for k, v in env.items() if k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
    )
    assert settings.kafka_bootstrap_servers == "kafka:19092"
    assert env["MANDAT_COLLECTION_HTTP_HOST"] == "collection"
    assert env["MANDAT_BENEFITS_HTTP_HOST"] == "benefits"
    assert compose["services"]["dashboard"]["command"][:2] == ["mandat", "dashboard"]


def test_services_get_their_endpoints_from_the_settings_variables(
    compose: dict[str, Any],
) -> None:
    db = compose["services"]["postgres"]["environment"]
    assert db["POSTGRES_DB"] == postgres.DB_NAME
    for name in ("collection", "benefits"):
        service = compose["services"][name]
        env = service["environment"]
        settings = ServiceSettings(
            **{k: v for k, v in env.items() if k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}
        )
        assert settings.kafka_bootstrap_servers == "kafka:19092"
        # where the database is, without the owner's credentials: the service logs in as its
        # own role, with the password `mandat migrate` gave it
        assert settings.database_url.get_secret_value() == (
            f"postgresql://postgres:5432/{db['POSTGRES_DB']}"
        )
        # its own password, and not the other service's
        own = f"MANDAT_{name.upper()}_DB_PASSWORD"
        other = f"MANDAT_{'BENEFITS' if name == 'collection' else 'COLLECTION'}_DB_PASSWORD"
        assert env[own] == compose["services"]["migrate"]["environment"][own]
        assert other not in env
        assert "migrate" in service["depends_on"]
        assert env["MANDAT_HTTP_HOST"] == "0.0.0.0"
        assert service["command"] == ["mandat", name, "run"]
        assert (REPO / "Dockerfile").exists()


def test_the_owner_migrates_once_before_the_services(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["mandat", "migrate"]
    owner = migrate["environment"]["DATABASE_URL"]
    assert owner.startswith("postgresql://postgres:${POSTGRES_PASSWORD:-postgres}@")
    # the owner's port is published on the loopback interface only
    assert compose["services"]["postgres"]["ports"] == ["127.0.0.1:5432:5432"]
    for name in ("collection", "benefits"):
        condition = compose["services"][name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_each_kafka_client_holds_its_own_principal_only(compose: dict[str, Any]) -> None:
    roles = {"collection": "COLLECTION", "benefits": "BENEFITS", "dashboard": "READER"}
    for name, role in roles.items():
        env = compose["services"][name]["environment"]
        kafka_passwords = {k for k in env if k.startswith("MANDAT_KAFKA_") and "PASSWORD" in k}
        assert kafka_passwords == {f"MANDAT_KAFKA_{role}_PASSWORD"}
        protocol = env["MANDAT_KAFKA_SECURITY_PROTOCOL"]
        assert protocol.startswith("${MANDAT_KAFKA_SECURITY_PROTOCOL")
