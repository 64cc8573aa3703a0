"""Revisions of alinéa 1: a registry fact recorded later changes who collects a contribution
already decided (domain.md, "Revisions").

Pure functions, like the rules they re-use: no I/O, no clock, no ids. The caller (the
processor, once the decision state can find the decisions a fact may change) gives the
recorded `CotisationDue`, the outcome its decision stands at (the decision's, or its latest
revision's), the registry as known once the new fact is recorded, the rule set of the
decision revised, and the outgoing organism's tenure; it gets the revision to record, or
None when nothing changes.

Only outcomes that came from the registry are revised (checks 4–7); the same rule set and
the same reference date give the same answer for checks 1–3, so a contribution decided by
its dates or its category never changes. A revision never parks: when re-evaluating would
wait for a fact (an affiliation to an organism not declared yet), the decision stands and
is revised when that fact arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from contracts import outbound as out
from contracts.enums import Motif
from contracts.inbound import CotisationDue
from services.domain.collection.rules import Contribution, RuleSet, decide_contribution
from services.domain.registry import Registry
from services.domain.ruleset import outcome_fields, outcome_from, revised_from

REVISABLE_MOTIFS = frozenset({Motif.ORGANISME_INELIGIBLE.value, Motif.AUCUNE_CONVENTION.value})
"""The motifs of a contribution not delegated on the registry's word (checks 5 and 6); the
others (checks 1–3) come from its dates and category, which no registry fact changes."""


@dataclass(frozen=True, slots=True)
class Tenure:
    """What the outgoing organism did for the caisse de base in its tenure (since it took
    the contribution over; a revision that only changed its convention does not end it):
    the payments it booked (and must pay over), and whether it took the litigation."""

    deja_encaisse_cents: int = 0
    contentieux_transfere: bool = False


NO_TENURE = Tenure()
"""An organism that booked nothing and took no litigation (or no organism at all)."""


def recorded_outcome(event_type: str, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The outcome a recorded decision (wire payload) stands for, as JSON, or None when it
    is not revisable: not a contribution's decision, or decided by its dates or category.

    A revision stands for its `apres`: a later fact revises the latest outcome."""
    if event_type == "EncaissementRevise":
        return dict(payload["apres"])
    if event_type == "EncaissementDelegue" or (
        event_type == "EncaissementNonDelegue" and payload["motif"] in REVISABLE_MOTIFS
    ):
        return outcome_fields(out.ResultatEncaissement, event_type, payload)
    return None


def outcome_of(event_type: str, payload: Mapping[str, Any]) -> out.ResultatEncaissement | None:
    """`recorded_outcome` as the contract's model."""
    found = recorded_outcome(event_type, payload)
    return None if found is None else out.ResultatEncaissement.model_validate(found)


def _outcome(
    decision: out.EncaissementDelegue | out.EncaissementNonDelegue,
) -> out.ResultatEncaissement:
    return outcome_from(out.ResultatEncaissement, decision.event_type, decision.payload)


def revisable(current: out.ResultatEncaissement) -> bool:
    """Whether this outcome came from the registry (checks 5–7), so a later fact may change it."""
    return current.delegated or current.motif in REVISABLE_MOTIFS


def organism_leaves(avant: out.ResultatEncaissement, apres: out.ResultatEncaissement) -> bool:
    """Whether the organism that collected stops collecting; not when only its convention
    changes (it keeps collecting), nor when no organism collected."""
    return avant.delegated and avant.organisme_id != apres.organisme_id


def revise_contribution(
    c: CotisationDue,
    current: out.ResultatEncaissement,
    *,
    decision_revisee_id: UUID,
    registry: Registry,
    rules: RuleSet,
    tenure: Tenure = NO_TENURE,
) -> out.EncaissementRevise | None:
    """The revision of contribution `c`, whose decision `decision_revisee_id` (a decision or
    a revision) stands at `current`, given the registry as known once a new fact is
    recorded; None when the outcome does not change, is not revisable, or would park.

    `rules` is the rule set of the decision revised (its `regles_version`); `tenure` is the
    outgoing organism's (see :class:`Tenure`), kept only if it leaves.
    """
    if not revisable(current):
        return None
    decided = decide_contribution(c, registry, rules)
    if not isinstance(decided, out.EncaissementDelegue | out.EncaissementNonDelegue):
        return None  # parked: the decision stands until the missing fact arrives
    apres = _outcome(decided)
    if apres == current:
        return None
    kept = tenure if organism_leaves(current, apres) else NO_TENURE
    return out.EncaissementRevise(
        **revised_from(decided),
        cotisation_id=c.cotisation_id,
        decision_revisee_id=decision_revisee_id,
        avant=current,
        apres=apres,
        deja_encaisse_cents=kept.deja_encaisse_cents,
        contentieux_transfere=kept.contentieux_transfere,
    )


def tenure_of(organisme_id: str, since: Iterable[tuple[str, Mapping[str, Any]]]) -> Tenure:
    """The tenure of `organisme_id` from the decisions recorded on one contribution since it
    took the contribution over, as (event_type, wire payload), in any order: the sum of the
    payments it booked (`PaiementEncaissePourCompte`) and whether litigation went to it
    (`ContentieuxDelegue`). Starting where its tenure starts is what keeps A → B → A → B from
    counting a payment twice; decisions naming another organism are not its own. (The
    services keep the same figures as they fold: `ContributionState.held_cents`.)"""
    held = 0
    litigation = False
    for event_type, payload in since:
        if payload.get("organisme_id") != organisme_id:
            continue
        if event_type == "PaiementEncaissePourCompte":
            held += payload["montant_cents"]
        elif event_type == "ContentieuxDelegue":
            litigation = True
    return Tenure(deja_encaisse_cents=held, contentieux_transfere=litigation)


def after_revision(known: Contribution, revision: out.EncaissementRevise) -> Contribution:
    """The contribution as its follow-ups see it once revised: collected by the new organism
    (or by none), relying on the revision's facts. Its payments stay counted, whoever
    received them: the balance is due − every payment recorded."""
    if revision.apres.delegated:
        faits = revision.payload.get("faits_retenus")
        return replace(known, organisme_id=revision.apres.organisme_id, faits_retenus=faits)
    return replace(known, organisme_id=None, faits_retenus=None)
