"""Default Kafka topic names of wire contract v1, and the event types each one carries.

Every topic name is a default: services read the actual names from their settings. The
event-type sets are keyed by role, not by topic name, so they stay valid when a topic is
renamed; pass one of them as ``allowed`` to :func:`contracts.parse_inbound`.
"""

from typing import Final

REFERENTIEL: Final = "rsi.referentiel.v1"
"""Registry facts: organisms, conventions, affiliations (inbound)."""
COTISATIONS: Final = "rsi.cotisations.v1"
"""Contributions due, payments, unpaid contributions (inbound)."""
PRESTATIONS: Final = "rsi.prestations.v1"
"""Cash benefits due (inbound)."""
REGLEMENTS_COTISATIONS: Final = "rsi.reglements.cotisations.v1"
"""Collection decisions, alinéa 1 (outbound)."""
REGLEMENTS_PRESTATIONS: Final = "rsi.reglements.prestations.v1"
"""Benefits decisions, alinéa 2 (outbound)."""
REJETS_COLLECTION: Final = "rsi.rejets.collection.v1"
"""Messages refused by the collection service, untouched, reason in headers (outbound)."""
REJETS_BENEFITS: Final = "rsi.rejets.benefits.v1"
"""Messages refused by the benefits service, untouched, reason in headers (outbound)."""
AUDIT_REPLAY: Final = "rsi.audit.replay.v1"
"""Decisions re-computed by an audit replay (outbound, not part of the public table)."""

REFERENTIEL_EVENT_TYPES: Final = frozenset(
    {"OrganismeDeclare", "ConventionConclue", "ConventionResiliee", "AffiliationEnregistree"}
)
"""Event types allowed on the registry topic."""
COTISATIONS_EVENT_TYPES: Final = frozenset({"CotisationDue", "PaiementRecu", "CotisationImpayee"})
"""Event types allowed on the contributions topic."""
PRESTATIONS_EVENT_TYPES: Final = frozenset({"PrestationEspecesDue"})
"""Event types allowed on the benefits topic."""
PARKED: Final = "DecisionEnAttente"
"""The notice that an input waits for a missing fact (both services publish it)."""
COLLECTION_REVISION: Final = "EncaissementRevise"
"""A later registry fact changed who collects a contribution already decided."""
BENEFITS_REVISION: Final = "VersementRevise"
"""A later registry fact changed who pays a cash benefit already decided."""
REVISIONS: Final = frozenset({COLLECTION_REVISION, BENEFITS_REVISION})
"""The revisions (additive in v1): caused by a registry fact, they settle no input."""

COLLECTION_DECISIONS: Final = (
    "EncaissementDelegue",
    "EncaissementNonDelegue",
    COLLECTION_REVISION,
    "PaiementEncaissePourCompte",
    "PaiementNonImpute",
    "ContentieuxDelegue",
    "ContentieuxSansObjet",
    PARKED,
)
"""Decision types published on the collection decisions topic, in display order (a revision
after the decisions it revises, the parking notice last)."""
COLLECTION_DECISION_TYPES: Final = frozenset(COLLECTION_DECISIONS)
BENEFITS_DECISIONS: Final = (
    "VersementDelegue",
    "VersementDirect",
    BENEFITS_REVISION,
    "PrestationNonTraitee",
    PARKED,
)
"""Decision types published on the benefits decisions topic, in display order (likewise)."""
BENEFITS_DECISION_TYPES: Final = frozenset(BENEFITS_DECISIONS)
INBOUND_EVENT_TYPES: Final = (
    REFERENTIEL_EVENT_TYPES | COTISATIONS_EVENT_TYPES | PRESTATIONS_EVENT_TYPES
)
"""Every inbound event type of contract v1."""
OUTBOUND_EVENT_TYPES: Final = COLLECTION_DECISION_TYPES | BENEFITS_DECISION_TYPES
"""Every outbound decision type of contract v1."""
