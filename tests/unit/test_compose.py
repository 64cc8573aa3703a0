"""docker-compose.yml runs the same stack as `make up`, with the project's defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.adapters.runtime.settings import ServiceSettings
from services.tools.devstack import kafka, postgres, stack

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


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
        "prometheus",
        "grafana",
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


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> the repository file a service mounts there (bind mounts only)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("./"):
            found[target] = REPO / source
    return found


def test_prometheus_scrapes_both_services_and_loads_the_alert_rules(
    compose: dict[str, Any],
) -> None:
    prometheus = compose["services"]["prometheus"]
    files = mounts(prometheus)
    assert all(path.is_file() for path in files.values()), files
    config_path = files["/etc/prometheus/prometheus.yml"]
    config = yaml.safe_load(config_path.read_text())
    # the rule files it names are mounted beside it
    for rules in config["rule_files"]:
        assert f"/etc/prometheus/{rules}" in files
        assert files[f"/etc/prometheus/{rules}"] == config_path.parent / rules
    [job] = config["scrape_configs"]
    defaults = ServiceSettings.model_fields
    scraped = {group["labels"]["service"]: set(group["targets"]) for group in job["static_configs"]}
    assert scraped == {
        name: {f"{name}:{defaults[f'{name}_http_port'].default}"}
        for name in ("collection", "benefits")
    }
    for name in scraped:  # the compose service listens on that port
        assert compose["services"][name]["environment"][f"MANDAT_{name.upper()}_HTTP_PORT"] == (
            str(defaults[f"{name}_http_port"].default)
        )
    assert set(prometheus["depends_on"]) == {"collection", "benefits"}


def test_grafana_is_provisioned_with_prometheus_and_the_board(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    files = mounts(grafana)
    assert all(path.exists() for path in files.values()), files
    sources = files["/etc/grafana/provisioning/datasources"]
    boards = files["/etc/grafana/provisioning/dashboards"]
    [datasource] = [
        d for f in sources.glob("*.yml") for d in yaml.safe_load(f.read_text())["datasources"]
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "9090:9090" in compose["services"]["prometheus"]["ports"]
    [provider] = [
        p for f in boards.glob("*.yml") for p in yaml.safe_load(f.read_text())["providers"]
    ]
    # the board is mounted in the folder the provider loads
    board_in_container = [t for t in files if t.startswith(provider["options"]["path"] + "/")]
    assert len(board_in_container) == 1
    board_file = files[board_in_container[0]]
    assert board_file == REPO / "infra" / "grafana" / "mandat.json"
    board = json.loads(board_file.read_text())
    used = {p["datasource"]["uid"] for p in board["panels"]} | {
        t["datasource"]["uid"] for p in board["panels"] for t in p["targets"]
    }
    assert used == {datasource["uid"]}
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] in files


def test_each_kafka_client_holds_its_own_principal_only(compose: dict[str, Any]) -> None:
    roles = {"collection": "COLLECTION", "benefits": "BENEFITS", "dashboard": "READER"}
    for name, role in roles.items():
        env = compose["services"][name]["environment"]
        kafka_passwords = {k for k in env if k.startswith("MANDAT_KAFKA_") and "PASSWORD" in k}
        assert kafka_passwords == {f"MANDAT_KAFKA_{role}_PASSWORD"}
        protocol = env["MANDAT_KAFKA_SECURITY_PROTOCOL"]
        assert protocol.startswith("${MANDAT_KAFKA_SECURITY_PROTOCOL")
