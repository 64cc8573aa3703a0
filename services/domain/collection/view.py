"""The collection service's fold of its store: the registry, each contribution's state,
and the inputs still waiting for a decision."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from services.domain.kernel.parking import waits_for_affiliation
from services.domain.kernel.processing import ServiceView
from services.domain.kernel.state import Demand, Entry, Kind
from services.domain.kernel.statekinds import PARKED, field_of

COLLECTION_INPUTS = frozenset({"CotisationDue", "PaiementRecu", "CotisationImpayee"})
CONTRIBUTION_DECISIONS = frozenset({"EncaissementDelegue", "EncaissementNonDelegue"})
FOLLOW_UP_DECISIONS = frozenset(
    {
        "PaiementEncaissePourCompte",
        "PaiementNonImpute",
        "ContentieuxDelegue",
        "ContentieuxSansObjet",
    }
)


def contribution_stream(cotisation_id: str) -> str:
    return f"cotisation-{cotisation_id}"


def waits_for_contribution(cotisation_id: str) -> str:
    return f"cotisation/{cotisation_id}"


@dataclass(slots=True)
class ContributionState:
    """A contribution as recorded: its due, its decision, the payments held for it."""

    due: dict[str, Any]
    organisme_id: str | None = None
    faits_retenus: dict[str, Any] | None = None
    decided: bool = False
    paid_cents: int = 0


def _contribution(c: ContributionState) -> Entry:
    return Entry(
        {
            "due": c.due,
            "organisme_id": c.organisme_id,
            "faits_retenus": c.faits_retenus,
            "decided": c.decided,
            "paid_cents": c.paid_cents,
        }
    )


def _from_contribution(entry: Entry) -> ContributionState:
    d = entry.doc
    assert isinstance(d, dict)
    return ContributionState(
        d["due"], d["organisme_id"], d["faits_retenus"], d["decided"], d["paid_cents"]
    )


def _payload(entry: Entry) -> dict[str, Any]:
    assert isinstance(entry.doc, dict)
    return entry.doc


CONTRIBUTION = "contribution"
PAYMENT = "payment"


@dataclass(slots=True)
class CollectionView(ServiceView):
    """Everything the collection processor reads, folded from the store in order."""

    OWN_KINDS: ClassVar[Mapping[str, Kind[Any]]] = {
        "contributions": Kind(CONTRIBUTION, _contribution, _from_contribution),
        "payments": Kind(PAYMENT, Entry, _payload),
    }

    contributions: MutableMapping[str, ContributionState] = field(default_factory=dict)
    payments: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def own_demand(cls, demand: Demand, event_type: str, payload: Any) -> None:
        cotisation_id = field_of(payload, "cotisation_id")
        if isinstance(cotisation_id, str):
            demand.key(CONTRIBUTION, cotisation_id)
            demand.tag(PARKED, waits_for_contribution(cotisation_id))
            demand.stream(contribution_stream(cotisation_id))
        paiement_id = field_of(payload, "paiement_id")
        if isinstance(paiement_id, str):
            demand.key(PAYMENT, paiement_id)

    def fold(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        if event_type in COLLECTION_INPUTS:
            if event_type == "CotisationDue":
                self.contributions[payload["cotisation_id"]] = ContributionState(due=payload)
            elif event_type == "PaiementRecu":
                self.payments[payload["paiement_id"]] = payload
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            self._park(metadata["causation_id"], payload["motif"])
        elif event_type in CONTRIBUTION_DECISIONS:
            self.parking.settle(metadata["causation_id"])
            state = self.contributions[payload["cotisation_id"]]
            state.decided = True
            state.organisme_id = payload.get("organisme_id")
            state.faits_retenus = payload.get("faits_retenus")
        elif event_type in FOLLOW_UP_DECISIONS:
            self.parking.settle(metadata["causation_id"])
            if event_type == "PaiementEncaissePourCompte":
                self.contributions[payload["cotisation_id"]].paid_cents += payload["montant_cents"]

    def _park(self, event_id: str, motif: str) -> None:
        waiting = self.parking.undecided[event_id]
        if waiting.event_type == "CotisationDue":
            key = waits_for_affiliation(waiting.payload["nir"])
        else:
            key = waits_for_contribution(waiting.payload["cotisation_id"])
        self.parking.park(event_id, key, motif, self.position)
