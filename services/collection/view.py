"""The collection service's fold of its store: the registry, each contribution's state,
and the inputs still waiting for a decision."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from services.registry import REGISTRY_EVENT_TYPES, Registry
from services.runtime.processing import VersionedView

COLLECTION_INPUTS = frozenset({"CotisationDue", "PaiementRecu", "CotisationImpayee"})
CONTRIBUTION_DECISIONS = frozenset({"EncaissementDelegue", "EncaissementNonDelegue"})
FOLLOW_UP_DECISIONS = frozenset(
    {"PaiementEncaissePourCompte", "PaiementNonImpute", "ContentieuxDelegue",
     "ContentieuxSansObjet"}
)


@dataclass(slots=True)
class ContributionState:
    """A contribution as recorded: its due, its decision, the payments held for it."""

    due: dict[str, Any]
    organisme_id: str | None = None
    faits_retenus: dict[str, Any] | None = None
    decided: bool = False
    paid_cents: int = 0


@dataclass(frozen=True, slots=True)
class Waiting:
    """An input recorded and parked: what is needed to decide it later."""

    event_type: str
    payload: dict[str, Any]
    metadata: dict[str, Any]
    motif: str = ""


@dataclass(slots=True)
class CollectionView(VersionedView):
    """Everything the collection processor reads, folded from the store in order."""

    registry: Registry = field(default_factory=Registry)
    contributions: dict[str, ContributionState] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    undecided: dict[str, Waiting] = field(default_factory=dict)  # by input event id
    parked_by_nir: dict[str, list[str]] = field(default_factory=dict)
    parked_by_contribution: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        VersionedView.__init__(self)

    def apply(self, stream_id: str, event_id: str, event_type: str,
              payload: dict[str, Any], metadata: dict[str, Any]) -> None:
        """Fold one event (input, registry fact, decision or rejection)."""
        self.bump(stream_id)
        if event_type in REGISTRY_EVENT_TYPES:
            self.registry.apply(event_type, payload)
        elif event_type in COLLECTION_INPUTS:
            self._record_input(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            self._park(metadata["causation_id"], payload["motif"])
        elif event_type in CONTRIBUTION_DECISIONS:
            self._settle(metadata["causation_id"])
            state = self.contributions[payload["cotisation_id"]]
            state.decided = True
            state.organisme_id = payload.get("organisme_id")
            state.faits_retenus = payload.get("faits_retenus")
        elif event_type in FOLLOW_UP_DECISIONS:
            self._settle(metadata["causation_id"])
            if event_type == "PaiementEncaissePourCompte":
                self.contributions[payload["cotisation_id"]].paid_cents += payload["montant_cents"]

    def _record_input(self, event_id: str, event_type: str, payload: dict[str, Any],
                      metadata: dict[str, Any]) -> None:
        if event_type == "CotisationDue":
            self.contributions[payload["cotisation_id"]] = ContributionState(due=payload)
        elif event_type == "PaiementRecu":
            self.payments[payload["paiement_id"]] = payload
        self.undecided[event_id] = Waiting(event_type, payload, metadata)

    def _park(self, event_id: str, motif: str) -> None:
        waiting = replace(self.undecided[event_id], motif=motif)
        self.undecided[event_id] = waiting
        if waiting.event_type == "CotisationDue":
            self.parked_by_nir.setdefault(waiting.payload["nir"], []).append(event_id)
        else:
            cotisation_id = waiting.payload["cotisation_id"]
            self.parked_by_contribution.setdefault(cotisation_id, []).append(event_id)

    def _settle(self, event_id: str) -> None:
        waiting = self.undecided.pop(event_id)
        if not waiting.motif:
            return
        if waiting.event_type == "CotisationDue":
            index, key = self.parked_by_nir, waiting.payload["nir"]
        else:
            index, key = self.parked_by_contribution, waiting.payload["cotisation_id"]
        index[key].remove(event_id)
        if not index[key]:
            del index[key]
