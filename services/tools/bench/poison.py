"""Time to isolate a poison record: a batch holding one record whose processing fails every
time, next to the same batch without it, on a store of --events rows.

In a fresh schema (dropped at the end unless --keep), the collection service's real write
path (`BatchHandler`, in-memory records) records affiliations and contributions until the
store holds --events. Then three batches of --batch new contributions each:

  clean          every record valid: the baseline;
  rules bug      one record makes the rules raise (a bug its content triggers): the batch is
                 retried once without it, the record rejected with processing_error;
  commit refused one record makes the database refuse the batch at commit (a value jsonb
                 cannot hold): the batch fails, is retried one record at a time, and the
                 record that fails alone twice is rejected with processing_error.

The two bugs are injected by wrapping the real processor (nothing else differs). Each
failure makes the handler fold the store again (the view may hold the failed batch), which
is why the time grows with the store until decision state moves into PostgreSQL.
"""

from __future__ import annotations

import argparse
import secrets
import time
from typing import Any, cast

from services.adapters.runtime.handler import PROCESSING_ERROR
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION
from services.domain.collection.processor import CollectionProcessor
from services.domain.kernel.processing import Input, Outcome, Processor
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.bench.shared import drop_schemas, run_and_print
from services.tools.options import JSON, Option, add_options

OPTIONS = (
    Option("--events", 200_000, "stored events before the measured batches (default 200000)"),
    Option("--batch", 500, "records per measured batch (default 500, the consumer's)"),
    Option("--keep", False, "keep the schema"),
    JSON,
)


def run(args: argparse.Namespace) -> int:
    from services.tools.bench.cli import resolve_database_url

    dsn = resolve_database_url(getattr(args, "database_url", None))
    run_and_print(
        measure(
            dsn,
            events=args.events,
            batch=args.batch,
            keep=args.keep,
        ),
        args.json,
        format_report,
    )
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    add_options(parser, OPTIONS)


class _Buggy(CollectionProcessor):
    """The real processor with two bugs that a record's cotisation_id triggers."""

    def process(self, message: Input) -> Outcome:
        cotisation_id = str(getattr(message.payload, "cotisation_id", ""))
        if cotisation_id.startswith("BOOM-RULES"):
            raise ZeroDivisionError("a bug in the rules")
        outcome = super().process(message)
        if cotisation_id.startswith("BOOM-COMMIT") and outcome.events:
            outcome.events[0][2].payload["cotisation_id"] += "\x00"  # jsonb refuses NUL
        return outcome


def _nir(n: int) -> str:
    from contracts.nir import make_nir

    return make_nir(f"1{(n % 99) + 1:02d}0175{n % 1_000_000:06d}"[:13])


def _contribution(cotisation_id: str, n: int) -> dict[str, Any]:
    return {
        "cotisation_id": cotisation_id,
        "nir": _nir(n),
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": "PL-IDF",
        "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
        "montant_cents": 195_000,
        "exigible_le": "2017-02-05",
    }


async def measure(
    dsn: str, *, events: int = 200_000, batch: int = 500, keep: bool = False
) -> dict[str, Any]:
    schema = f"bench_poison_{secrets.token_hex(4)}"
    settings = ServiceSettings(DATABASE_URL=dsn)
    store = await prepare_store(dsn, schema)
    report: dict[str, Any] = {"schema": schema, "batch": batch}
    try:
        feeder = Feeder(store, COLLECTION, settings)
        feeder.handler.new_processor = lambda view=None: cast(Processor, _Buggy(view))
        await feeder.handler.catch_up()
        started = time.perf_counter()
        feeder.message(
            "OrganismeDeclare", {"organisme_id": "OC-B", "nom": "B", "forme_juridique": "MUTUELLE"}
        )
        n = 0
        while feeder.handler.position < events:
            for _ in range(2500):  # an affiliation and a contribution each: ~3 rows
                feeder.message(
                    "AffiliationEnregistree",
                    {
                        "nir": _nir(n),
                        "organisme_id": "OC-B",
                        "mode": "CHOIX",
                        "effet_du": "2016-01-01",
                    },
                )
                feeder.message("CotisationDue", _contribution(f"COT-B{n}", n))
                n += 1
            await feeder.flush()
        report["store_events"] = feeder.handler.position
        report["fill_seconds"] = round(time.perf_counter() - started, 1)
        phases: dict[str, Any] = {}
        for name, poison in (
            ("clean", None),
            ("rules bug", "BOOM-RULES"),
            ("commit refused", "BOOM-COMMIT"),
        ):
            for i in range(batch):
                cotisation_id = f"{poison}-{n}" if poison and i == batch // 2 else f"COT-B{n}"
                feeder.message("CotisationDue", _contribution(cotisation_id, n))
                n += 1
            began = time.perf_counter()
            result = await feeder.flush()
            phases[name] = {
                "seconds": round(time.perf_counter() - began, 3),
                "attempts": result.attempts,
                "decided": sum(result.inputs.values()),
                "rejected_processing_error": result.rejected.get(PROCESSING_ERROR, 0),
            }
        clean = phases["clean"]["seconds"]
        for phase in phases.values():
            phase["x_clean"] = round(phase["seconds"] / clean, 1) if clean else None
        refold = time.perf_counter()
        await feeder.handler.catch_up()  # the state is current: a check, no fold
        report["catch_up_seconds"] = round(time.perf_counter() - refold, 3)
        report["phases"] = phases
    finally:
        await store.pool.close()
        if not keep:
            await drop_schemas(dsn, schema)
    return report


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"poison record isolation — store of {report['store_events']:,} events "
        f"(filled in {report['fill_seconds']} s), batches of {report['batch']}; "
        f"catching up at start: {report['catch_up_seconds']} s",
        f"{'batch':<16}{'seconds':>10}{'× clean':>9}{'attempts':>10}{'decided':>9}{'isolated':>10}",
    ]
    for name, p in report["phases"].items():
        lines.append(
            f"{name:<16}{p['seconds']:>10.3f}{p['x_clean'] or 0:>9.1f}"
            f"{p['attempts']:>10}{p['decided']:>9}{p['rejected_processing_error']:>10}"
        )
    return "\n".join(lines)
