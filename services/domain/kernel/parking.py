"""Inputs recorded but not decided yet, and those parked until a fact arrives.

No order between topics is assumed: an input that cannot be decided yet (its affiliation or
its contribution unknown) gets a `DecisionEnAttente` and waits here, indexed by what it
waits for, until the fact arrives and its ordinary decision is taken.
"""

from __future__ import annotations

from collections.abc import Iterator
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

    def correlation_id(self, event_id: str) -> str:
        return str(self.metadata.get("correlation_id") or event_id)


@dataclass(slots=True)
class Parking:
    """Undecided inputs by event id; parked ones also by the key they wait for."""

    undecided: dict[str, Waiting] = field(default_factory=dict)
    by_key: dict[str, list[str]] = field(default_factory=dict)

    def record(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        self.undecided[event_id] = Waiting(event_type, payload, metadata)

    def park(self, event_id: str, waits_for: str, motif: str) -> None:
        self.undecided[event_id] = replace(
            self.undecided[event_id], waits_for=waits_for, motif=motif
        )
        self.by_key.setdefault(waits_for, []).append(event_id)

    def settle(self, event_id: str) -> Waiting:
        waiting = self.undecided.pop(event_id)
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
