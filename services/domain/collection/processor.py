"""The collection service's decision procedure (alinéa 1), deterministic over its view.

Per input: refuse what contradicts the record, record the input, decide it with the pure
rules, and decide whatever was parked waiting for it (a contribution waiting for its
affiliation, payments and unpaid notices waiting for their contribution).
"""

from __future__ import annotations

from uuid import UUID

from contracts.inbound import CotisationDue, CotisationImpayee, PaiementRecu
from contracts.limits import SUM_MAX
from contracts.outbound import EncaissementRevise, ResultatEncaissement
from services.domain.collection.revisions import Tenure, revise_contribution
from services.domain.collection.rules import (
    RULES_2017,
    Contribution,
    RuleSet,
    decide_contribution,
    decide_payment,
    decide_unpaid,
)
from services.domain.collection.view import (
    CollectionView,
    ContributionState,
    contribution_stream,
    waits_for_contribution,
)
from services.domain.kernel.decider import RegistryAwareProcessor
from services.domain.kernel.parking import Waiting
from services.domain.kernel.processing import Emitter, Input, Outcome, Refusal
from services.domain.kernel.streams import same_content

SERVICE = "collection"
MAX_PAID_CENTS = SUM_MAX
"""The most that payments recorded on one contribution may add up to (10^13 euros): far
beyond any real contribution, far below the 64-bit limit of every sum made from it (the
contract bounds a balance to the same)."""


class CollectionProcessor(RegistryAwareProcessor[CollectionView, RuleSet]):
    """Decides collection inputs over a `CollectionView` (which it keeps folded)."""

    service = SERVICE

    view_type = CollectionView
    default_rules = RULES_2017

    def revision(
        self, state: ContributionState, revised: UUID, rules: RuleSet
    ) -> EncaissementRevise | None:
        assert state.outcome is not None
        return revise_contribution(
            CotisationDue.model_validate(state.due),
            ResultatEncaissement.model_validate(state.outcome),
            decision_revisee_id=revised,
            registry=self.view.registry,
            rules=rules,
            tenure=Tenure(state.held_cents, state.litigated),
        )

    def process_input(self, emitter: Emitter, message: Input) -> Outcome:
        kind, p = message.event_type, message.payload
        if not isinstance(p, CotisationDue | PaiementRecu | CotisationImpayee):
            # the topic's types are checked at the door: this is a wiring mistake
            raise TypeError(f"not an input of the collection service: {kind}")
        refused = self._contradiction(p)
        if refused is not None:
            return refused
        emitter.input(contribution_stream(p.cotisation_id), message)
        if isinstance(p, CotisationDue):
            self._decide_contribution(emitter, message.event_id, p, message.correlation_id)
        else:
            self._decide_follow_up(emitter, message.event_id, p, message.correlation_id)
        return emitter.outcome

    def _contradiction(self, p: CotisationDue | PaiementRecu | CotisationImpayee) -> Outcome | None:
        """A second fact under an existing business id: the same is a duplicate (no effect),
        a different one is refused — never silently merged."""
        if isinstance(p, CotisationDue) and p.cotisation_id in self.view.contributions:
            return same_content(
                "cotisation_id", p.cotisation_id, p, self.view.contributions[p.cotisation_id].due
            )
        if isinstance(p, PaiementRecu) and p.paiement_id in self.view.payments:
            return same_content("paiement_id", p.paiement_id, p, self.view.payments[p.paiement_id])
        known = self.view.contributions.get(p.cotisation_id)
        if not isinstance(p, CotisationDue) and known is not None and known.due["nir"] != p.nir:
            return Outcome(
                refused=Refusal(
                    "payload.nir", f"does not match the nir of cotisation {p.cotisation_id}"
                )
            )
        if (
            isinstance(p, PaiementRecu)
            and known is not None
            and known.paid_cents + p.montant_cents > MAX_PAID_CENTS
        ):  # sums are checked where they are made: a balance stays a 64-bit integer
            return Outcome(
                refused=Refusal(
                    "payload.montant_cents",
                    f"the payments on cotisation {p.cotisation_id} would exceed"
                    f" {MAX_PAID_CENTS} cents",
                )
            )
        return None

    def _decide_contribution(
        self,
        emitter: Emitter,
        event_id: UUID,
        due: CotisationDue,
        correlation_id: str,
        *,
        parked: bool = False,
    ) -> None:
        decision = decide_contribution(due, self.view.registry, self.rules)
        if decision.parked and parked:
            return  # still waiting; its DecisionEnAttente is already on record
        stream = contribution_stream(due.cotisation_id)
        emitter.decision(stream, decision.event_type, decision.payload, event_id, correlation_id)
        if decision.parked:
            return
        parking = self.view.parking
        for waiting_id in parking.waiting_on(waits_for_contribution(due.cotisation_id)):
            waiting = parking.undecided[waiting_id]
            if waiting.payload["nir"] != due.nir:
                # it names another person: never booked on this contribution (the same pair
                # in the other order is refused at input); it stays parked, for a human
                continue
            model = _FOLLOW_UPS[waiting.event_type].model_validate(waiting.payload)
            self._decide_follow_up(
                emitter,
                UUID(waiting_id),
                model,
                waiting.correlation_id(waiting_id),
                parked=True,
            )

    def _decide_follow_up(
        self,
        emitter: Emitter,
        event_id: UUID,
        p: PaiementRecu | CotisationImpayee,
        correlation_id: str,
        *,
        parked: bool = False,
    ) -> None:
        if not parked:  # (a parked one waited for its contribution: decided just now)
            self.revise_pending(emitter, p.cotisation_id, p.nir)
        state = self.view.contributions.get(p.cotisation_id)
        known = (
            None
            if state is None
            else Contribution(
                cotisation_id=p.cotisation_id,
                nir=state.due["nir"],
                caisse_de_base=state.due["caisse_de_base"],
                montant_cents=state.due["montant_cents"],
                organisme_id=state.organisme_id,
                paid_cents=state.paid_cents,
                faits_retenus=state.faits_retenus,
                decided=state.decided,
            )
        )
        decision = (
            decide_payment(p, known, self.rules)
            if isinstance(p, PaiementRecu)
            else decide_unpaid(p, known, self.rules)
        )
        if decision.parked and parked:
            return
        emitter.decision(
            contribution_stream(p.cotisation_id),
            decision.event_type,
            decision.payload,
            event_id,
            correlation_id,
        )

    def decide_parked(self, emitter: Emitter, event_id: UUID, waiting: Waiting) -> None:
        due = CotisationDue.model_validate(waiting.payload)
        self._decide_contribution(
            emitter, event_id, due, waiting.correlation_id(str(event_id)), parked=True
        )


_FOLLOW_UPS: dict[str, type[PaiementRecu] | type[CotisationImpayee]] = {
    "PaiementRecu": PaiementRecu,
    "CotisationImpayee": CotisationImpayee,
}
