"""The benefits service's decision procedure (alinéa 2), deterministic over its view."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from contracts.inbound import PrestationEspecesDue
from services.benefits.rules import RULES_2017, RuleSet, decide_benefit
from services.benefits.view import BenefitsView
from services.registry import REGISTRY_EVENT_TYPES
from services.runtime.processing import Emitter, Input, Outcome, decision_id
from services.runtime.streams import registry_stream, same_content

SERVICE = "benefits"


def benefit_stream(prestation_id: str) -> str:
    return f"prestation-{prestation_id}"


class BenefitsProcessor:
    """Decides benefits inputs over a `BenefitsView` (which it keeps folded)."""

    def __init__(
        self,
        view: BenefitsView | None = None,
        rules: RuleSet = RULES_2017,
        ids: Callable[[UUID, int, str], UUID] = decision_id,
    ) -> None:
        self.view = view if view is not None else BenefitsView()
        self.rules = rules
        self.ids = ids
        self.service = SERVICE

    def process(self, message: Input) -> Outcome:
        """The events one input causes (or why it is refused)."""
        emitter = Emitter(self.view, message.event_id, SERVICE, self.ids)
        kind, p = message.event_type, message.payload
        if kind in REGISTRY_EVENT_TYPES:
            emitter.input(registry_stream(kind, p), message)
            self._after_registry_fact(emitter, kind, p)
            return emitter.outcome
        if p.prestation_id in self.view.benefits:
            return same_content(
                "prestation_id", p.prestation_id, p, self.view.benefits[p.prestation_id]
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

    def _after_registry_fact(self, emitter: Emitter, kind: str, p: Any) -> None:
        """A new affiliation or organism may unblock benefits parked for it."""
        for waiting_id, waiting in list(self.view.parking.unblocked_by(kind, p)):
            benefit = PrestationEspecesDue.model_validate(waiting.payload)
            self._decide(
                emitter, UUID(waiting_id), benefit, waiting.correlation_id(waiting_id), parked=True
            )
