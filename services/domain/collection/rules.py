"""Alinéa 1 of CSS L611-20 as pure functions: who collects a contribution, and what follows.

No I/O, no clock, no ids: each function takes the input, what the store knew when the input
was decided, and the rule set (dated legal data), and returns a decision. Checks run in the
order of domain.md; the first that fails gives the motif.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from services.domain.kernel.decisions import Decision
from services.domain.registry import Registry, faits_retenus

ENCAISSEMENT = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"


@dataclass(frozen=True, slots=True)
class RuleSet:
    """The legal data alinéa 1 depends on; a correction of the law is a new RuleSet."""

    version: str
    debut_alinea: date
    debut_recouvrement_urssaf: date
    formes_eligibles: frozenset[str]
    base_alinea: str
    base_urssaf: str
    base_interlocuteur_unique: str


RULES_2017 = RuleSet(
    version="al1-2017.1",
    debut_alinea=date(2017, 1, 1),
    debut_recouvrement_urssaf=date(2018, 1, 1),
    formes_eligibles=frozenset({"MUTUELLE", "SOCIETE_ASSURANCE", "GROUPEMENT_SOCIETES_ASSURANCE"}),
    base_alinea="CSS L611-20 al.1 (v. 2017-01-01)",
    base_urssaf="Loi 2015-1702 art.13",
    base_interlocuteur_unique="CSS L133-6-2",
)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What the store knows of a decided contribution, as the follow-up rules need it."""

    cotisation_id: str
    nir: str
    caisse_de_base: str
    montant_cents: int
    organisme_id: str | None  # set when collection was delegated
    paid_cents: int
    faits_retenus: dict[str, Any] | None  # what the delegation relied on


def _common(nir: str, caisse: str | None, bases: list[str], rules: RuleSet) -> dict[str, Any]:
    return {
        "nir": nir,
        "caisse_de_base": caisse,
        "base_legale": bases,
        "regles_version": rules.version,
    }


def decide_contribution(c: Any, registry: Registry, rules: RuleSet = RULES_2017) -> Decision:
    """Who collects a `CotisationDue` (checks 1–7 of alinéa 1, in order)."""
    jour: date = c.periode.debut
    common = _common(c.nir, c.caisse_de_base, [rules.base_alinea], rules)

    def not_delegated(motif: str, recouvreur: str | None, bases: list[str]) -> Decision:
        payload = common | {"base_legale": bases, "cotisation_id": c.cotisation_id}
        return Decision(
            "EncaissementNonDelegue", payload | {"motif": motif, "recouvreur": recouvreur}
        )

    if jour < rules.debut_alinea:
        return not_delegated("PERIODE_ANTERIEURE_A_2017", None, [rules.base_alinea])
    if jour >= rules.debut_recouvrement_urssaf:
        return not_delegated("RECOUVREMENT_URSSAF", "URSSAF", [rules.base_urssaf])
    if c.categorie != "PROFESSION_LIBERALE":
        bases = [rules.base_alinea, rules.base_interlocuteur_unique]
        return not_delegated("CATEGORIE_HORS_CHAMP", "URSSAF", bases)
    affiliation = registry.affiliation_at(c.nir, jour)
    organisme = registry.organismes.get(affiliation.organisme_id) if affiliation else None
    if affiliation is None or organisme is None:
        # an affiliation to an organism not declared yet cannot be judged either: wait
        payload = common | {"sujet_id": c.cotisation_id, "motif": "AFFILIATION_INCONNUE"}
        return Decision("DecisionEnAttente", payload)
    common["faits_retenus"] = faits_retenus(affiliation, organisme, None)
    if organisme.forme_juridique not in rules.formes_eligibles:
        return not_delegated("ORGANISME_INELIGIBLE", "CAISSE_DE_BASE", [rules.base_alinea])
    convention = registry.convention_for(
        organisme.organisme_id, ENCAISSEMENT, c.caisse_de_base, jour
    )
    if convention is None:
        return not_delegated("AUCUNE_CONVENTION", "CAISSE_DE_BASE", [rules.base_alinea])
    common["faits_retenus"] = faits_retenus(affiliation, organisme, convention)
    payload = common | {
        "cotisation_id": c.cotisation_id,
        "organisme_id": organisme.organisme_id,
        "convention_id": convention.convention_id,
        "montant_cents": c.montant_cents,
    }
    return Decision("EncaissementDelegue", payload)


def decide_payment(p: Any, known: Contribution | None, rules: RuleSet = RULES_2017) -> Decision:
    """What a `PaiementRecu` means: held for the caisse by the OC, not ours, or parked."""
    if known is None:
        payload = _common(p.nir, None, [rules.base_alinea], rules)
        return Decision(
            "DecisionEnAttente",
            payload | {"sujet_id": p.paiement_id, "motif": "COTISATION_INCONNUE"},
        )
    common = _common(known.nir, known.caisse_de_base, [rules.base_alinea], rules)
    common |= {"cotisation_id": known.cotisation_id, "paiement_id": p.paiement_id}
    if known.organisme_id is None:
        return Decision("PaiementNonImpute", common | {"motif": "NON_DELEGUE"})
    solde = known.montant_cents - known.paid_cents - p.montant_cents
    return Decision(
        "PaiementEncaissePourCompte",
        common
        | {
            "organisme_id": known.organisme_id,
            "montant_cents": p.montant_cents,
            "solde_restant_cents": solde,
            "faits_retenus": known.faits_retenus,
        },
    )


def decide_unpaid(i: Any, known: Contribution | None, rules: RuleSet = RULES_2017) -> Decision:
    """What a `CotisationImpayee` means: litigation by the OC, nothing to do, or parked."""
    if known is None:
        payload = _common(i.nir, None, [rules.base_alinea], rules)
        return Decision(
            "DecisionEnAttente",
            payload | {"sujet_id": i.cotisation_id, "motif": "COTISATION_INCONNUE"},
        )
    common = _common(known.nir, known.caisse_de_base, [rules.base_alinea], rules)
    common["cotisation_id"] = known.cotisation_id
    if known.organisme_id is None:
        return Decision("ContentieuxSansObjet", common | {"motif": "NON_DELEGUE"})
    solde = known.montant_cents - known.paid_cents
    if solde <= 0:
        return Decision("ContentieuxSansObjet", common | {"motif": "SOLDE_NUL"})
    return Decision(
        "ContentieuxDelegue",
        common
        | {
            "organisme_id": known.organisme_id,
            "restant_du_cents": solde,
            "faits_retenus": known.faits_retenus,
        },
    )
