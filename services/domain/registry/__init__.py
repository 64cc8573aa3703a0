"""The referentiel (organisms, conventions, affiliations) as folded from the store."""

from services.domain.registry.facts import faits_retenus
from services.domain.registry.registry import (
    ABOUT_ORGANISMS,
    REGISTRY_EVENT_TYPES,
    Affiliation,
    Convention,
    Organisme,
    Registry,
)

__all__ = [
    "ABOUT_ORGANISMS",
    "REGISTRY_EVENT_TYPES",
    "Affiliation",
    "Convention",
    "Organisme",
    "Registry",
    "faits_retenus",
]
