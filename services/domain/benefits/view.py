"""The benefits service's fold of its store: its own registry view, the benefits recorded,
and the inputs still waiting for a decision."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from contracts.topics import BENEFITS_REVISION
from services.domain.benefits.revisions import recorded_outcome
from services.domain.kernel.parking import waits_for_affiliation
from services.domain.kernel.processing import ServiceView
from services.domain.kernel.subjects import Subject, SubjectState, subject_kind
from services.domain.state import Kind

BENEFIT_DECISIONS = frozenset({"VersementDelegue", "VersementDirect", "PrestationNonTraitee"})


BENEFIT = "benefit"


def benefit_stream(prestation_id: str) -> str:
    return f"prestation-{prestation_id}"


@dataclass(slots=True)
class BenefitsView(ServiceView):
    """Everything the benefits processor reads, folded from the store in order."""

    OWN_KINDS: ClassVar[Mapping[str, Kind[Any]]] = {
        "benefits": subject_kind(BENEFIT, SubjectState),
    }

    benefits: MutableMapping[str, SubjectState] = field(default_factory=dict)

    SUBJECT = Subject("prestation_id", BENEFIT, "benefits", benefit_stream)

    def fold(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        if event_type == "PrestationEspecesDue":
            correlation = str(metadata.get("correlation_id") or event_id)
            self.benefits[payload["prestation_id"]] = SubjectState(payload, correlation)
            self.subjects.add(payload["nir"], payload["prestation_id"])
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            event = metadata["causation_id"]
            nir = self.parking.undecided[event].payload["nir"]
            self.parking.park(event, waits_for_affiliation(nir), payload["motif"], self.position)
        elif event_type in BENEFIT_DECISIONS:
            self.parking.settle(metadata["causation_id"])
            self._decided(event_id, event_type, payload)
        elif event_type == BENEFITS_REVISION:  # caused by a registry fact: settles no input
            self._decided(event_id, event_type, payload)

    def _decided(self, event_id: str, event_type: str, payload: dict[str, Any]) -> None:
        self.benefits[payload["prestation_id"]].stands(
            event_id, recorded_outcome(event_type, payload), payload, self.position
        )
