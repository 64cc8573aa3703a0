"""Run one service as a process: Kafka subscriber, relay and HTTP status, until SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import uvicorn

from services.adapters.runtime import tracing
from services.adapters.runtime.heap import freeze_start_up
from services.adapters.runtime.http import StatusApp
from services.adapters.runtime.logs import configure_json_logging
from services.adapters.runtime.monitoring import monitors
from services.adapters.runtime.service import ServiceRuntime
from services.adapters.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)


def build(service: str, settings: ServiceSettings | None = None) -> ServiceRuntime:
    """The runtime of `service` ("collection" or "benefits")."""
    from services.adapters.runtime.apps import build_runtime

    return build_runtime(service, settings or ServiceSettings())


def http_port(service: str, settings: ServiceSettings) -> int:
    return settings.http_port_of(service)


async def serve(service: str, settings: ServiceSettings | None = None) -> None:
    """Run `service` until SIGTERM/SIGINT, then stop gracefully: the batch in hand is
    committed or abandoned (its offsets are not committed either way), nothing is lost."""
    settings = settings or ServiceSettings()
    configure_json_logging(
        service, logging.DEBUG if os.environ.get("MANDAT_DEBUG") else logging.INFO
    )
    runtime = build(service, settings)

    async def probe() -> dict[str, object]:
        state = await runtime.probe()
        runtime.refresh_gauges(state)
        return state

    def metrics() -> bytes:
        return runtime.metrics.exposition()

    app = StatusApp(probe, metrics, runtime.asyncapi)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=http_port(service, settings),
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    async with runtime.running():
        frozen = freeze_start_up()  # out of the collector's sight from now on (see heap)
        log.info("%s ready; HTTP on %s:%d", service, config.host, config.port)
        log.debug("%d objects of start-up frozen", frozen)
        gauges = [asyncio.create_task(t) for t in (_refresh(runtime), *monitors(runtime))]
        try:
            # uvicorn stops on SIGTERM (or Ctrl-C), then raises it again for the handler it
            # found: the default one would end the process there, before the subscriber, the
            # relay and the exporter stop. This one asks uvicorn to stop (it may not listen
            # yet).
            for stop in (signal.SIGTERM, signal.SIGINT):
                signal.signal(stop, lambda *_: setattr(server, "should_exit", True))
            await server.serve()
        finally:
            for task in gauges:
                task.cancel()
            await asyncio.gather(*gauges, return_exceptions=True)
    tracing.disable()  # export the spans still held before the process ends
    log.info("%s stopped", service)


async def _refresh(runtime: ServiceRuntime, every: float = 2.0) -> None:
    """Keep the gauges current between scrapes (lag, parked, head)."""
    while True:
        await asyncio.sleep(every)
        try:
            runtime.refresh_gauges(await runtime.probe())
        except Exception:
            log.debug("probe failed", exc_info=True)
