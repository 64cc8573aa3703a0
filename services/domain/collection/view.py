"""The collection service's fold of its store: the registry, each contribution's state,
and the inputs still waiting for a decision."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from contracts.topics import COLLECTION_REVISION
from services.domain.collection.revisions import recorded_outcome
from services.domain.kernel.parking import waits_for_affiliation
from services.domain.kernel.processing import ServiceView
from services.domain.kernel.statekinds import PARKED, field_of
from services.domain.kernel.subjects import Subject, SubjectState, subject_kind
from services.domain.state import Demand, Entry, Kind

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
class ContributionState(SubjectState):
    """A contribution as recorded: its due, the outcome that stands (its decision's, or its
    latest revision's), the payments recorded on it."""

    organisme_id: str | None = None  # who collects it, when delegated
    faits_retenus: dict[str, Any] | None = None  # what the delegation relied on
    decided: bool = False
    paid_cents: int = 0  # every payment recorded on it, whoever received it
    held_cents: int = 0  # booked to the organism since it took the contribution over
    litigated: bool = False  # litigation entrusted to it in that tenure

    def decided_by(self, event_id: str, event_type: str, payload: dict[str, Any], at: int) -> None:
        """A decision or revision now stands for it. The organism's tenure (what it holds,
        whether it has the litigation) goes on while the same organism collects — a revision
        that changes only its convention leaves the money where it is — and begins anew when
        another organism (or none) takes over."""
        result = recorded_outcome(event_type, payload)
        self.stands(event_id, result, payload, at)
        self.decided = True
        delegated = result is not None and result["event_type"] == "EncaissementDelegue"
        before = self.organisme_id
        if event_type == COLLECTION_REVISION:
            self.organisme_id = result["organisme_id"] if result is not None else None
        else:
            self.organisme_id = payload.get("organisme_id")
        self.faits_retenus = payload.get("faits_retenus") if delegated else None
        if self.organisme_id is None or self.organisme_id != before:
            self.held_cents, self.litigated = 0, False


def _payload(entry: Entry) -> dict[str, Any]:
    assert isinstance(entry.doc, dict)
    return entry.doc


CONTRIBUTION = "contribution"
PAYMENT = "payment"


@dataclass(slots=True)
class CollectionView(ServiceView):
    """Everything the collection processor reads, folded from the store in order."""

    OWN_KINDS: ClassVar[Mapping[str, Kind[Any]]] = {
        "contributions": subject_kind(CONTRIBUTION, ContributionState),
        "payments": Kind(PAYMENT, Entry, _payload),
    }

    contributions: MutableMapping[str, ContributionState] = field(default_factory=dict)
    payments: MutableMapping[str, dict[str, Any]] = field(default_factory=dict)

    SUBJECT = Subject("cotisation_id", CONTRIBUTION, "contributions", contribution_stream)

    @classmethod
    def more_demand(cls, demand: Demand, payload: Any) -> None:
        cotisation_id = field_of(payload, "cotisation_id")
        if isinstance(cotisation_id, str):  # the follow-ups parked on it
            demand.tag(PARKED, waits_for_contribution(cotisation_id))
        paiement_id = field_of(payload, "paiement_id")
        if isinstance(paiement_id, str):
            demand.key(PAYMENT, paiement_id)

    def fold(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        if event_type in COLLECTION_INPUTS:
            if event_type == "CotisationDue":
                correlation = str(metadata.get("correlation_id") or event_id)
                self.contributions[payload["cotisation_id"]] = ContributionState(
                    payload, correlation
                )
                self.subjects.add(payload["nir"], payload["cotisation_id"])
            elif event_type == "PaiementRecu":
                self.payments[payload["paiement_id"]] = payload
            self.parking.record(event_id, event_type, payload, metadata)
        elif event_type == "DecisionEnAttente":
            self._park(metadata["causation_id"], payload["motif"])
        elif event_type in CONTRIBUTION_DECISIONS:
            self.parking.settle(metadata["causation_id"])
            self.contributions[payload["cotisation_id"]].decided_by(
                event_id, event_type, payload, self.position
            )
        elif event_type == COLLECTION_REVISION:  # caused by a registry fact: settles no input
            self.contributions[payload["cotisation_id"]].decided_by(
                event_id, event_type, payload, self.position
            )
        elif event_type in FOLLOW_UP_DECISIONS:
            self.parking.settle(metadata["causation_id"])
            state = self.contributions[payload["cotisation_id"]]
            if event_type == "PaiementEncaissePourCompte":
                state.paid_cents += payload["montant_cents"]
                state.held_cents += payload["montant_cents"]
            elif event_type == "PaiementNonImpute":  # the caisse received it: still paid
                state.paid_cents += self.payments[payload["paiement_id"]]["montant_cents"]
            elif event_type == "ContentieuxDelegue":
                state.litigated = True

    def _park(self, event_id: str, motif: str) -> None:
        waiting = self.parking.undecided[event_id]
        if waiting.event_type == "CotisationDue":
            key = waits_for_affiliation(waiting.payload["nir"])
        else:
            key = waits_for_contribution(waiting.payload["cotisation_id"])
        self.parking.park(event_id, key, motif, self.position)
