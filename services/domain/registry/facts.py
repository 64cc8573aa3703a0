"""The registry facts a decision relied on, as decisions carry them (`faits_retenus`)."""

from __future__ import annotations

from typing import Any

from services.domain.registry.registry import Affiliation, Convention, Organisme


def faits_retenus(
    affiliation: Affiliation, organisme: Organisme, convention: Convention | None
) -> dict[str, Any]:
    """The registry facts a decision relied on, as carried on the wire (`faits_retenus`)."""
    faits: dict[str, Any] = {
        "affiliation": {
            "organisme_id": affiliation.organisme_id,
            "mode": affiliation.mode,
            "effet_du": affiliation.effet_du.isoformat(),
        },
        "organisme": {
            "organisme_id": organisme.organisme_id,
            "forme_juridique": organisme.forme_juridique,
        },
    }
    if convention is not None:
        faits["convention"] = {
            "convention_id": convention.convention_id,
            "objet": convention.objet,
            "effet_du": convention.effet_du.isoformat(),
            "effet_au": convention.effet_au.isoformat() if convention.effet_au else None,
        }
    return faits
