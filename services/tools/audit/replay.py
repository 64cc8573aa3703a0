"""Replay: re-run the pure rules over the recorded inputs, in store order, and compare.

A fresh processor folds the store exactly as the live service did: for each recorded input
it rebuilds the contract's `Input`, processes it (the registry it sees is everything
recorded before), and the recomputed decisions are compared with those recorded after the
input. Rejections are folded as recorded. `verify` uses the rule set each decision recorded
(`regles_version`); `what-if` applies one rule set (the current one) to the whole history
and reports the decisions it would take differently.

The comparison is a pure fold (`Replayer.step`): the async part only reads the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from uuid import UUID

from services.adapters.eventstore import EventStore, StoredEvent
from services.domain.catalog import HEAD_MODELS, ServiceDescription
from services.domain.kernel.processing import Input, decision_id, fold_stored
from services.tools.audit.compare import (
    FieldDiff,
    decision_only,
    diff,
    emitted_content,
    recorded_content,
    same,
)
from services.tools.audit.reading import Selection, Step, read_steps
from services.tools.audit.report import as_report

Mode = Literal["verify", "what-if"]
Kind = Literal["altered", "recorded_only", "replayed_only", "refused", "unknown_rules"]


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A recorded event the rules do not reproduce (verify) or would change (what-if)."""

    kind: Kind
    position: int | None  # of the recorded event (None: the rules emit one more)
    input_position: int  # of the input whose processing emits it
    event_type: str  # recorded, else recomputed
    replayed_type: str | None
    diffs: tuple[FieldDiff, ...] = ()
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return as_report(self, leave_out=("diffs",), diff=[d.as_dict() for d in self.diffs])


@dataclass(slots=True)
class ReplaySummary:
    """What one replay of one service's store found."""

    service: str
    mode: Mode
    events_read: int = 0
    inputs: int = 0
    rejections: int = 0
    decisions_checked: int = 0
    matched: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    last_position: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return as_report(
            self,
            mismatches=[m.as_dict() for m in self.mismatches],
            events_per_second=round(self.events_per_second, 1),
            ok=self.ok,
        )


class Replayer:
    """Folds steps into a fresh processor and compares what it emits with the record."""

    def __init__(
        self,
        service: ServiceDescription,
        *,
        mode: Mode = "verify",
        rules: Any = None,
        selection: Selection | None = None,
    ) -> None:
        self.service = service
        self.mode = mode
        self.rules = rules if rules is not None else service.current
        self.processor = service.new_processor(self.rules)
        self.selection = selection or Selection()
        self.summary = ReplaySummary(service.name, mode)

    def step(self, step: Step) -> None:
        """Replay one recorded input (or fold one rejection) and compare its outcome."""
        s = self.summary
        s.events_read += 1 + len(step.decisions)
        s.last_position = step.last_position
        head = step.head
        if step.rejection or head.event_type not in HEAD_MODELS:
            s.rejections += step.rejection
            self._fold_recorded(step)  # not an input: nothing to recompute
            if not step.rejection:
                self._report(
                    Mismatch(
                        "recorded_only",
                        head.position,
                        head.position,
                        head.event_type,
                        None,
                        note="no input before it",
                    ),
                    head,
                    decision=False,
                )
            return
        s.inputs += 1
        self.selection.note_input(head)
        problem = self._choose_rules(step)
        try:
            model = HEAD_MODELS[head.event_type].model_validate(head.payload)
            outcome = self.processor.process(
                Input(head.event_id, head.event_type, model, head.metadata)
            )
            error = str(outcome.refused or "") or (
                "a duplicate of an earlier input" if outcome.duplicate or not outcome.events else ""
            )
        except Exception as exc:  # a damaged record is reported, not fatal
            error = f"{type(exc).__name__}: {exc}"
        if error:
            why = " ".join(error.split())
            self._fold_recorded(step)  # keep the view equal to the record, and go on
            self._report(
                Mismatch(
                    "refused",
                    head.position,
                    head.position,
                    head.event_type,
                    None,
                    note=f"the input is refused on replay: {why}",
                ),
                head,
                decision=False,
            )
            return
        self.processor.view.position = step.last_position
        replayed = [emitted_content(e) for e in outcome.events]
        recorded = [recorded_content(e) for e in (head, *step.decisions)]
        if self.mode == "verify" and same(recorded, replayed):  # the common case, at once
            self._count_matches(step.decisions)
            return
        self._compare(step, recorded, replayed, problem)

    def _choose_rules(self, step: Step) -> str:
        """verify: the rule set the recorded decisions name; returns a problem, if any."""
        if self.mode != "verify" or not step.decisions:
            return ""
        versions = {  # (a revision task's own events name no rule set)
            d.payload.get("regles_version") for d in step.decisions if "regles_version" in d.payload
        }
        if not versions:
            return ""
        version = next(iter(versions)) if len(versions) == 1 else None
        rules = self.service.rule_sets.get(str(version))
        if rules is None:
            self.processor.rules = self.service.current
            named = ", ".join(sorted(str(v) for v in versions))
            return f"no registered rule set for regles_version {named}"
        self.processor.rules = rules
        return ""

    def _compare(
        self,
        step: Step,
        recorded: list[dict[str, Any]],
        replayed: list[dict[str, Any]],
        problem: str,
    ) -> None:
        head = step.head
        if not same(recorded[0], replayed[0]):
            self._report(
                Mismatch(
                    "altered",
                    head.position,
                    head.position,
                    head.event_type,
                    replayed[0]["event_type"],
                    tuple(diff(recorded[0], replayed[0])),
                    note="the input as recorded",
                ),
                head,
                decision=False,
            )
        events = (head, *step.decisions)
        for index in range(1, max(len(recorded), len(replayed))):
            mine = replayed[index] if index < len(replayed) else None
            if index >= len(recorded):
                assert mine is not None
                self._report(
                    Mismatch(
                        "replayed_only",
                        None,
                        head.position,
                        mine["event_type"],
                        mine["event_type"],
                        note="the rules emit a decision the record does not hold",
                    ),
                    head,
                )
                continue
            theirs, event = recorded[index], events[index]
            if mine is None:
                self._report(
                    Mismatch(
                        "recorded_only",
                        event.position,
                        head.position,
                        event.event_type,
                        None,
                        note="the rules do not emit this recorded decision",
                    ),
                    event,
                )
                continue
            left, right = (
                (theirs, mine)
                if self.mode == "verify"
                else (decision_only(theirs), decision_only(mine))
            )
            if same(left, right):
                self._count_matches((event,))
                continue
            kind: Kind = "unknown_rules" if problem else "altered"
            self._report(
                Mismatch(
                    kind,
                    event.position,
                    head.position,
                    event.event_type,
                    mine["event_type"],
                    tuple(diff(left, right)),
                    problem,
                ),
                event,
            )

    def _count_matches(self, decisions: tuple[StoredEvent, ...]) -> None:
        for event in decisions:
            if self.selection.covers(event):
                self.summary.decisions_checked += 1
                self.summary.matched += 1

    def _report(self, mismatch: Mismatch, event: StoredEvent, *, decision: bool = True) -> None:
        if self.selection.covers(event):
            self.summary.decisions_checked += decision
            self.summary.mismatches.append(mismatch)

    def _fold_recorded(self, step: Step) -> None:
        view = self.processor.view
        for event in (step.head, *step.decisions):
            try:
                fold_stored(view, event)
            except Exception as exc:  # a damaged record is reported
                self._report(
                    Mismatch(
                        "refused",
                        event.position,
                        step.head.position,
                        event.event_type,
                        None,
                        note=f"cannot fold it: {type(exc).__name__}: {exc}",
                    ),
                    event,
                    decision=False,
                )
                view.position = event.position


async def split_ids(store: EventStore) -> Callable[[UUID, int, str], UUID] | None:
    """How a shard copied from a store of one sequence names its decisions: by the ids
    that store gave them where their rank in their input's outcome differs here (`split_ids`,
    written by `mandat store split`); None for any other store."""
    pool = getattr(store, "pool", None)  # (a store in memory, in tests, has none)
    if pool is None or await pool.fetchval("SELECT to_regclass('split_ids')") is None:
        return None
    rows = await pool.fetch("SELECT trigger, rank, event_id FROM split_ids")
    if not rows:
        return None
    kept = {(str(r["trigger"]), r["rank"]): UUID(str(r["event_id"])) for r in rows}

    def ids(trigger: UUID, n: int, service: str) -> UUID:
        return kept.get((str(trigger), n)) or decision_id(trigger, n, service)

    return ids


async def replay(
    store: EventStore,
    service: ServiceDescription,
    *,
    mode: Mode = "verify",
    rules: Any = None,
    selection: Selection | None = None,
    batch: int = 5000,
    ids: Callable[[UUID, int, str], UUID] | None = None,
) -> ReplaySummary:
    """Replay the whole store of `service` (up to the selection's last position); `ids`,
    when given, names the decisions instead of `decision_id` (by default: the ids a shard
    of a store split in shards keeps from that store, else `decision_id`)."""
    replayer = Replayer(service, mode=mode, rules=rules, selection=selection)
    ids = ids or await split_ids(store)
    if ids is not None:
        cast(Any, replayer.processor).ids = ids
    # a store recorded before revisions existed is not revised by its replay
    starts = await store.revisions_from()
    replayer.processor.starting(starts)
    until = replayer.selection.to_position
    started = time.perf_counter()
    async for step in read_steps(store, until=until, batch=batch):
        replayer.step(step)
    replayer.summary.seconds = time.perf_counter() - started
    return replayer.summary
