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

from contracts import outbound as out
from contracts.enums import Motif
from contracts.inbound import PrestationEspecesDue
from services.domain import ruleset
from services.domain.registry import Registry, faits_retenus
from services.domain.ruleset import common

VERSEMENT = "VERSEMENT_PRESTATIONS_ESPECES"


@dataclass(frozen=True, slots=True)
class RuleSet(ruleset.RuleSet):
    """The legal data alinéa 2 depends on; a correction of the law is a new RuleSet."""

    base_organismes: str


RULES_2017 = RuleSet(
    version="al2-2017.1",
    debut_alinea=date(2017, 1, 1),
    base_alinea="CSS L611-20 al.2 (v. 2017-01-01)",
    base_organismes="CSS L160-17 al.3",
)


BenefitsDecision = (
    out.VersementDelegue | out.VersementDirect | out.PrestationNonTraitee | out.DecisionEnAttente
)
"""What the rules of alinéa 2 decide: the outbound models of the benefits topic."""


def decide_benefit(
    b: PrestationEspecesDue, registry: Registry, rules: RuleSet = RULES_2017
) -> BenefitsDecision:
    """Who pays a `PrestationEspecesDue` (checks of alinéa 2, in order)."""
    jour: date = b.fait_generateur_le
    fields = common(b.nir, b.caisse_de_base, [rules.base_alinea], rules)
    # every L611-1 category (artisans, commerçants, professions libérales) is in scope
    if jour < rules.debut_alinea:
        return out.PrestationNonTraitee(
            **fields, prestation_id=b.prestation_id, motif=Motif.PERIODE_ANTERIEURE_A_2017
        )
    affiliation = registry.affiliation_at(b.nir, jour)
    organisme = registry.organismes.get(affiliation.organisme_id) if affiliation else None
    if affiliation is None or organisme is None:
        return out.DecisionEnAttente(
            **fields, sujet_id=b.prestation_id, motif=Motif.AFFILIATION_INCONNUE
        )
    convention = registry.convention_for(organisme.organisme_id, VERSEMENT, b.caisse_de_base, jour)
    # a payment, direct or delegated, restates the benefit it pays
    benefit: dict[str, Any] = {
        "prestation_id": b.prestation_id,
        "nature": b.nature,
        "montant_cents": b.montant_cents,
    }
    if convention is None:
        return out.VersementDirect(
            **fields,
            **benefit,
            motif=Motif.AUCUNE_CONVENTION,
            faits_retenus=faits_retenus(affiliation, organisme, None),
        )
    return out.VersementDelegue(
        **common(b.nir, b.caisse_de_base, [rules.base_alinea, rules.base_organismes], rules),
        **benefit,
        organisme_id=organisme.organisme_id,
        convention_id=convention.convention_id,
        faits_retenus=faits_retenus(affiliation, organisme, convention),
    )
