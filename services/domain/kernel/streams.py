"""Stream naming and business-id checks shared by both services."""

from __future__ import annotations

from typing import Any

from services.domain.kernel.processing import Outcome, Refusal

REJECTIONS_STREAM = "rejets"


def registry_stream(event_type: str, payload: Any) -> str:
    """The stream a registry fact belongs to (by the entity it is about)."""
    if event_type == "OrganismeDeclare":
        return f"organisme-{payload.organisme_id}"
    if event_type in ("ConventionConclue", "ConventionResiliee"):
        return f"convention-{payload.convention_id}"
    return f"affiliation-{payload.nir}"


def same_content(field: str, value: str, incoming: Any, recorded: dict[str, Any]) -> Outcome:
    """Compare an input with the one already recorded under the same business id."""
    payload = incoming.model_dump(mode="json")
    if payload == recorded:
        return Outcome(duplicate=True)
    differing = sorted(
        k for k in payload.keys() | recorded.keys() if payload.get(k) != recorded.get(k)
    )
    return Outcome(
        refused=Refusal(
            f"payload.{field}",
            f"{value} is already recorded with other content (differs in {', '.join(differing)})",
        )
    )
