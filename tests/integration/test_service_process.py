"""`mandat collection run` as operations see it: health, readiness, metrics, AsyncAPI, logs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from support import REPO, Feed, cotisation, create_topics, free_port, nir, service_env

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


async def wait_ready(port: int, timeout: float = 60) -> dict[str, object]:
    for _ in range(int(timeout / 0.3)):
        status, body = get(port, "/ready")
        if status == 200:
            return dict(json.loads(body))
        await asyncio.sleep(0.3)
    raise AssertionError(f"not ready: {get(port, '/ready')}")


async def test_a_running_service_reports_readiness_metrics_and_asyncapi_and_logs_no_nir(
    settings: ServiceSettings, tmp_path: Path
) -> None:
    s, port, log = settings, free_port(), tmp_path / "collection.log"
    await create_topics(s)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.tools.cli", "collection", "run"],
            cwd=REPO,
            env=service_env(s, port) | {"MANDAT_DEBUG": "1"},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        state = await wait_ready(port)
        assert state["postgres"] is True and state["kafka"] is True
        assert get(port, "/health")[0] == 200
        person = nir(900)
        async with Feed(s.kafka_bootstrap_servers) as feed:
            await feed.send(s.topic_cotisations, cotisation("COT-H", person, debut="2018-01-01"))
            await feed.raw(s.topic_cotisations, b"{oops", key=person.encode())
        metrics = b""
        for _ in range(50):
            metrics = get(port, "/metrics")[1]
            if b'mandat_rejections_total{reason="message"} 1.0' in metrics:
                break
            await asyncio.sleep(0.2)
        assert (
            b'mandat_decisions_total{event_type="EncaissementNonDelegue",'
            b'motif="RECOUVREMENT_URSSAF"} 1.0' in metrics
        )
        assert b'mandat_rejections_total{reason="message"} 1.0' in metrics
        assert b"mandat_relay_lag_events" in metrics
        asyncapi = json.loads(get(port, "/asyncapi.json")[1])
        assert asyncapi["asyncapi"].startswith("3.")
    finally:
        process.terminate()
        process.wait(40)
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines, "the service logs JSON lines"
    assert any(line.get("event_id") for line in lines)
    assert person not in log.read_text(), "a NIR appears in clear in the logs"
