"""The benefits service's fold of its store: its own registry view, the benefits recorded,
and the inputs still waiting for a decision."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.domain.kernel.parking import waits_for_affiliation
from services.domain.kernel.processing import ServiceView
from services.domain.kernel.state import Demand, Entry, Kind
from services.domain.kernel.statekinds import field_of

BENEFIT_DECISIONS = frozenset({"VersementDelegue", "VersementDirect", "PrestationNonTraitee"})


BENEFIT = "benefit"


def benefit_stream(prestation_id: str) -> str:
    return f"prestation-{prestation_id}"


def _payload(entry: Entry) -> dict[str, Any]:
    assert isinstance(entry.doc, dict)
    return entry.doc


@dataclass(slots=True)
class BenefitsView(ServiceView):
    """Everything the benefits processor reads, folded from the store in order."""

    OWN_KINDS: ClassVar[Mapping[str, Kind[Any]]] = {
        "benefits": Kind(BENEFIT, Entry, _payload),
    }

    benefits: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def own_demand(cls, demand: Demand, event_type: str, payload: Any) -> None:
        prestation_id = field_of(payload, "prestation_id")
        if isinstance(prestation_id, str):
            demand.key(BENEFIT, prestation_id)
            demand.stream(benefit_stream(prestation_id))

    def fold(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        if event_type == "PrestationEspecesDue":
            self.benefits[payload["prestation_id"]] = payload
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            event = metadata["causation_id"]
            nir = self.parking.undecided[event].payload["nir"]
            self.parking.park(event, waits_for_affiliation(nir), payload["motif"], self.position)
        elif event_type in BENEFIT_DECISIONS:
            self.parking.settle(metadata["causation_id"])
