"""Revisions of alinéa 2: a registry fact recorded later changes who pays a cash benefit
already decided (domain.md, "Revisions").

Pure functions, like the rule they re-use. The caller gives the recorded
`PrestationEspecesDue`, the outcome its decision stands at (the decision's, or its latest
revision's), the registry as known once the new fact is recorded and the rule set of the
decision revised; it gets the revision to record, or None when nothing changes.

Only outcomes that came from the registry are revised (checks 3–5: `VersementDelegue`,
`VersementDirect`); a benefit decided by its date (`PrestationNonTraitee`) never changes. A
revision never parks: when re-evaluating would wait for a fact, the decision stands.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from contracts import outbound as out
from contracts.inbound import PrestationEspecesDue
from services.domain.benefits.rules import RuleSet, decide_benefit
from services.domain.registry import Registry
from services.domain.ruleset import outcome_fields, outcome_from, revised_from


def recorded_outcome(event_type: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outcome a recorded decision (wire payload) stands for, as JSON, or None when it
    is not revisable: not a benefit's payment decision, or decided by its date.

    A revision stands for its `apres`: a later fact revises the latest outcome."""
    if event_type == "VersementRevise":
        return dict(payload["apres"])
    if event_type in ("VersementDelegue", "VersementDirect"):
        return outcome_fields(out.ResultatVersement, event_type, payload)
    return None


def outcome_of(event_type: str, payload: Mapping[str, Any]) -> out.ResultatVersement | None:
    """`recorded_outcome` as the contract's model."""
    found = recorded_outcome(event_type, payload)
    return None if found is None else out.ResultatVersement.model_validate(found)


def _outcome(decision: out.VersementDelegue | out.VersementDirect) -> out.ResultatVersement:
    return outcome_from(out.ResultatVersement, decision.event_type, decision.payload)


def revise_benefit(
    b: PrestationEspecesDue,
    current: out.ResultatVersement,
    *,
    decision_revisee_id: UUID,
    registry: Registry,
    rules: RuleSet,
) -> out.VersementRevise | None:
    """The revision of benefit `b`, whose decision `decision_revisee_id` (a decision or a
    revision) stands at `current`, given the registry as known once a new fact is recorded;
    None when the outcome does not change or re-evaluating would park.

    `rules` is the rule set of the decision revised (its `regles_version`)."""
    decided = decide_benefit(b, registry, rules)
    if not isinstance(decided, out.VersementDelegue | out.VersementDirect):
        return None  # parked (the decision stands), or decided by its date (never revised)
    apres = _outcome(decided)
    if apres == current:
        return None
    return out.VersementRevise(
        **revised_from(decided),
        prestation_id=b.prestation_id,
        decision_revisee_id=decision_revisee_id,
        avant=current,
        apres=apres,
        nature=b.nature,
        montant_cents=b.montant_cents,
    )
