"""`mandat`: the project's one command line. Subcommands are registered by their packages."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence

from services.domain import catalog

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _stack_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser("up", help="start Kafka, PostgreSQL and both services in the background")
    up.add_argument("--no-services", action="store_true", help="only Kafka and PostgreSQL")
    up.set_defaults(func=_up)
    sub.add_parser("down", help="stop what `up` started (data kept)").set_defaults(func=_down)
    sub.add_parser("status", help="what runs, where").set_defaults(func=_status)
    logs = sub.add_parser("logs", help="the last lines of every log under .run/")
    logs.add_argument("-n", type=int, default=40)
    logs.set_defaults(func=_logs)


def _up(args: argparse.Namespace) -> int:
    from services.tools.devstack import stack, system

    endpoints = system.up(with_services=not args.no_services)
    for key, value in endpoints.items():
        if key.endswith("_PASSWORD"):
            continue
        if key == "DATABASE_URL":  # the owner's login: where it is, not the password
            value = system.without_password(value)
        print(f"{key}={value}")
    print(f"# logins and passwords: {stack.ENDPOINTS} (readable by its owner only)")
    return 0


def _down(args: argparse.Namespace) -> int:
    from services.tools.devstack import system

    stopped = system.down()
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def _status(args: argparse.Namespace) -> int:
    from services.tools.devstack import system

    found = system.status()
    for name, where in found.items():
        print(f"{name:12} {where}")
    if not found:
        print("nothing runs (make up)")
    return 0


def _logs(args: argparse.Namespace) -> int:
    from services.tools.devstack import system

    for path, lines in system.log_tails(args.n).items():
        print(f"==> {path} <==")
        print(lines)
    return 0


def _service_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name in catalog.SERVICES:
        parser = sub.add_parser(name, help=f"the {name} service")
        actions = parser.add_subparsers(dest="action", required=True)
        run = actions.add_parser("run", help="run it in the foreground (until SIGTERM/SIGINT)")
        run.set_defaults(func=_run_service, service=name)


def _migrate_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    migrate = sub.add_parser(
        "migrate",
        help="as the database owner (DATABASE_URL): apply the migrations and (re)create each "
        "service's login role",
    )
    migrate.add_argument(
        "--service", choices=tuple(catalog.SERVICES), help="one service (default: both)"
    )
    migrate.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="a new store split into N shards by NIR (default: MANDAT_STORE_SHARDS, else 1; "
        "best a multiple of the topics' partitions); a store holding events keeps its layout",
    )
    migrate.add_argument(
        "--env-file",
        metavar="PATH",
        help="write MANDAT_<SERVICE>_DB_PASSWORD lines there (mode 0600) "
        "instead of printing the ones generated",
    )
    migrate.set_defaults(func=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    """Passwords come from MANDAT_<SERVICE>_DB_PASSWORD when set (the role's is set to it),
    else are generated and given once, to store where the service reads its settings."""
    import os

    from services.adapters.runtime.provision import SERVICES, provision_services
    from services.adapters.runtime.settings import ServiceSettings

    settings = ServiceSettings(**({"store_shards": args.shards} if args.shards else {}))
    services = (args.service,) if args.service else SERVICES
    done = asyncio.run(provision_services(settings, services))
    lines = []
    for service in services:
        given = getattr(settings, f"{service}_db_password")
        secret = getattr(done, f"{service}_db_password")
        print(
            f"{service}: schema {done.schema_of(service)} migrated"
            + (f" ({done.store_shards} shards)" if done.store_shards else "")
            + "; login role "
            f"{done.login(service)[0]}",
            file=sys.stderr,
        )
        if given is None or args.env_file:
            lines.append(f"MANDAT_{service.upper()}_DB_PASSWORD={secret.get_secret_value()}")
    if args.env_file and lines:
        fd = os.open(args.env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("\n".join(lines) + "\n")
    elif lines:
        print("\n".join(lines))
    return 0


def _run_service(args: argparse.Namespace) -> int:
    from services.adapters.runtime.serve import serve

    asyncio.run(serve(args.service))
    return 0


def _asyncapi_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("asyncapi", help="write (or --check) docs/asyncapi/<service>.json")
    parser.add_argument("--check", action="store_true", help="fail if a committed one is stale")
    parser.set_defaults(func=_asyncapi)


def _asyncapi(args: argparse.Namespace) -> int:
    from services.adapters.kafka.asyncapi import ASYNCAPI_DIR, render_all

    stale = []
    for name, text in render_all().items():
        path = ASYNCAPI_DIR / f"{name}.json"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("stale (run `mandat asyncapi`): " + ", ".join(stale))
    return 1 if stale else 0


def _registrations() -> list[Register]:
    """Each package adds its own subcommands (imported lazily: the CLI starts fast)."""
    found: list[Register] = [
        _stack_commands,
        _service_commands,
        _migrate_commands,
        _asyncapi_commands,
    ]
    for module in (
        "services.tools.demo.cli",
        "services.tools.audit.cli",
        "services.tools.bench.cli",
        "services.tools.dashboard.cli",
        "services.tools.kafka_cli",
    ):
        try:
            found.append(__import__(module, fromlist=["register"]).register)
        except ModuleNotFoundError as exc:
            if exc.name not in (module, module.rpartition(".")[0]):
                raise
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mandat",
        description="CSS L611-20: who collects contributions (al.1) and who pays cash "
        "benefits (al.2) — services, demo, replay, audit and benchmarks.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for register in _registrations():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


def print_json(value: object) -> None:
    """JSON output for `--json` flags (sorted keys, UTF-8 kept)."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


if __name__ == "__main__":
    sys.exit(main())
