"""The benefits service's fold of its store: its own registry view, the benefits recorded,
and the inputs still waiting for a decision."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from contracts.topics import BENEFITS_REVISION
from services.domain.benefits.revisions import outcome_of
from services.domain.kernel.parking import waits_for_affiliation
from services.domain.kernel.processing import ServiceView
from services.domain.kernel.statekinds import field_of
from services.domain.state import Demand, Entry, Kind

BENEFIT_DECISIONS = frozenset({"VersementDelegue", "VersementDirect", "PrestationNonTraitee"})


BENEFIT = "benefit"


def benefit_stream(prestation_id: str) -> str:
    return f"prestation-{prestation_id}"


@dataclass(slots=True)
class BenefitState:
    """A benefit as recorded: its input, and the outcome that stands (its decision's, or
    its latest revision's)."""

    due: dict[str, Any]
    correlation_id: str = ""  # of its PrestationEspecesDue: a revision of it carries it
    decision_id: str | None = None  # the decision or revision that stands
    outcome: dict[str, Any] | None = None  # its outcome when revisable (ResultatVersement)
    regles_version: str | None = None

    def stands(self, event_id: str, event_type: str, payload: dict[str, Any]) -> None:
        self.decision_id = event_id
        result = outcome_of(event_type, payload)
        self.outcome = None if result is None else result.model_dump(mode="json")
        self.regles_version = payload["regles_version"]


_BENEFIT_FIELDS = ("due", "correlation_id", "decision_id", "outcome", "regles_version")


def _benefit(b: BenefitState) -> Entry:
    return Entry({name: getattr(b, name) for name in _BENEFIT_FIELDS})


def _from_benefit(entry: Entry) -> BenefitState:
    d = entry.doc
    assert isinstance(d, dict)
    return BenefitState(**{name: d[name] for name in _BENEFIT_FIELDS})


@dataclass(slots=True)
class BenefitsView(ServiceView):
    """Everything the benefits processor reads, folded from the store in order."""

    OWN_KINDS: ClassVar[Mapping[str, Kind[Any]]] = {
        "benefits": Kind(BENEFIT, _benefit, _from_benefit),
    }

    benefits: MutableMapping[str, BenefitState] = field(default_factory=dict)

    @classmethod
    def subject_demand(cls, demand: Demand, subject_id: str) -> None:
        demand.key(BENEFIT, subject_id)
        demand.stream(benefit_stream(subject_id))

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
            correlation = str(metadata.get("correlation_id") or event_id)
            self.benefits[payload["prestation_id"]] = BenefitState(payload, correlation)
            self.subjects.add(payload["nir"], payload["prestation_id"])
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            event = metadata["causation_id"]
            nir = self.parking.undecided[event].payload["nir"]
            self.parking.park(event, waits_for_affiliation(nir), payload["motif"], self.position)
        elif event_type in BENEFIT_DECISIONS:
            self.parking.settle(metadata["causation_id"])
            self.benefits[payload["prestation_id"]].stands(event_id, event_type, payload)
        elif event_type == BENEFITS_REVISION:  # caused by a registry fact: settles no input
            self.benefits[payload["prestation_id"]].stands(event_id, event_type, payload)
