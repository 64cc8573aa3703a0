"""The benefits service's fold of its store: its own registry view, the benefits recorded,
and the inputs still waiting for a decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.domain.kernel.parking import waits_for_affiliation
from services.domain.kernel.processing import ServiceView

BENEFIT_DECISIONS = frozenset({"VersementDelegue", "VersementDirect", "PrestationNonTraitee"})


@dataclass(slots=True)
class BenefitsView(ServiceView):
    """Everything the benefits processor reads, folded from the store in order."""

    benefits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def fold(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        if event_type == "PrestationEspecesDue":
            self.benefits[payload["prestation_id"]] = payload
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            event = metadata["causation_id"]
            nir = self.parking.undecided[event].payload["nir"]
            self.parking.park(event, waits_for_affiliation(nir), payload["motif"])
        elif event_type in BENEFIT_DECISIONS:
            self.parking.settle(metadata["causation_id"])
