"""The benefits service's decision procedure (alinéa 2), deterministic over its view."""

from __future__ import annotations

from uuid import UUID

from contracts.inbound import PrestationEspecesDue
from contracts.outbound import ResultatVersement, VersementRevise
from services.domain.benefits.revisions import revise_benefit
from services.domain.benefits.rules import RULES_2017, RuleSet, decide_benefit
from services.domain.benefits.view import BenefitsView, benefit_stream
from services.domain.kernel.decider import RegistryAwareProcessor
from services.domain.kernel.parking import Waiting
from services.domain.kernel.processing import Emitter, Input, Outcome
from services.domain.kernel.streams import same_content
from services.domain.kernel.subjects import SubjectState

SERVICE = "benefits"


class BenefitsProcessor(RegistryAwareProcessor[BenefitsView, RuleSet]):
    """Decides benefits inputs over a `BenefitsView` (which it keeps folded)."""

    service = SERVICE

    view_type = BenefitsView
    default_rules = RULES_2017

    def revision(
        self, state: SubjectState, revised: UUID, rules: RuleSet
    ) -> VersementRevise | None:
        assert state.outcome is not None
        return revise_benefit(
            PrestationEspecesDue.model_validate(state.due),
            ResultatVersement.model_validate(state.outcome),
            decision_revisee_id=revised,
            registry=self.view.registry,
            rules=rules,
        )

    def process_input(self, emitter: Emitter, message: Input) -> Outcome:
        p = message.payload
        if not isinstance(p, PrestationEspecesDue):  # the topic's types are checked at the door
            raise TypeError(f"not an input of the benefits service: {message.event_type}")
        if p.prestation_id in self.view.benefits:
            return same_content(
                "prestation_id", p.prestation_id, p, self.view.benefits[p.prestation_id].due
            )
        emitter.input(benefit_stream(p.prestation_id), message)
        self._decide(emitter, message.event_id, p, message.correlation_id)
        return emitter.outcome

    def _decide(
        self,
        emitter: Emitter,
        event_id: UUID,
        benefit: PrestationEspecesDue,
        correlation_id: str,
        *,
        parked: bool = False,
    ) -> None:
        decision = decide_benefit(benefit, self.view.registry, self.rules)
        if decision.parked and parked:
            return  # still waiting; its DecisionEnAttente is already on record
        emitter.decision(
            benefit_stream(benefit.prestation_id),
            decision.event_type,
            decision.payload,
            event_id,
            correlation_id,
        )

    def decide_parked(self, emitter: Emitter, event_id: UUID, waiting: Waiting) -> None:
        benefit = PrestationEspecesDue.model_validate(waiting.payload)
        self._decide(emitter, event_id, benefit, waiting.correlation_id(str(event_id)), parked=True)
