"""`mandat run`: feed a scenario to both services as an upstream agency would, wait for every
decision and rejection, and summarise what was decided.

Publication is in five phases, so that the outcome depends on the seed only (never on how
Kafka interleaves topics): 1 the registry, then a wait until both services' consumer groups
have committed it; 2 contributions, payments, unpaid notices and benefits (with the
breaches and duplicates), then a wait until each got a decision, a rejection or a
`DecisionEnAttente`; 3 the affiliations published late, then a wait until every input got its
final decision (or its rejection) and the registry is recorded; 4 registry facts recorded
late, which revise decisions, then a wait until they are recorded; 5 a few inputs after
them, then a wait until they are decided and every output published before is read (the
revisions: they settle no input, so nothing else says when they are all out). Decisions
and rejections are read from the end offsets of the output topics taken before feeding,
and matched to this run's inputs by causation id (decisions) or by source topic, partition
and offset (rejections).

The parts live in sibling modules: `progress` (the progress bar), `player` (the Kafka side:
feeding and waiting), `collector` (matching outputs to inputs), `summarise` (the figures),
`summary` (the `Summary` and its JSON) and `render` (its text).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import TextIO

from services.adapters.kafka.acls import provision_kafka
from services.adapters.runtime.provision import provision_services
from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog
from services.tools.demo.collector import PENDING, Collector
from services.tools.demo.player import Player
from services.tools.demo.progress import Progress
from services.tools.demo.render import TITLES, euros
from services.tools.demo.scenario import generate, new_run_tag
from services.tools.demo.summarise import AMOUNT_FIELDS, summarise
from services.tools.demo.summary import Summary

__all__ = [
    "AMOUNT_FIELDS",
    "PENDING",
    "TITLES",
    "Collector",
    "Progress",
    "Summary",
    "default_timeout",
    "euros",
    "play",
    "summarise",
]


def default_timeout(size: int) -> float:
    """Seconds to wait for the decisions once fed: generous for this machine's pace."""
    return 60.0 + size / 100


class _Quiet(logging.Filter):
    """Keeps in-process services' per-message access logs and a broker's transient start-up
    complaint out of the demo's output (`mandat -v run` shows everything)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("faststream"):
            return record.levelno >= logging.WARNING
        return "GroupCoordinatorNotAvailable" not in record.getMessage()


def _quiet_services() -> None:
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    quiet = _Quiet()
    for name in ("faststream.access.kafka", "aiokafka.consumer.group_coordinator"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Quiet) for f in logger.filters):
            logger.addFilter(quiet)


async def play(
    size: int,
    seed: int,
    settings: ServiceSettings,
    *,
    start_services: bool,
    run_tag: str | None = None,
    timeout: float | None = None,
    out: TextIO | None = sys.stdout,
) -> Summary:
    """Play the scenario of (size, seed) through the services and summarise the outcome.

    `start_services`: run both services in this event loop for the time of the run (else
    they run elsewhere, on the same settings). `timeout`: seconds from the start of feeding
    to the last decision (default: `default_timeout(size)`). Progress goes to `out`.
    """
    progress = Progress(out)
    scenario = generate(size, seed, run_tag or new_run_tag())
    progress.say(
        f"run {scenario.run_tag}: {len(scenario.messages):,} messages (size {size:,}, "
        f"seed {seed}) to {settings.kafka_bootstrap_servers}"
    )
    async with contextlib.AsyncExitStack() as stack:
        if start_services:
            from services.adapters.runtime.apps import build_runtime

            _quiet_services()
            started = time.monotonic()
            settings = await provision_services(settings)  # as the owner, first
            await provision_kafka(settings)  # topics and ACLs, as the Kafka admin
            for service in catalog.SERVICES:
                await stack.enter_async_context(build_runtime(service, settings).running())
            progress.say(
                f"services collection and benefits started in-process in "
                f"{time.monotonic() - started:.1f} s"
            )
        begin = time.monotonic()
        deadline = begin + (timeout if timeout is not None else default_timeout(size))
        async with Player(scenario, settings, progress, deadline) as player:
            notes = await _phases(player, settings)
            elapsed = time.monotonic() - begin
            return summarise(scenario, player.collector, elapsed, notes)
    raise AssertionError("unreachable")  # pragma: no cover


async def _phases(player: Player, settings: ServiceSettings) -> list[str]:
    """Feed the three phases, each once the previous one is through; notes on what failed."""
    notes: list[str] = []
    await player.feed(1, "feeding the registry")
    if not await player.wait_registry():
        groups = f"{settings.collection_group}, {settings.benefits_group}"
        notes.append(
            f"the registry was not recorded by the services' consumer groups "
            f"({groups}) in time: are the services running? Contributions "
            f"and benefits were not published"
        )
        return notes
    await player.feed(2, "feeding inputs")
    if not await player.wait_outcomes(2, parked_counts=True, label="deciding"):
        notes.append("timed out before every input was decided or parked")
    await player.feed(3, "feeding late affiliations")
    await player.wait_outcomes(3, parked_counts=False, label="deciding parked ones")
    if not await player.wait_registry("late affiliations recorded"):
        notes.append("the late affiliations were not recorded in time")
        return notes
    await player.feed(4, "feeding late registry facts")
    if not await player.wait_registry("late facts recorded"):
        notes.append("the late registry facts were not recorded in time: revisions may be missing")
        return notes
    await player.feed(5, "feeding inputs after the revisions")
    if not await player.wait_outcomes(5, parked_counts=False, label="deciding them"):
        return notes  # what is missing is listed
    if not await player.drain():
        notes.append("timed out reading the outputs: revisions may be missing")
    return notes
