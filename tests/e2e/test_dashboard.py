"""The operations dashboard in a real headless browser (Debian's chromium, driven by
Playwright): both services and the dashboard run in this process against the real Kafka
and PostgreSQL of the suite; a small scenario is played and the page must show it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from support import (
    REPO,
    Feed,
    affiliation,
    convention,
    cotisation,
    envelope,
    free_port,
    nir,
    organisme,
    paiement,
    prestation,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.http import StatusApp
from services.adapters.runtime.service import ServiceRuntime
from services.adapters.runtime.settings import ServiceSettings
from services.tools.dashboard.server import serve_dashboard

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
WAIT_MS = 20_000
DEEP = b"[" * 10_000 + b"]" * 10_000


@contextlib.asynccontextmanager
async def status_http(runtime: ServiceRuntime, port: int) -> AsyncIterator[uvicorn.Server]:
    """The service's /ready and /metrics, as `mandat <service> run` serves them."""

    async def probe() -> dict[str, Any]:
        state = await runtime.probe()
        runtime.refresh_gauges(state)
        return state

    app = StatusApp(probe, runtime.metrics.exposition, runtime.asyncapi)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), f"status HTTP did not start on {port}"
        await asyncio.sleep(0.05)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


async def wait_registry_consumed(s: ServiceSettings, timeout: float = 30.0) -> None:
    """Until both services committed the whole registry topic (so the contributions sent
    next are decided with it, not parked by a race between topics)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=s.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics([s.topic_referentiel])
        parts = [
            TopicPartition(s.topic_referentiel, p["partition"]) for p in described[0]["partitions"]
        ]
        ends = await consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout
        for group in (s.collection_group, s.benefits_group):
            while True:
                committed = await admin.list_consumer_group_offsets(group, partitions=parts)
                if all(
                    (committed.get(tp) and committed[tp].offset >= end) or end == 0
                    for tp, end in ends.items()
                ):
                    break
                assert time.monotonic() < deadline, f"{group} did not consume the registry"
                await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
        await admin.close()


def on(caisse: str, fact: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    return fact[0], {**fact[1], "caisse_de_base": caisse}


async def test_the_dashboard_shows_decisions_amounts_parked_rejections_and_lag(
    settings: ServiceSettings,
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is needed: apt-get install -y chromium")
    try:
        from playwright.async_api import async_playwright, expect
    except ImportError:
        pytest.fail("Playwright for Python is needed: pip install playwright")

    s = settings.model_copy(
        update={"collection_http_port": free_port(), "benefits_http_port": free_port()}
    )
    port = free_port()
    people = {i: nir(9000 + i) for i in range(1, 7)}
    ready = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        collection = await stack.enter_async_context(build_runtime("collection", s).running())
        benefits = await stack.enter_async_context(build_runtime("benefits", s).running())
        await stack.enter_async_context(status_http(collection, s.collection_http_port))
        benefits_http = await stack.enter_async_context(status_http(benefits, s.benefits_http_port))
        dashboard = asyncio.create_task(serve_dashboard(s, port, ready_event=ready))
        stack.push_async_callback(_cancel, dashboard)
        await asyncio.wait_for(ready.wait(), 30)
        feed = await stack.enter_async_context(Feed(s.kafka_bootstrap_servers))

        # the registry: an eligible mutuelle with both conventions for PL-IDF, an insurer
        # collecting for PL-IDF and PL-PACA (no benefits convention), an ineligible organism
        for fact in (
            organisme("OC-MUT"),
            organisme("OC-ASS", "SOCIETE_ASSURANCE"),
            organisme("OC-OSS", "ORGANISME_SECURITE_SOCIALE"),
            convention("CNV-ENC-MUT", "OC-MUT"),
            convention("CNV-VER-MUT", "OC-MUT", objet="VERSEMENT_PRESTATIONS_ESPECES"),
            convention("CNV-ENC-ASS", "OC-ASS", caisses=("PL-IDF", "PL-PACA")),
            affiliation(people[1], "OC-MUT"),
            affiliation(people[2], "OC-MUT"),
            affiliation(people[4], "OC-ASS"),
            affiliation(people[5], "OC-OSS"),
        ):
            await feed.send(s.topic_referentiel, fact)
        await wait_registry_consumed(s)

        c, p = s.topic_cotisations, s.topic_prestations
        await feed.send(c, cotisation("COT-1", people[1]))  # delegated, 1 950,00 €
        await feed.send(c, paiement("PAY-1", "COT-1", people[1], 50_000))  # 500,00 € held
        await feed.send(c, cotisation("COT-2", people[2], debut="2018-01-01"))  # URSSAF
        await feed.send(c, cotisation("COT-3", people[3]))  # parked: no affiliation yet
        await feed.send(c, on("PL-PACA", cotisation("COT-4", people[4], montant=120_000)))
        await feed.send(c, paiement("PAY-4", "COT-4", people[4], 120_000))
        await feed.send(c, cotisation("COT-5", people[5]))  # ineligible organism
        await feed.send(p, prestation("PRE-1", people[1]))  # paid on behalf, 3 269,00 €
        await feed.send(p, prestation("PRE-2", people[2], jour="2016-05-02"))  # before 2017
        await feed.send(
            p, on("PL-PACA", prestation("PRE-4", people[4], nature="IJ_MATERNITE", montant=236_456))
        )  # paid directly
        # two contract breaches, one per service
        await feed.raw(c, b"{not json", key=people[6].encode())
        negative = dict(prestation("PRE-6", people[6])[1], montant_cents=-5)
        await feed.raw(p, envelope("PrestationEspecesDue", negative), key=people[6].encode())

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            stack.push_async_callback(browser.close)
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            await page.goto(f"http://127.0.0.1:{port}/")
            await expect(page).to_have_title("mandat · operations")

            def tid(name: str) -> Any:
                return page.get_by_test_id(name)

            def decision(service: str, event_type: str, motif: str = "") -> Any:
                return page.locator(
                    f'tr[data-testid="decision-row"][data-service="{service}"]'
                    f'[data-type="{event_type}"][data-motif="{motif}"]'
                )

            def organism(oid: str, caisse: str, col: str) -> Any:
                return page.locator(
                    f'tr[data-testid="organism-row"][data-organisme="{oid}"]'
                    f'[data-caisse="{caisse}"] td[data-col="{col}"]'
                )

            async def has(locator: Any, text: str) -> None:
                await expect(locator).to_have_text(text, timeout=WAIT_MS)

            # header tiles: 9 final decisions, 1 parked, 2 rejected, amounts in euros
            await has(tid("tile-decisions"), "9")
            await has(tid("tile-parked"), "1")
            await has(tid("tile-rejected"), "2")
            await has(tid("tile-delegated"), "3 150,00 €")
            await has(tid("tile-held"), "1 700,00 €")
            await has(tid("tile-paid"), "3 269,00 €")
            await expect(page.locator("#conn")).to_have_text("live")

            # decisions per type and motif, per service
            for service, event_type, motif, count in (
                ("collection", "EncaissementDelegue", "", "2"),
                ("collection", "PaiementEncaissePourCompte", "", "2"),
                ("collection", "EncaissementNonDelegue", "RECOUVREMENT_URSSAF", "1"),
                ("collection", "EncaissementNonDelegue", "ORGANISME_INELIGIBLE", "1"),
                ("collection", "DecisionEnAttente", "AFFILIATION_INCONNUE", "1"),
                ("benefits", "VersementDelegue", "", "1"),
                ("benefits", "VersementDirect", "AUCUNE_CONVENTION", "1"),
                ("benefits", "PrestationNonTraitee", "PERIODE_ANTERIEURE_A_2017", "1"),
            ):
                await has(
                    decision(service, event_type, motif).locator('td[data-col="count"]'), count
                )
            await expect(page.locator('tr[data-testid="decision-row"]')).to_have_count(8)
            await has(
                decision("benefits", "VersementDelegue").locator('td[data-col="amount"]'),
                "3 269,00 €",
            )

            # amounts per organism and caisse de base
            await has(organism("OC-MUT", "PL-IDF", "delegated"), "1 950,00 €")
            await has(organism("OC-MUT", "PL-IDF", "held"), "500,00 €")
            await has(organism("OC-MUT", "PL-IDF", "paid"), "3 269,00 €")
            await has(organism("OC-ASS", "PL-PACA", "delegated"), "1 200,00 €")
            await has(organism("OC-ASS", "PL-PACA", "held"), "1 200,00 €")
            await expect(tid("direct")).to_contain_text("PL-PACA 2 364,56 €")

            # the parked contribution, with its motif
            parked = page.locator('tr[data-testid="parked-row"]')
            await expect(parked).to_have_count(1, timeout=WAIT_MS)
            await expect(parked).to_have_attribute("data-sujet", "COT-3")
            await expect(parked).to_contain_text("AFFILIATION_INCONNUE")

            # the two rejections with their reasons
            rejections = page.locator('tr[data-testid="rejection-row"]')
            await expect(rejections).to_have_count(2, timeout=WAIT_MS)
            bad_json = page.locator('tr[data-testid="rejection-row"][data-service="collection"]')
            await expect(bad_json.locator('[data-col="reason"]')).to_contain_text("JSON")
            await expect(bad_json.locator('[data-col="source"]')).to_contain_text(c)
            negative_row = page.locator('tr[data-testid="rejection-row"][data-service="benefits"]')
            await expect(negative_row.locator('[data-col="reason"]')).to_contain_text(
                "montant_cents"
            )

            # both services up, nothing left to consume or to publish
            for name in ("collection", "benefits"):
                lag = tid(f"lag-{name}")
                await expect(lag.locator('[data-field="status"]')).to_have_attribute(
                    "data-status", "up", timeout=WAIT_MS
                )
                await has(lag.locator('[data-field="consumer-lag"] [data-value]'), "0")
                await has(lag.locator('[data-field="relay-lag"] [data-value]'), "0")

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            await page.screenshot(path=str(shot), full_page=True)
            readme_shot = REPO / "docs" / "dashboard.png"
            if not readme_shot.exists() or os.environ.get("MANDAT_UPDATE_SCREENSHOT"):
                readme_shot.parent.mkdir(exist_ok=True)
                shutil.copyfile(shot, readme_shot)

            # the affiliation arrives: the parked contribution is decided and leaves the list
            await feed.send(s.topic_referentiel, affiliation(people[3], "OC-MUT"))
            await expect(parked).to_have_count(0, timeout=WAIT_MS)
            await has(tid("tile-parked"), "0")
            await has(tid("tile-decisions"), "10")
            await has(
                decision("collection", "EncaissementDelegue").locator('td[data-col="count"]'), "3"
            )
            await has(organism("OC-MUT", "PL-IDF", "delegated"), "3 900,00 €")
            await has(tid("tile-delegated"), "5 100,00 €")

            # hostile records: a decision nested 10,000 deep, then a rejection whose value and
            # reason carry markup and a NIR, and a forged reject_field before ours; the page
            # goes on counting, shows text (not markup) and masks the NIR
            await feed.raw(s.topic_reglements_cotisations, DEEP, key=b"poison")
            await feed.producer.send_and_wait(
                s.topic_rejets_collection,
                f'<img src=x onerror="window.pwned=1"> {people[6]}'.encode(),
                key=b"poison",
                headers=[
                    ("reject_field", b"<b>forged</b>"),
                    ("trace", None),
                    (
                        "reject_reason",
                        f"<script>window.pwned=2</script> (got '{people[6]}')".encode(),
                    ),
                    ("reject_field", b"payload.nir"),
                ],
            )
            await feed.send(c, cotisation("COT-7", people[2], debut="2018-01-01"))
            await has(tid("tile-decisions"), "11")
            await has(tid("tile-rejected"), "3")
            await expect(page.locator("#count-collection")).to_contain_text("1 unreadable")
            hostile = page.locator('tr[data-testid="rejection-row"]').first
            await has(
                hostile.locator('[data-col="reason"]'),
                "<script>window.pwned=2</script> (got '***NIR***')",
            )
            await expect(hostile.locator('[data-col="value"]')).to_contain_text(
                '<img src=x onerror="window.pwned=1"> ***NIR***'
            )
            await has(hostile.locator('[data-col="field"]'), "payload.nir")
            rejections_body = tid("rejections")
            await expect(rejections_body.locator("img, script, b")).to_have_count(0)
            assert await page.evaluate("window.pwned") is None
            assert people[6] not in await page.content()

            # a service whose HTTP stops answering is shown as down
            benefits_http.should_exit = True
            await expect(tid("lag-benefits").locator('[data-field="status"]')).to_have_attribute(
                "data-status", "down", timeout=WAIT_MS
            )
            await expect(tid("lag-collection").locator('[data-field="status"]')).to_have_attribute(
                "data-status", "up"
            )

            # it answers again, 503 with a stalled relay: which, for how long and why
            stalled = await asyncio.start_server(
                _ready_replier(
                    {
                        "ready": False,
                        "stalled": {"consumer": 0, "relay": 75},
                        "store_head": 12,
                        "relay_published": 9,
                        "relay_leader": True,
                        "reasons": [f"relay: no progress for 75 s <b>{people[6]}</b>"],
                    }
                ),
                "127.0.0.1",
                s.benefits_http_port,
            )
            stack.push_async_callback(stalled.wait_closed)
            stack.callback(stalled.close)
            lag = tid("lag-benefits")
            await has(lag.locator('[data-field="status"]'), "up · stalled")
            await expect(
                lag.locator('[data-field="stalled"][data-component="relay"]')
            ).to_have_text(re.compile(r"relay stalled for 1\s*min 15\s*s"), timeout=WAIT_MS)
            await has(
                lag.locator('[data-field="reasons"]'),
                "relay: no progress for 75 s <b>***NIR***</b>",
            )
            await has(lag.locator('[data-field="relay-lag"] [data-value]'), "3")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-after.png"), full_page=True)

            state = json.loads(
                await (await page.request.get(f"http://127.0.0.1:{port}/api/state")).text()
            )
            assert state["totals"]["parked_events"] == 1
            assert state["totals"]["litigation_cents"] == 0


def _ready_replier(document: dict[str, Any]) -> Any:
    """A stand-in for a service's /ready answering 503 with `document`."""
    body = json.dumps(document).encode()

    async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return reply


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
