"""`make up` / `make down`: a local Kafka and PostgreSQL under `.run/`, found again by pid.

`.run/endpoints.env` tells other programs where they are (KAFKA_BOOTSTRAP_SERVERS,
DATABASE_URL, and the services' HTTP ports once they run). Data stays under `.run/` until
`make clean`.
"""

from __future__ import annotations

import os
from pathlib import Path

from services.tools.devstack.kafka import is_running as kafka_running
from services.tools.devstack.kafka import start_kafka, stop_kafka
from services.tools.devstack.kafka_auth import client_endpoints, stack_auth
from services.tools.devstack.postgres import is_running as postgres_running
from services.tools.devstack.postgres import start_postgres, stop_postgres

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN_DIR = Path(os.environ.get("MANDAT_RUN_DIR", REPO_ROOT / ".run"))
ENDPOINTS = RUN_DIR / "endpoints.env"
KAFKA_PORT = int(os.environ.get("MANDAT_KAFKA_PORT", "9092"))
POSTGRES_PORT = int(os.environ.get("MANDAT_POSTGRES_PORT", "5432"))


def up(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Start (or find running) Kafka and PostgreSQL; write and return the endpoints."""
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    auth = stack_auth(RUN_DIR / "kafka")  # SASL/SCRAM and ACLs (kafka_auth.py)
    kafka = start_kafka(
        RUN_DIR / "kafka",
        port=KAFKA_PORT,
        controller_port=KAFKA_PORT + 1,
        repo_root=REPO_ROOT,
        auth=auth,
    )
    postgres = start_postgres(RUN_DIR / "postgres", port=POSTGRES_PORT)
    endpoints = read_endpoints()
    endpoints |= {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap, "DATABASE_URL": postgres.url}
    endpoints |= client_endpoints(auth)
    endpoints |= extra or {}
    write_endpoints(endpoints)
    return endpoints


def down() -> list[str]:
    """Stop what runs (by pid); returns what was stopped. Data is kept."""
    stopped = []
    if stop_postgres(RUN_DIR / "postgres"):
        stopped.append("postgres")
    if stop_kafka(RUN_DIR / "kafka"):
        stopped.append("kafka")
    return stopped


def status() -> dict[str, str]:
    """What runs, with its pid and address."""
    found = {}
    if (k := kafka_running(RUN_DIR / "kafka")) is not None:
        found["kafka"] = f"pid {k.pid} at {k.bootstrap}"
    if (p := postgres_running(RUN_DIR / "postgres")) is not None:
        found["postgres"] = f"pid {p.pid} at 127.0.0.1:{p.port}"
    return found


def read_endpoints(path: Path = ENDPOINTS) -> dict[str, str]:
    """The KEY=value lines of `.run/endpoints.env` (empty when absent)."""
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, v in pairs if not k.lstrip().startswith("#")}


def write_endpoints(endpoints: dict[str, str], path: Path = ENDPOINTS) -> None:
    """Write them readable by their owner only: they hold the services' passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("".join(f"{k}={v}\n" for k, v in sorted(endpoints.items())))
    path.chmod(0o600)
