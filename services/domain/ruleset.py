"""What the rule sets of both alinéas share: a dated version of the law, and the fields
every decision takes from it.

A decision names the rule-set version that made it and the legal texts it applies, next to
the subject's `nir` and `caisse_de_base` (contract v1); both alinéas build these the same
way, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, TypedDict, TypeVar

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The legal data every alinéa depends on; a correction of the law is a new RuleSet
    (each alinéa's adds its own data)."""

    version: str
    debut_alinea: date
    base_alinea: str


class Common(TypedDict):
    """The fields every decision carries."""

    nir: str
    caisse_de_base: str
    base_legale: list[str]
    regles_version: str


def common(nir: str, caisse: str, bases: list[str], rules: RuleSet) -> Common:
    """The common fields of a decision on `nir`'s input, applying `bases` under `rules`."""
    return {
        "nir": nir,
        "caisse_de_base": caisse,
        "base_legale": bases,
        "regles_version": rules.version,
    }


class Revised(Common):
    """The fields a revision takes from the decision the registry now gives: who, under
    which texts and rule set, on which registry facts."""

    faits_retenus: Any


def revised_from(decided: Any) -> Revised:
    """The common fields of a revision whose new outcome is the decision `decided` (an
    outbound decision model)."""
    return {
        "nir": decided.nir,
        "caisse_de_base": decided.caisse_de_base,
        "base_legale": decided.base_legale,
        "regles_version": decided.regles_version,
        "faits_retenus": decided.faits_retenus,
    }


Result = TypeVar("Result", bound=BaseModel)


def outcome_fields(
    model: type[BaseModel], event_type: str, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The outcome (`ResultatEncaissement`, `ResultatVersement`) of a decision of
    `event_type` with this wire payload, as JSON: each of the outcome's fields as the
    decision has it, null where it has none (a delegation has no motif, a refusal no
    organism). Not validated again: the decision was when it was made."""
    fields = {name: payload.get(name) for name in model.model_fields if name != "event_type"}
    return {"event_type": event_type, **fields}


def outcome_from(model: type[Result], event_type: str, payload: Mapping[str, Any]) -> Result:
    """`outcome_fields` as the contract's model."""
    return model.model_validate(outcome_fields(model, event_type, payload))
