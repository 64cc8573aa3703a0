"""`make up` / `make down` / `make status` / `make logs`: the whole system in the background.

Kafka and PostgreSQL (see stack.py), then each service as its own process
(`mandat <service> run`), found again by the pid files under `.run/`. `.run/endpoints.env`
lists KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL and the services' HTTP addresses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from services.adapters.kafka.acls import provision_kafka
from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog
from services.tools.devstack import stack
from services.tools.devstack.kafka_auth import login_settings

SERVICES = tuple(catalog.SERVICES)


def _pid_file(name: str) -> Path:
    return stack.RUN_DIR / f"{name}.pid"


def _log_file(name: str) -> Path:
    return stack.RUN_DIR / "logs" / f"{name}.log"


def _pid(name: str) -> int | None:
    try:
        pid = int(_pid_file(name).read_text().strip())
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
        return None if stat.rsplit(")", 1)[1].split()[0] == "Z" else pid
    except (OSError, ValueError, IndexError):
        return None


def _ports(settings: ServiceSettings) -> dict[str, int]:
    ports = {name: settings.http_port_of(name) for name in catalog.SERVICES}
    if importlib.util.find_spec("services.tools.dashboard") is not None:
        ports["dashboard"] = settings.dashboard_http_port
    return ports


def _ready(port: int, path: str = "/ready") -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def _secret(key: str) -> bool:
    return key.endswith("_PASSWORD") or key == "DATABASE_URL"


def without_password(url: str) -> str:
    """`url` with its password (if any) left out."""
    parts = urlsplit(url)
    user, at, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}@{host}" if at else host))


def process_env(name: str, endpoints: Mapping[str, str]) -> dict[str, str]:
    """What one process of the stack is given: the caller's environment and the stack's
    endpoints without any secret, then only its own logins — a service its database role's
    and its Kafka principal's password and where the database is (not the owner's login),
    the dashboard the Kafka reader's."""
    env = {k: v for k, v in os.environ.items() if not _secret(k)}
    env |= {k: v for k, v in endpoints.items() if not _secret(k)}
    if name in SERVICES:
        own = [f"MANDAT_{name.upper()}_DB_PASSWORD", f"MANDAT_KAFKA_{name.upper()}_PASSWORD"]
        url = urlsplit(endpoints["DATABASE_URL"])
        where = url._replace(netloc=url.netloc.rpartition("@")[2])
        env["DATABASE_URL"] = urlunsplit(where)
    else:
        own = ["MANDAT_KAFKA_READER_PASSWORD"]
    env |= {k: endpoints[k] for k in own if k in endpoints}
    return env


def _spawn(name: str, env: dict[str, str]) -> int:
    _log_file(name).parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "services.tools.cli", name]
    if name in SERVICES:
        command.append("run")
    with _log_file(name).open("ab") as log:
        process = subprocess.Popen(
            command,
            # not the repository: the settings would read every login from .run/endpoints.env
            cwd=_workdir(name),
            env=env,
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _pid_file(name).write_text(str(process.pid))
    return process.pid


def _workdir(name: str) -> Path:
    path = stack.RUN_DIR / "cwd" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _anchor_key() -> Path:
    """The local stack's signing key for anchors (made once, mode 0600; its public half
    beside it, `.pub`, is what `mandat audit chain --public-key` takes)."""
    from services.adapters.trust.signing import write_key_pair

    key = stack.RUN_DIR / "anchor-signing-key.pem"
    if not key.exists():
        write_key_pair(key)
    return key


def up(*, with_services: bool = True, timeout: float = 90.0) -> dict[str, str]:
    """Start what is not running yet (idempotent); return the endpoints."""
    endpoints = stack.up()
    if not with_services:
        return endpoints
    settings = ServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS=endpoints["KAFKA_BOOTSTRAP_SERVERS"],
        DATABASE_URL=endpoints["DATABASE_URL"],
        **login_settings(endpoints),  # the Kafka login of each role
    )
    # as the Kafka admin: every topic, and each principal's ACLs (services create nothing)
    asyncio.run(provision_kafka(settings))
    # as the owner: migrations and the services' login roles (passwords kept in endpoints.env
    # from one `up` to the next, so running services keep logging in)
    settings = asyncio.run(provision_services(settings))
    for service in SERVICES:
        secret = getattr(settings, f"{service}_db_password")
        endpoints[f"MANDAT_{service.upper()}_DB_PASSWORD"] = secret.get_secret_value()
    endpoints["MANDAT_ANCHOR_KEY_FILE"] = str(_anchor_key())
    stack.write_endpoints(endpoints)
    ports = _ports(settings)
    for name in ports:
        if _pid(name) is None:
            _spawn(name, process_env(name, endpoints))
    deadline = time.monotonic() + timeout
    for name, port in ports.items():
        path = "/ready" if name in SERVICES else "/"
        while not _ready(port, path):
            if _pid(name) is None:
                raise RuntimeError(f"{name} exited; see {_log_file(name)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not ready after {timeout:.0f}s; see {_log_file(name)}")
            time.sleep(0.5)
        endpoints[f"{name.upper()}_HTTP"] = f"http://127.0.0.1:{port}"
    stack.write_endpoints(endpoints)
    return endpoints


def down(timeout: float = 40.0) -> list[str]:
    """Stop the services (SIGTERM: they finish or abandon their batch, then exit), then
    PostgreSQL and Kafka. Data stays under .run/."""
    stopped = []
    for name in ("dashboard", *SERVICES):
        pid = _pid(name)
        if pid is None:
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid(name) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        if _pid(name) is not None:
            os.killpg(pid, signal.SIGKILL)
        _pid_file(name).unlink(missing_ok=True)
        stopped.append(name)
    return stopped + stack.down()


def status() -> dict[str, str]:
    """What runs, where, and whether each service says it is ready."""
    found = stack.status()
    endpoints = stack.read_endpoints()
    for name in ("dashboard", *SERVICES):
        pid = _pid(name)
        if pid is None:
            continue
        address = endpoints.get(f"{name.upper()}_HTTP", "")
        detail = ""
        if name in SERVICES and address:
            try:
                with urllib.request.urlopen(f"{address}/ready", timeout=2) as reply:
                    state = json.load(reply)
                detail = (
                    f" ready={state.get('ready')} head={state.get('store_head')} "
                    f"published={state.get('relay_published')} parked={state.get('parked')}"
                )
            except OSError:
                detail = " (not answering)"
        found[name] = f"pid {pid} at {address}{detail}"
    return found


def log_tails(lines: int) -> dict[str, str]:
    """The last lines of each log under .run/."""
    paths = sorted(stack.RUN_DIR.glob("logs/*.log")) + sorted(stack.RUN_DIR.glob("*/*.log"))
    paths += sorted(stack.RUN_DIR.glob("kafka/logs/server.log"))
    tails = {}
    for path in dict.fromkeys(paths):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        tails[
            str(path.relative_to(stack.REPO_ROOT))
            if path.is_relative_to(stack.REPO_ROOT)
            else str(path)
        ] = "\n".join(text)
    return tails
