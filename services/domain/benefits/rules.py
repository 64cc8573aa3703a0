"""Alinéa 2 of CSS L611-20 as a pure function: who pays a cash benefit.

The Caisse nationale *may* entrust the payment to an organism by convention: a benefit is
paid by the insured's organism when it holds a convention for cash benefits in force at the
benefit's `fait_generateur_le` listing the caisse de base, and by the caisse de base itself
otherwise (not a refusal: alinéa 2 is optional).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.domain.kernel.decisions import Decision
from services.domain.registry import Registry, faits_retenus

VERSEMENT = "VERSEMENT_PRESTATIONS_ESPECES"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The legal data alinéa 2 depends on; a correction of the law is a new RuleSet."""

    version: str
    debut_alinea: date
    base_alinea: str
    base_organismes: str


RULES_2017 = RuleSet(
    version="al2-2017.1",
    debut_alinea=date(2017, 1, 1),
    base_alinea="CSS L611-20 al.2 (v. 2017-01-01)",
    base_organismes="CSS L160-17 al.3",
)


def decide_benefit(b: Any, registry: Registry, rules: RuleSet = RULES_2017) -> Decision:
    """Who pays a `PrestationEspecesDue` (checks of alinéa 2, in order)."""
    jour: date = b.fait_generateur_le
    common: dict[str, Any] = {
        "nir": b.nir,
        "caisse_de_base": b.caisse_de_base,
        "base_legale": [rules.base_alinea],
        "regles_version": rules.version,
        "prestation_id": b.prestation_id,
    }
    # every L611-1 category (artisans, commerçants, professions libérales) is in scope
    if jour < rules.debut_alinea:
        return Decision("PrestationNonTraitee", common | {"motif": "PERIODE_ANTERIEURE_A_2017"})
    affiliation = registry.affiliation_at(b.nir, jour)
    organisme = registry.organismes.get(affiliation.organisme_id) if affiliation else None
    if affiliation is None or organisme is None:
        waiting = {k: v for k, v in common.items() if k != "prestation_id"}
        return Decision(
            "DecisionEnAttente",
            waiting | {"sujet_id": b.prestation_id, "motif": "AFFILIATION_INCONNUE"},
        )
    convention = registry.convention_for(organisme.organisme_id, VERSEMENT, b.caisse_de_base, jour)
    amounts = {"nature": b.nature, "montant_cents": b.montant_cents}
    if convention is None:
        return Decision(
            "VersementDirect",
            common
            | amounts
            | {
                "motif": "AUCUNE_CONVENTION",
                "faits_retenus": faits_retenus(affiliation, organisme, None),
            },
        )
    return Decision(
        "VersementDelegue",
        common
        | amounts
        | {
            "base_legale": [rules.base_alinea, rules.base_organismes],
            "organisme_id": organisme.organisme_id,
            "convention_id": convention.convention_id,
            "faits_retenus": faits_retenus(affiliation, organisme, convention),
        },
    )
