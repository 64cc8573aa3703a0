"""The decision value both services' pure rules return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Decision:
    """A decision to record: its type and its wire payload (JSON-ready)."""

    event_type: str
    payload: dict[str, Any]

    @property
    def parked(self) -> bool:
        return self.event_type == "DecisionEnAttente"
