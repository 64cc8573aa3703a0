"""`mandat run`: the main job — a realistic scenario through both services, summarised."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from services.tools.options import Command, Option

DEFAULT_SIZE = 40_000
"""About a minute end to end on a 2-core machine, Kafka and PostgreSQL cold start included
(about 20 s of it; the services decide about 1,000 to 2,000 messages/s here)."""
DEFAULT_SEED = 42
OPTIONS = (
    Option(
        "--size",
        DEFAULT_SIZE,
        f"about how many contribution and benefit inputs (default {DEFAULT_SIZE})",
    ),
    Option("--seed", DEFAULT_SEED, f"same seed, same summary (default {DEFAULT_SEED})"),
    Option(
        "--timeout",
        None,
        "seconds to wait for the decisions once feeding starts (default: 60 + size/100)",
        type=float,
    ),
    Option(
        "--external",
        False,
        "the services already run elsewhere (e.g. after `make up`): use "
        "their Kafka and PostgreSQL (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL or "
        ".run/endpoints.env) and do not start anything",
    ),
    Option("--json", False, "print the summary as JSON (progress goes to stderr)"),
    Option("--run-tag", None, argparse.SUPPRESS),
)


def _run(args: argparse.Namespace) -> int:
    from services.adapters.runtime.settings import ServiceSettings
    from services.tools.demo.run import play
    from services.tools.devstack import stack
    from services.tools.devstack.kafka_auth import login_settings

    if args.size < 1:
        print("--size must be at least 1", file=sys.stderr)
        return 2
    progress = sys.stderr if args.json else sys.stdout
    started: list[str] = []
    try:
        if args.external:
            endpoints = {
                k: v
                for k, v in stack.read_endpoints().items()
                if k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL") and k not in os.environ
            }
            settings = ServiceSettings(**endpoints)  # type: ignore[arg-type]
        else:
            before = stack.status()
            started = [name for name in ("kafka", "postgres") if name not in before]
            if started:
                print(
                    f"starting {' and '.join(started)} under {stack.RUN_DIR} ...",
                    file=progress,
                    flush=True,
                )
            try:
                endpoints = stack.up()
            except Exception as exc:  # said plainly; what started is stopped below
                print(
                    f"could not start Kafka and PostgreSQL under {stack.RUN_DIR}: {exc}",
                    file=sys.stderr,
                )
                return 1
            settings = ServiceSettings(
                KAFKA_BOOTSTRAP_SERVERS=endpoints["KAFKA_BOOTSTRAP_SERVERS"],
                DATABASE_URL=endpoints["DATABASE_URL"],
                **login_settings(endpoints),  # the Kafka login of each role
            )
        summary = asyncio.run(
            play(
                args.size,
                args.seed,
                settings,
                start_services=not args.external,
                run_tag=args.run_tag,
                timeout=args.timeout,
                out=progress,
            )
        )
    finally:
        _stop(started)
    if args.json:
        from services.tools.cli import print_json

        print_json(summary.to_json())
    else:
        print()
        print(summary.render())
    if not summary.complete:
        print(
            f"incomplete: {len(summary.missing)} inputs without their decision or rejection "
            f"(first: {summary.missing[0]})",
            file=sys.stderr,
        )
        for note in summary.notes:
            print(f"note: {note}", file=sys.stderr)
        return 1
    return 0


def _stop(names: list[str]) -> None:
    """Stop what this command started (and only that)."""
    if not names:
        return
    from services.tools.devstack import stack
    from services.tools.devstack.kafka import stop_kafka
    from services.tools.devstack.postgres import stop_postgres

    if "postgres" in names:
        stop_postgres(stack.RUN_DIR / "postgres")
    if "kafka" in names:
        stop_kafka(stack.RUN_DIR / "kafka")


COMMAND = Command(
    "run",
    help="play a realistic scenario through both services and summarise the decisions",
    description="Start Kafka and PostgreSQL under .run/ (unless running), run both "
    "services in-process, publish a realistic scenario as an upstream agency would, "
    "wait for every decision and rejection, and print a summary. Exits 0 when every "
    "input got its decision or its rejection.",
    run=_run,
    options=OPTIONS,
)
register = COMMAND.register
