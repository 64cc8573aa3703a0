"""The two services, each described once: what it reads, decides and publishes, by which rules.

Everything that needs to know a service reads it here: the runtime (topics, processor),
the audit (rule sets by version for replay), the benchmarks and the dashboard (decision
types in display order). Topics are named by the contract's default names
(:mod:`contracts.topics`); a deployment may rename them, and its settings
map each contract name to the configured one.

Replay must re-run each decision with the rule set it recorded (`regles_version`), so every
rule set ever used in production stays registered here, keyed by its version; `current` is
the one the services run today (what `what-if` applies to the whole history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import inbound, topics
from contracts.topics import PARKED, REVISIONS
from services.domain.benefits import rules as benefits_rules
from services.domain.benefits.processor import BenefitsProcessor
from services.domain.benefits.view import BenefitsView
from services.domain.collection import rules as collection_rules
from services.domain.collection.processor import CollectionProcessor
from services.domain.collection.view import CollectionView
from services.domain.kernel.processing import Outcome, Processor, ServiceView
from services.domain.kernel.tasks import REVISION_STEP, EtapeDeRevision

INPUT_TYPES = topics.INBOUND_EVENT_TYPES
"""Every event type a service records as an input (registry facts included)."""

PAYLOAD_MODELS: Mapping[str, type[inbound.InboundPayload]] = {
    name: getattr(inbound, name) for name in sorted(INPUT_TYPES)
}
"""The contract's payload model of each input event type."""

STEP_HEADS = INPUT_TYPES | {REVISION_STEP}
"""What heads a step of the store (it and the decisions it causes): an input, or a step of
a revision task (`services.domain.kernel.tasks`), which the store records like one."""

HEAD_MODELS: Mapping[str, type[inbound.InboundPayload] | type[EtapeDeRevision]] = {
    **PAYLOAD_MODELS,
    REVISION_STEP: EtapeDeRevision,
}
"""The payload model of each event type that heads a step: what replay re-runs."""


class RuledProcessor(Processor, Protocol):
    """A service processor whose rule set can be chosen (both processors are)."""

    rules: Any

    @property
    def view(self) -> ServiceView: ...

    def process(self, message: Any) -> Outcome: ...


@dataclass(frozen=True)
class ServiceDescription:
    """One service: its alinéa, inputs, decisions, rules and processor."""

    name: str
    alinea: str
    inputs: Mapping[str, frozenset[str]]  # contract topic -> the input types it carries
    decisions_topic: str  # contract topic of its decisions
    rejections_topic: str  # contract topic of the records it refuses
    decision_order: tuple[str, ...]  # every decision type, in display order (parked last)
    main_input: str  # the input type its decisions answer (the benchmarks send it)
    rule_sets: Mapping[str, Any]  # regles_version -> RuleSet
    current: Any  # the RuleSet the service runs today
    processor: Callable[..., RuledProcessor]  # (view=None, rules=current) -> a processor
    view: type[ServiceView]  # what its processor reads (a whole fold, or a batch's state)

    @property
    def decision_types(self) -> frozenset[str]:
        return frozenset(self.decision_order)

    @property
    def final_types(self) -> frozenset[str]:
        """The decisions that settle an input: all but the parking notice and the revision
        (caused by a registry fact, it changes an input already settled)."""
        return self.decision_types - {PARKED} - REVISIONS

    @property
    def revision_type(self) -> str:
        """The event type of this service's revisions."""
        (revision,) = self.decision_types & REVISIONS
        return revision

    @property
    def input_types(self) -> frozenset[str]:
        return frozenset().union(*self.inputs.values())

    def new_processor(self, rules: Any = None, view: ServiceView | None = None) -> RuledProcessor:
        """A fresh processor with `rules` (today's by default), folding into `view` if given;
        it revises each decision with the rule set the decision names."""
        return self.processor(
            view=view, rules=self.current if rules is None else rules, rule_sets=self.rule_sets
        )


def _by_version(*rule_sets: Any) -> dict[str, Any]:
    return {rules.version: rules for rules in rule_sets}


COLLECTION = ServiceDescription(
    name="collection",
    alinea="CSS L611-20 al.1: collection and litigation of contributions, entrusted",
    inputs={
        topics.REFERENTIEL: topics.REFERENTIEL_EVENT_TYPES,
        topics.COTISATIONS: topics.COTISATIONS_EVENT_TYPES,
    },
    decisions_topic=topics.REGLEMENTS_COTISATIONS,
    rejections_topic=topics.REJETS_COLLECTION,
    decision_order=topics.COLLECTION_DECISIONS,
    main_input="CotisationDue",
    rule_sets=_by_version(collection_rules.RULES_2017),
    current=collection_rules.RULES_2017,
    processor=CollectionProcessor,
    view=CollectionView,
)
BENEFITS = ServiceDescription(
    name="benefits",
    alinea="CSS L611-20 al.2: payment of cash benefits, which may be entrusted",
    inputs={
        topics.REFERENTIEL: topics.REFERENTIEL_EVENT_TYPES,
        topics.PRESTATIONS: topics.PRESTATIONS_EVENT_TYPES,
    },
    decisions_topic=topics.REGLEMENTS_PRESTATIONS,
    rejections_topic=topics.REJETS_BENEFITS,
    decision_order=topics.BENEFITS_DECISIONS,
    main_input="PrestationEspecesDue",
    rule_sets=_by_version(benefits_rules.RULES_2017),
    current=benefits_rules.RULES_2017,
    processor=BenefitsProcessor,
    view=BenefitsView,
)
SERVICES: Mapping[str, ServiceDescription] = {s.name: s for s in (COLLECTION, BENEFITS)}
"""Every service, by name."""


def selected(name: str | None) -> list[ServiceDescription]:
    """The services a `--service` option designates (both when it is absent)."""
    return list(SERVICES.values()) if name is None else [SERVICES[name]]
