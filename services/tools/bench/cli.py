"""`mandat bench <benchmark>`: one subcommand per benchmark module present, and `all`.

A benchmark is a module `services.tools.bench.<name>` exposing `configure(parser)` (its options)
and `run(args) -> int`. Modules not written yet are skipped. Every benchmark gets
`--database-url`; the database is that, else `$DATABASE_URL`, else `.run/endpoints.env`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
from types import ModuleType
from typing import Any

BENCHMARKS = (
    *("store", "pipeline", "replay", "broker", "load", "poison", "cluster", "proofs"),
    "scale",
    "revisions",
)
_PACKAGE = "services.tools.bench"
NOT_IN_ALL = ("scale", "revisions")  # fills stores of millions of events: run it on purpose


def resolve_database_url(explicit: str | None = None) -> str:
    """The DSN to measure against: explicit, else $DATABASE_URL, else `.run/endpoints.env`."""
    from services.tools.bench.shared import from_environment

    return from_environment(
        explicit,
        "DATABASE_URL",
        "no database: pass --database-url, set DATABASE_URL, or start the stack (make up)",
    )


def available() -> dict[str, ModuleType]:
    """The benchmark modules present (with `configure` and `run`), in a fixed order."""
    found: dict[str, ModuleType] = {}
    for name in BENCHMARKS:
        module_name = f"{_PACKAGE}.{name}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        if callable(getattr(module, "configure", None)) and callable(getattr(module, "run", None)):
            found[name] = module
    return found


def _common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="PostgreSQL DSN (default: $DATABASE_URL, else .run/endpoints.env)",
    )


def _summary(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `bench` and its benchmarks to the `mandat` command line."""
    modules = available()
    bench = sub.add_parser(
        "bench",
        help="measure the event store, the pipeline, replay, the broker and latency under load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = bench.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    for name, module in modules.items():
        parser = kinds.add_parser(
            name,
            help=_summary(module),
            description=module.__doc__,
            conflict_handler="resolve",  # a module may define --database-url itself
        )
        _common_options(parser)
        module.configure(parser)
        parser.set_defaults(func=module.run)
    every = kinds.add_parser(
        "all",
        help="every benchmark in turn, with its defaults "
        f"({', '.join(m for m in modules if m not in NOT_IN_ALL)})",
    )
    _common_options(every)
    every.add_argument("--json", action="store_true", help="one JSON object, keyed by benchmark")
    every.set_defaults(func=_run_all)


def _defaults(module: ModuleType) -> argparse.Namespace:
    parser = argparse.ArgumentParser(conflict_handler="resolve")
    _common_options(parser)
    module.configure(parser)
    return parser.parse_args([])


def _run_all(args: argparse.Namespace) -> int:
    status, results = 0, {}
    for name, module in available().items():
        if name in NOT_IN_ALL:
            continue
        options = _defaults(module)
        options.database_url = args.database_url
        options.json = args.json
        if args.json:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                code = int(module.run(options))
            results[name] = _parsed(out.getvalue())
        else:
            print(f"== bench {name} ==")
            code = int(module.run(options))
            print()
        status = status or code
    if args.json:
        from services.tools.cli import print_json

        print_json(results)
    return status


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return {"output": text}
