"""`mandat dashboard`: the operations dashboard, a live web page over the output topics."""

from __future__ import annotations

import argparse
import asyncio
import logging

from services.tools.options import Command, Option

OPTIONS = (
    Option("--port", None, "HTTP port (default: MANDAT_DASHBOARD_HTTP_PORT, 8080)", type=int),
    Option("--host", "127.0.0.1", "address to listen on (default 127.0.0.1)"),
    Option(
        "--from-now",
        False,
        "only count what is published from now on (default: everything the topics hold)",
    ),
)


def _run(args: argparse.Namespace) -> int:
    from services.adapters.runtime.logs import configure_json_logging
    from services.adapters.runtime.settings import ServiceSettings
    from services.tools.dashboard.server import serve_dashboard

    settings = ServiceSettings()
    port = settings.dashboard_http_port if args.port is None else args.port
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0") else args.host
    configure_json_logging("dashboard")  # like the services: one JSON object a line
    logging.getLogger("services.tools.dashboard").info(
        f"dashboard: http://{shown}:{port}/  (Kafka {settings.kafka_bootstrap_servers}; "
        f"Ctrl-C to stop)"
    )
    asyncio.run(serve_dashboard(settings, port, host=args.host, from_now=args.from_now))
    return 0


COMMAND = Command(
    "dashboard",
    help="serve the live operations dashboard (decisions, amounts, parked, rejections, lag)",
    description="Read the settlement and rejection topics (no consumer group, from the "
    "beginning unless --from-now), measure each service's lag, and serve a live page. "
    "Kafka and the services' HTTP ports come from the settings (KAFKA_BOOTSTRAP_SERVERS, "
    "MANDAT_* or .run/endpoints.env).",
    run=_run,
    options=OPTIONS,
)
register = COMMAND.register
