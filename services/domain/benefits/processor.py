"""The benefits service's decision procedure (alinéa 2), deterministic over its view."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from uuid import UUID

from contracts.inbound import PrestationEspecesDue
from contracts.outbound import ResultatVersement
from services.domain.benefits.revisions import revise_benefit
from services.domain.benefits.rules import RULES_2017, RuleSet, decide_benefit
from services.domain.benefits.view import BenefitsView, benefit_stream
from services.domain.kernel.decider import RegistryAwareProcessor
from services.domain.kernel.parking import Waiting
from services.domain.kernel.processing import Emitter, Input, Outcome, decision_id
from services.domain.kernel.streams import same_content

SERVICE = "benefits"


class BenefitsProcessor(RegistryAwareProcessor[BenefitsView, RuleSet]):
    """Decides benefits inputs over a `BenefitsView` (which it keeps folded)."""

    service = SERVICE

    def __init__(
        self,
        view: BenefitsView | None = None,
        rules: RuleSet = RULES_2017,
        ids: Callable[[UUID, int, str], UUID] = decision_id,
        rule_sets: Mapping[str, RuleSet] | None = None,
    ) -> None:
        super().__init__(view if view is not None else BenefitsView(), rules, ids)
        self.rule_sets = dict(rule_sets or {RULES_2017.version: RULES_2017})

    def revise(self, emitter: Emitter, subject_id: str, fact: Input) -> None:
        state = self.view.benefits.get(subject_id)
        if state is None or state.outcome is None or state.decision_id is None:
            return  # not decided yet, or decided by its date
        rules = self.rule_sets.get(str(state.regles_version))
        if rules is None:
            return  # decided by a rule set this processor does not know: left as it is
        revision = revise_benefit(
            PrestationEspecesDue.model_validate(state.due),
            ResultatVersement.model_validate(state.outcome),
            decision_revisee_id=UUID(state.decision_id),
            registry=self.view.registry,
            rules=rules,
        )
        if revision is not None:
            emitter.decision(
                benefit_stream(subject_id),
                revision.event_type,
                revision.payload,
                fact,
                state.correlation_id,
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
