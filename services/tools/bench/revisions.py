"""One late registry fact that revises many decisions: how long until every revision is
published, and what the other inputs' latency is meanwhile (issue 13).

In a store schema, topics and a consumer group of its own (suffix `benchrev<hex>`, dropped
at the end unless `--keep`):

  fill        `bench scale`'s registry of the runs (organisms, conventions, 1,000 NIRs),
              then one more organism, OC-REV (a mutual), its collection convention CNV-REV
              for the inputs' caisse from 2017-01-01, and `--subjects` persons affiliated
              to it, each with a contribution from 2017-01-01 decided `EncaissementDelegue`
              under CNV-REV — recorded by the batch handler itself, so the store's decision
              state is kept as it goes (timed).
  start       `mandat collection run` as a process of its own, and one warm-up input.
  revise      CNV-REV is terminated with `effet_au` 2016-12-31: every one of those
              contributions loses its convention. From the termination's send to the last
              `EncaissementRevise` read back from the settlement topic; meanwhile
              contributions of the runs' NIRs (other organisms: unrelated to the fact) are
              paced at `--rate` for `--latency-seconds` (`bench load`'s driver), from each
              send to its decision read back: median, p99, max.

The issue's target: every revision published within 60 s, the unrelated inputs' p99 at most
500 ms meanwhile.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from services.adapters.eventstore.leases import RelayCheckpoints
from services.adapters.runtime.provision import provision_services
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.bench.pipeline import (
    CAISSE,
    Watcher,
    _cleanup,
    _producer,
    broker_benchmark,
    contribution,
    envelope,
    inputs,
    nir,
    publish,
    run_settings,
    until,
)
from services.tools.bench.scale import (
    KIND,
    RUN_NIRS,
    ServiceProcess,
    _latency,
    _warm_up,
    fill,
    rss_kib,
    template,
)
from services.tools.bench.shared import ensure_run_topics
from services.tools.options import Option

ORGANISM, CONVENTION = "OC-REV", "CNV-REV"
TARGET_SECONDS, TARGET_P99_MS = 60.0, 500.0
FEED_BATCH = 2_000  # inputs per store transaction while filling

OPTIONS = (
    Option("--subjects", 100_000, "contributions the late fact revises (default 100000)"),
    Option("--rate", 50.0, "unrelated inputs per second meanwhile (default 50)"),
    Option("--latency-seconds", 30.0, "how long the unrelated inputs are paced (default 30)"),
)


async def _fill_subjects(feeder: Feeder, subjects: int) -> None:
    """OC-REV, CNV-REV, and `subjects` persons affiliated to it with a contribution each."""
    feeder.message(
        "OrganismeDeclare",
        {"organisme_id": ORGANISM, "nom": "Mutuelle revisee", "forme_juridique": "MUTUELLE"},
    )
    feeder.message(
        "ConventionConclue",
        {
            "convention_id": CONVENTION,
            "organisme_id": ORGANISM,
            "objet": "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
            "caisses_de_base": [CAISSE],
            "effet_du": "2017-01-01",
            "effet_au": None,
        },
    )
    for i in range(subjects):
        number = nir(RUN_NIRS + i)  # apart from the runs' NIRs
        feeder.message(
            "AffiliationEnregistree",
            {"nir": number, "organisme_id": ORGANISM, "mode": "CHOIX", "effet_du": "2016-01-01"},
        )
        feeder.message(*contribution(i, "REV", number))
        if (i + 1) % (FEED_BATCH // 2) == 0:
            await feeder.flush()
    report = await feeder.flush()
    if report.rejected:
        raise RuntimeError(f"the fill was rejected: {report.rejected}")


async def measure(
    bootstrap: str,
    dsn: str,
    *,
    subjects: int,  # the defaults are the options' (OPTIONS, add_run_options)
    rate: float,
    latency_seconds: float,
    timeout: float,
    keep: bool,
) -> dict[str, Any]:
    if subjects < 1 or rate <= 0 or latency_seconds <= 0:
        raise ValueError("--subjects ≥ 1, --rate and --latency-seconds > 0")
    suffix = f"benchrev{secrets.token_hex(4)}"
    s = await provision_services(run_settings(bootstrap, dsn, suffix), (KIND.name,))
    names = list(s.all_topics())
    report: dict[str, Any] = {"suffix": suffix, "kept": keep, "subjects": subjects}
    try:
        await ensure_run_topics(bootstrap, names, s)
        started = time.perf_counter()
        await fill(s, dsn, await template(), size=0, nirs=RUN_NIRS)
        store = await prepare_store(dsn, s.collection_schema)
        try:
            await _fill_subjects(Feeder(store, KIND.service, s, seed=suffix), subjects)
            report["stored_events"] = head = await store.head()
        finally:
            await store.pool.close()
        conn = await asyncpg.connect(dsn)
        try:  # published long ago: the relay starts at the head
            await RelayCheckpoints(s.collection_schema).save(conn, KIND.name, head)
        finally:
            await conn.close()
        report["fill_seconds"] = round(time.perf_counter() - started, 1)
        warm = inputs(KIND, 1, RUN_NIRS, "warm")
        producer = _producer(bootstrap, linger_ms=5)
        await producer.start()
        try:
            with tempfile.TemporaryDirectory(prefix="mandat-rev-") as workdir:
                async with Watcher(
                    bootstrap, KIND.output_topic(s), KIND.final_types, KIND.name
                ) as w:
                    w.expect(warm)
                    with ServiceProcess(s, Path(workdir)) as service:
                        report["ready_seconds"] = round(await service.ready(timeout), 3)
                        await _warm_up(producer, s, warm, w, timeout)
                        report["rss_ready_kib"] = rss_kib(service.pid)["rss_kib"]
                        report |= await _revise(
                            producer, s, w, subjects, rate, latency_seconds, timeout
                        )
                        report["peak_rss_kib"] = rss_kib(service.pid)["peak_rss_kib"]
        finally:
            await producer.stop()
    finally:
        if not keep:
            await _cleanup(bootstrap, dsn, [s.collection_schema, s.benefits_schema], names)
    report["all_decided"] = report.get("revisions") == subjects and (
        report["unrelated"]["decided"] == report["unrelated"]["sent"]
    )
    report["met"] = bool(
        report.get("revisions_seconds") is not None
        and report["revisions_seconds"] <= TARGET_SECONDS
        and (report["unrelated"]["p99_ms"] or 0) <= TARGET_P99_MS
    )
    return report


async def _revise(
    producer: Any,
    s: Any,
    w: Watcher,
    subjects: int,
    rate: float,
    seconds: float,
    timeout: float,
) -> dict[str, Any]:
    """Send the termination and pace the unrelated inputs at once; wait for every revision."""
    termination = ("ConventionResiliee", {"convention_id": CONVENTION, "effet_au": "2016-12-31"})
    value = envelope(*termination, str(uuid.uuid4()))
    sent = time.monotonic()
    await publish(producer, s.topic_referentiel, [(CONVENTION.encode(), value)])
    latency = asyncio.create_task(_latency(s, RUN_NIRS, rate, seconds, timeout))

    def revised() -> int:
        return w.types["EncaissementRevise"]

    try:  # polled every 50 ms: the figure is that close
        await until(lambda: revised() >= subjects, timeout, "every revision", 0.05)
        revisions_seconds: float | None = round(time.monotonic() - sent, 2)
    except TimeoutError:
        revisions_seconds = None
    unrelated = await latency
    return {
        "revisions": revised(),
        "revisions_seconds": revisions_seconds,
        "unrelated": unrelated,
    }


def format_report(r: dict[str, Any]) -> str:
    u = r["unrelated"]
    seconds = r["revisions_seconds"]
    took = f"{seconds:.1f} s" if seconds is not None else "not all within the timeout"
    return "\n".join(
        [
            f"revisions — one ConventionResiliee revising {r['subjects']:,} contributions "
            f"(store of {r['stored_events']:,} events, filled in {r['fill_seconds']} s; "
            f"ready in {r['ready_seconds']} s; service RSS {r['rss_ready_kib'] // 1024} MiB at "
            f"ready, peak {r['peak_rss_kib'] // 1024} MiB)",
            f"  every revision published: {r['revisions']:,} in {took} "
            f"(target ≤ {TARGET_SECONDS:.0f} s)",
            f"  unrelated inputs meanwhile ({u['achieved_rate']}/s of {u['target_rate']}/s, "
            f"{u['decided']}/{u['sent']} decided): median {u['median_ms']} ms, "
            f"p99 {u['p99_ms']} ms, max {u['max_ms']} ms (target p99 ≤ {TARGET_P99_MS:.0f} ms)",
            f"  target {'met' if r['met'] else 'NOT met'}; schema and topics of {r['suffix']}: "
            f"{'kept' if r['kept'] else 'dropped'}",
        ]
    )


configure, run = broker_benchmark(
    OPTIONS, measure, format_report, keep="leave the store schema and topics behind"
)
