"""Stream naming and business-id checks shared by both services."""

from __future__ import annotations

from typing import Any

from contracts.messages import key_field
from services.domain.kernel.processing import Outcome, Refusal

REJECTIONS_STREAM = "rejets"


def registry_stream(event_type: str, payload: Any) -> str:
    """The stream a registry fact belongs to: the entity it is about, which is also what
    keys it on Kafka (an organism, a convention, or the person of an affiliation)."""
    field = key_field(event_type)
    return f"{_ENTITY_OF_KEY[field]}-{getattr(payload, field)}"


_ENTITY_OF_KEY = {"organisme_id": "organisme", "convention_id": "convention", "nir": "affiliation"}


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
