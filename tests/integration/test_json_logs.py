"""Every line a running service (its relay, FastStream, uvicorn, the console trace
exporter) and the dashboard write is one JSON object, from the first line to the last, and
no NIR is in any of them."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from support import REPO, cotisation, create_topics, envelope, free_port, key_of, nir, service_env

from services.adapters.runtime.settings import ServiceSettings

pytestmark = pytest.mark.integration


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


async def wait_for(port: int, path: str, seen: bytes = b"", timeout: float = 60) -> bytes:
    for _ in range(int(timeout / 0.3)):
        status, body = get(port, path)
        if status == 200 and seen in body:
            return body
        await asyncio.sleep(0.3)
    raise AssertionError(f"{path} on {port}: {get(port, path)}")


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "services.tools.cli", *args],
            cwd=REPO,
            env=env,
            stdout=out,  # stdout and stderr alike: every line the process writes
            stderr=out,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def parse_every_line(log: Path) -> list[dict[str, Any]]:
    text = log.read_text()
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"{log.name}:{number} is not JSON: {line[:300]!r}") from None
        assert isinstance(entry, dict), f"{log.name}:{number}: {line[:300]!r}"
        assert {"ts", "level", "logger", "msg"} <= entry.keys(), f"{log.name}:{number}: {line}"
        entries.append(entry)
    return entries


async def test_a_service_and_the_dashboard_write_nothing_but_json_lines(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    s, port, board = settings, free_port(), free_port()
    await create_topics(s)
    env = service_env(s, port) | {
        "MANDAT_DEBUG": "1",
        "MANDAT_TRACE_EXPORTER": "console",
        "MANDAT_DASHBOARD_HTTP_PORT": str(board),
        "MANDAT_COLLECTION_HTTP_HOST": "127.0.0.1",
    }
    service_log, board_log = tmp_path / "collection.log", tmp_path / "dashboard.log"
    service = spawn(["collection", "run"], env, service_log)
    dashboard = spawn(["dashboard", "--port", str(board)], env, board_log)
    person = nir(901)
    try:
        await wait_for(port, "/ready")
        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            fact = cotisation("COT-J", person, debut="2018-01-01")
            upstream = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            await producer.send_and_wait(
                s.topic_cotisations,
                envelope(fact[0], fact[1]),
                key=key_of(fact[1]),
                headers=[("traceparent", upstream), ("correlation_id", person.encode())],
            )
            await producer.send_and_wait(
                s.topic_cotisations,
                b"{oops " + person.encode(),
                key=person.encode(),
                headers=[("traceparent", b"\xff\x00 not-a-traceparent")],
            )
        finally:
            await producer.stop()
        await wait_for(port, "/metrics", b'mandat_rejections_total{reason="message"} 1.0')
        await wait_for(board, "/health")
        await wait_for(board, "/api/state")
    finally:
        for process in (service, dashboard):
            process.terminate()
        for process in (service, dashboard):
            process.wait(40)
    lines = parse_every_line(service_log)
    board_lines = parse_every_line(board_log)
    for log in (service_log, board_log):
        assert person not in log.read_text()
    assert board_lines and {e["logger"] for e in board_lines} >= {"services.tools.dashboard.server"}
    loggers = {e["logger"] for e in lines}
    assert any(name.startswith("faststream") for name in loggers), loggers
    assert any(name.startswith("uvicorn") for name in loggers), loggers
    spans = [e["span"] for e in lines if e["logger"] == "mandat.trace"]
    names = {span["name"] for span in spans}
    assert {"mandat.parse", "mandat.append", "mandat.decide", "mandat.relay.publish"} <= names
    # a line logged in a span says where in its trace it is
    traced = [e for e in lines if "trace_id" in e and e["logger"] != "mandat.trace"]
    assert any(e.get("event_id") for e in traced)
    assert {e["trace_id"] for e in traced} <= {span["trace_id"] for span in spans}


def test_a_warning_and_a_crash_are_json_lines_too(tmp_path: Path) -> None:
    log = tmp_path / "crash.log"
    code = (
        "import logging, warnings\n"
        "from services.adapters.runtime.logs import configure_json_logging\n"
        "configure_json_logging('collection')\n"
        "warnings.warn('deprecated here')\n"
        f"raise ValueError('boom for {nir(902)}')\n"
    )
    with log.open("wb") as out:
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, stdout=out, stderr=out, timeout=60
        )
    assert done.returncode == 1
    entries = parse_every_line(log)
    assert [e["logger"] for e in entries] == ["py.warnings", "mandat"]
    assert "deprecated here" in entries[0]["msg"]
    assert entries[1]["level"] == "critical" and "ValueError" in entries[1]["exc"]
    assert nir(902) not in log.read_text()


@pytest.mark.parametrize(
    ("when", "stop"),
    [
        ("relay collection leads", signal.SIGTERM),
        ("Uvicorn running on", signal.SIGTERM),
        ("Uvicorn running on", signal.SIGINT),
    ],
)
async def test_a_service_stopped_at_any_moment_exits_and_its_lines_are_json(
    settings: ServiceSettings, tmp_path: Path, when: str, stop: signal.Signals
) -> None:
    """SIGTERM while the subscriber starts, or once HTTP serves: the process ends either way
    (the graceful stop must not swallow a signal that came before uvicorn listened)."""
    s, port, log = settings, free_port(), tmp_path / "collection.log"
    await create_topics(s)
    service = spawn(["collection", "run"], service_env(s, port), log)
    try:
        for _ in range(600):
            if when in log.read_text() or service.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert when in log.read_text(), log.read_text()[-2000:]
        service.send_signal(stop)
        assert service.wait(40) in (0, -stop)
    finally:
        if service.poll() is None:
            service.kill()
            service.wait(10)
    parse_every_line(log)
