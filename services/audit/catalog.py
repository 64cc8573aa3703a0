"""The services an audit knows: their processors, decision types and rule sets by version.

Replay must re-run each decision with the rule set it recorded (`regles_version`), so every
rule set ever used in production stays registered here, keyed by its version; `current` is
the one the services run today (what `what-if` applies to the whole history).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from contracts import inbound, topics
from services.benefits import rules as benefits_rules
from services.benefits.processor import BenefitsProcessor
from services.collection import rules as collection_rules
from services.collection.processor import CollectionProcessor
from services.runtime.processing import Outcome, View
from services.runtime.settings import ServiceSettings

INPUT_TYPES = topics.INBOUND_EVENT_TYPES
"""Every event type a service records as an input (registry facts included)."""

PAYLOAD_MODELS: Mapping[str, type[inbound.InboundPayload]] = {
    name: getattr(inbound, name) for name in sorted(INPUT_TYPES)
}
"""The contract's payload model of each input event type."""


class RuledProcessor(Protocol):
    """A service processor whose rule set can be chosen per input (both processors are)."""

    rules: Any

    @property
    def view(self) -> View: ...

    def process(self, message: Any) -> Outcome: ...


@dataclass(frozen=True)
class AuditedService:
    """One service as the audit sees it."""

    name: str
    rule_sets: Mapping[str, Any]  # regles_version -> RuleSet
    current: Any  # the RuleSet the service runs today
    new_processor: Callable[[Any], RuledProcessor]  # a fresh processor with these rules
    decision_types: frozenset[str]
    input_topics: Callable[[ServiceSettings], dict[str, frozenset[str]]]
    schema_of: Callable[[ServiceSettings], str]

    def schema(self, settings: ServiceSettings) -> str:
        """The PostgreSQL schema holding this service's store."""
        return self.schema_of(settings)


def _registry(*rule_sets: Any) -> dict[str, Any]:
    return {rules.version: rules for rules in rule_sets}


COLLECTION = AuditedService(
    name="collection",
    rule_sets=_registry(collection_rules.RULES_2017),
    current=collection_rules.RULES_2017,
    new_processor=lambda rules: CollectionProcessor(rules=rules),
    decision_types=topics.COLLECTION_DECISION_TYPES,
    input_topics=lambda s: {s.topic_referentiel: topics.REFERENTIEL_EVENT_TYPES,
                            s.topic_cotisations: topics.COTISATIONS_EVENT_TYPES},
    schema_of=lambda s: s.collection_schema,
)
BENEFITS = AuditedService(
    name="benefits",
    rule_sets=_registry(benefits_rules.RULES_2017),
    current=benefits_rules.RULES_2017,
    new_processor=lambda rules: BenefitsProcessor(rules=rules),
    decision_types=topics.BENEFITS_DECISION_TYPES,
    input_topics=lambda s: {s.topic_referentiel: topics.REFERENTIEL_EVENT_TYPES,
                            s.topic_prestations: topics.PRESTATIONS_EVENT_TYPES},
    schema_of=lambda s: s.benefits_schema,
)
SERVICES: Mapping[str, AuditedService] = {s.name: s for s in (COLLECTION, BENEFITS)}


def selected(name: str | None) -> list[AuditedService]:
    """The services a `--service` option designates (both when it is absent)."""
    return list(SERVICES.values()) if name is None else [SERVICES[name]]
