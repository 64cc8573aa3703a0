"""The decision state a batch reads, loaded by key, and kept the fold of the store.

The rules read a few entries per input (see `services.domain.state`). A batch asks
for those its inputs name, then for what the loaded entries lead to (an affiliation's
organism, a parked input's queue...), until nothing new is asked: a handful of indexed
queries, whatever the size of the history. The state is written back in the transaction
that appends the batch, so it is always the fold of the events up to its position; events
appended without it (a store from before the state tables, a bulk load) are folded into it
by `fold_behind`, in chunks, before anything is decided on it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from services.adapters.eventstore.port import Store, Transaction
from services.domain.kernel.processing import Input, ServiceView, fold_stored, registry_of
from services.domain.kernel.statekinds import AFFILIATED, FOLD_VERSION, field_of, revision_demand
from services.domain.kernel.streams import REJECTIONS_STREAM, registry_stream
from services.domain.kernel.tasks import (
    OPEN,
    STEP_PEOPLE,
    TASK_KIND,
    TASKS,
    in_order,
    task_stream,
)
from services.domain.registry import REGISTRY_EVENT_TYPES
from services.domain.state import Demand, LoadedState, Row, Span

log = logging.getLogger(__name__)

FOLD_CHUNK = 20_000
"""Events folded into the state per step when it is behind the store."""


async def load(
    tx: Transaction,
    view_type: type[ServiceView],
    demand: Demand,
    state: LoadedState | None = None,
) -> LoadedState:
    """The entries `demand` names and all they lead to, with the versions of its streams
    (added to `state`, when given: what it asked already is not asked again)."""
    state = LoadedState() if state is None else state
    asked = state.demand
    todo = demand.minus(asked)
    while todo:
        rows, versions = await tx.load(todo)  # entries and versions: one round trip
        state.versions.update(versions)
        asked.add(todo)
        more = Demand()
        for row in rows:
            if row.key in state.rows.get(row.kind, {}):
                continue  # found twice (by key and by tag)
            state.add(row)
            view_type.more(row, more)
        todo = more.minus(asked)
    return state


async def load_batch(
    tx: Transaction, view_type: type[ServiceView], inputs: Sequence[Input]
) -> LoadedState:
    """What deciding `inputs` reads: what each names and, for a registry fact, where the
    decisions it may revise are: its person's subjects (an affiliation, revised at once),
    or whether anyone was ever affiliated to the organisms it concerns (revised in steps
    by a task, opened only then: `kernel.tasks`)."""
    demand = Demand(streams={REJECTIONS_STREAM})
    facts = []
    for message in inputs:
        view_type.demand_of(demand, message.event_type, message.payload)
        if message.event_type in REGISTRY_EVENT_TYPES:
            demand.stream(registry_stream(message.event_type, message.payload))
            demand.stream(task_stream(str(message.event_id)))  # the task it may open
            revision_demand(demand, message.event_type, message.payload)
            facts.append(message)
    state = await load(tx, view_type, demand)
    if not facts:
        return state
    before = registry_of(state)  # read only: the registry before the batch
    organisms: set[str] = set()
    for message in facts:
        # as the batch decides it, a fact concerns an organism it concerns on the registry
        # before the batch, or one an earlier declaration or conclusion of the batch names
        # (an affiliation moves no convention: it concerns its person only)
        kind, payload = message.event_type, message.payload
        organisms.update(before.organisms_concerned(kind, payload))
        named = field_of(payload, "organisme_id")
        if isinstance(named, str) and kind != "AffiliationEnregistree":
            organisms.add(named)
    if not organisms:
        return state
    first = {
        str(row.entry.tag): row for row in await tx.state_firsts(AFFILIATED, sorted(organisms))
    }
    spans = state.spans.setdefault(AFFILIATED, {})
    for organism in organisms:  # whether anyone was ever affiliated to it: its first person
        row = first.get(organism)
        spans[organism] = Span("", None if row is None else _people([row])[0])
        if row is not None:
            state.add(row)
    return state


def _people(rows: Sequence[Row]) -> list[str]:
    """The second members of pair entries (`pair_entry`): the people of an organism."""
    return [str(row.entry.doc[-1]) for row in rows if isinstance(row.entry.doc, list)]


async def load_step(
    tx: Transaction, view_type: type[ServiceView], limit: int = STEP_PEOPLE
) -> LoadedState | None:
    """What the next step of the oldest open revision task reads (None when no task is
    open): the next `limit` people of its organism in hand, loaded as a span, and all
    they lead to (their subjects, their registry, the task's stream)."""
    state = await load(tx, view_type, Demand(tags={TASKS: {OPEN}}))
    tasks = [TASK_KIND.decode(entry) for entry in state.rows.get(TASKS, {}).values()]
    if not tasks:
        return None
    task = in_order(tasks)[0]  # the one the processor's next step is of
    rows = await tx.state_span(AFFILIATED, task.organism, task.after, limit)
    people = _people(rows)
    through = people[-1] if len(people) == limit else None
    state.spans.setdefault(AFFILIATED, {})[task.organism] = Span(task.after, through)
    more = Demand(streams={task_stream(task.fact_id)})
    for row in rows:
        state.add(row)
        view_type.more(row, more)
    return await load(tx, view_type, more, state)


def _causation(metadata: Mapping[str, Any]) -> str | None:
    cause = metadata.get("causation_id")
    return cause if isinstance(cause, str) else None


async def fold_behind(
    tx: Transaction, view_type: type[ServiceView], limit: int = FOLD_CHUNK
) -> bool:
    """Fold into the state up to `limit` events it does not reflect yet; whether it is now
    the fold of the whole store (as this transaction sees it)."""
    at, same, version = await tx.state_anchor()
    head = tx.head_position
    if version != FOLD_VERSION:  # written by another version of the fold: fold it again
        if at > 0:
            log.warning(
                "decision state of fold version %d, not %d: refolding", version, FOLD_VERSION
            )
        await tx.reset_state()
        await tx.set_state_version(FOLD_VERSION)
        at, same = 0, True
    if at > head or not same:  # cut below what the state folded, or rewritten: fold again
        log.error(
            "decision state at %d is not the fold of this store (head %d): refolding", at, head
        )
        await tx.reset_state()
        at = 0
    if at == head:
        return True
    events = await tx.read_since(at, limit)
    demand = Demand()
    for event in events:
        view_type.demand_of(demand, event.event_type, event.payload, _causation(event.metadata))
    state = await load(tx, view_type, demand)
    state.folding = True
    view = view_type.from_state(state)
    for event in events:
        fold_stored(view, event)
    await tx.save_state(view.changes(state), events[-1].position)
    return events[-1].position >= head


async def catch_up(store: Store, view_type: type[ServiceView], *, from_zero: bool = False) -> int:
    """Bring the decision state up to the store's head, a chunk per transaction (each under
    the store's lock, so a running service waits for it and decides on the result); from
    position 0 when `from_zero` (the state is forgotten first). Returns the head."""
    if from_zero:
        async with store.transaction() as tx:
            await tx.reset_state()
    while True:
        async with store.transaction() as tx:
            done = await fold_behind(tx, view_type)
            head = tx.head_position
            if done:  # from here on, registry facts revise decisions (recorded once)
                await tx.start_revisions()
        if done:
            return head
