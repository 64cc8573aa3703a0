"""Inputs recorded but not decided yet, and those parked until a fact arrives.

No order between topics is assumed: an input that cannot be decided yet (its affiliation or
its contribution unknown) gets a `DecisionEnAttente` and waits here, indexed by what it
waits for, until the fact arrives and its ordinary decision is taken.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field, replace
from typing import Any


def waits_for_affiliation(nir: str) -> str:
    """The key of inputs waiting for an affiliation of `nir` (both services park on it)."""
    return f"nir/{nir}"


@dataclass(frozen=True, slots=True)
class Waiting:
    """An input recorded and not decided yet: enough to decide it later."""

    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    waits_for: str = ""  # the key it is parked under, once parked
    motif: str = ""
    at: int = 0  # store position of its DecisionEnAttente: its place in its queue
    since: int = 0  # `at` of the first input of its queue (its queue's place among queues)

    def correlation_id(self, event_id: str) -> str:
        return str(self.metadata.get("correlation_id") or event_id)


@dataclass(slots=True)
class Parking:
    """Undecided inputs by event id; parked ones also by the key they wait for.

    Queues are kept in the order they were opened, and each in the order its inputs were
    parked (`since`, `at`): what a fact unblocks is decided in that order, which is the
    same whether the parking was folded from the whole history or loaded by key from the
    state tables for one batch (both maps are then `LoadedMap`s)."""

    undecided: MutableMapping[str, Waiting] = field(default_factory=dict)
    by_key: MutableMapping[str, list[str]] = field(default_factory=dict)

    def record(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        self.undecided[event_id] = Waiting(event_type, payload, metadata)

    def park(self, event_id: str, waits_for: str, motif: str, at: int) -> None:
        """Park an undecided input under `waits_for`; `at` is the store position of the
        DecisionEnAttente that parks it."""
        queue = self.by_key.get(waits_for)
        since = self.undecided[queue[0]].since if queue else at
        self.undecided[event_id] = replace(
            self.undecided[event_id], waits_for=waits_for, motif=motif, at=at, since=since
        )
        if queue:
            queue.append(event_id)
        else:
            self.by_key[waits_for] = [event_id]

    def settle(self, event_id: str) -> Waiting:
        waiting = self.undecided[event_id]
        del self.undecided[event_id]
        if waiting.waits_for:
            queue = self.by_key[waiting.waits_for]
            queue.remove(event_id)
            if not queue:
                del self.by_key[waiting.waits_for]
        return waiting

    def waiting_on(self, key: str) -> list[str]:
        """Event ids parked under `key`, in the order they were parked (a copy)."""
        return list(self.by_key.get(key, ()))

    def unblocked_by(self, event_type: str, payload: Any) -> Iterator[tuple[str, Waiting]]:
        """The inputs a new registry fact may unblock, in the order they were parked: an
        affiliation, those waiting for that NIR; an organism (an affiliation may point to
        it), every one waiting for an affiliation."""
        if event_type == "AffiliationEnregistree":
            keys = [waits_for_affiliation(payload.nir)]
        elif event_type == "OrganismeDeclare":
            keys = [k for k in self.by_key if k.startswith(waits_for_affiliation(""))]
        else:
            return
        for key in keys:
            for event_id in self.waiting_on(key):
                yield event_id, self.undecided[event_id]

    def parked(self) -> dict[str, Waiting]:
        """Every parked input by event id."""
        return {k: w for k, w in self.undecided.items() if w.waits_for}
