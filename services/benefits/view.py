"""The benefits service's fold of its store: its own registry view, the benefits recorded,
and the inputs still waiting for a decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.registry import REGISTRY_EVENT_TYPES, Registry
from services.runtime.parking import Parking, waits_for_affiliation
from services.runtime.processing import VersionedView

BENEFIT_DECISIONS = frozenset({"VersementDelegue", "VersementDirect", "PrestationNonTraitee"})


@dataclass(slots=True)
class BenefitsView(VersionedView):
    """Everything the benefits processor reads, folded from the store in order."""

    registry: Registry = field(default_factory=Registry)
    benefits: dict[str, dict[str, Any]] = field(default_factory=dict)
    parking: Parking = field(default_factory=Parking)

    def __post_init__(self) -> None:
        VersionedView.__init__(self)

    def apply(
        self,
        stream_id: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        """Fold one event (input, registry fact, decision or rejection)."""
        self.bump(stream_id)
        if event_type in REGISTRY_EVENT_TYPES:
            self.registry.apply(event_type, payload)
        elif event_type == "PrestationEspecesDue":
            self.benefits[payload["prestation_id"]] = payload
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            event = metadata["causation_id"]
            nir = self.parking.undecided[event].payload["nir"]
            self.parking.park(event, waits_for_affiliation(nir), payload["motif"])
        elif event_type in BENEFIT_DECISIONS:
            self.parking.settle(metadata["causation_id"])
