"""Alinéa 1 of CSS L611-20 as pure functions: who collects a contribution, and what follows.

No I/O, no clock, no ids: each function takes the input, what the store knew when the input
was decided, and the rule set (dated legal data), and returns a decision. Checks run in the
order of domain.md; the first that fails gives the motif.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any

from contracts import outbound as out
from contracts.enums import Motif, Recouvreur
from contracts.inbound import CotisationDue, CotisationImpayee, PaiementRecu
from services.domain import ruleset
from services.domain.registry import Registry, faits_retenus
from services.domain.ruleset import Common, common

ENCAISSEMENT = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"


@dataclass(frozen=True, slots=True)
class RuleSet(ruleset.RuleSet):
    """The legal data alinéa 1 depends on; a correction of the law is a new RuleSet."""

    debut_recouvrement_urssaf: date
    formes_eligibles: frozenset[str]
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
    """What the store knows of a recorded contribution, as the follow-up rules need it."""

    cotisation_id: str
    nir: str
    caisse_de_base: str
    montant_cents: int
    organisme_id: str | None  # set when collection was delegated
    paid_cents: int
    faits_retenus: dict[str, Any] | None  # what the delegation relied on
    decided: bool = True  # False while the contribution itself waits for its affiliation


def _waiting(
    nir: str, caisse: str | None, sujet_id: str, motif: Motif, rules: RuleSet
) -> out.DecisionEnAttente:
    return out.DecisionEnAttente(
        nir=nir,
        caisse_de_base=caisse,
        base_legale=[rules.base_alinea],
        regles_version=rules.version,
        sujet_id=sujet_id,
        motif=motif,
    )


CollectionDecision = (
    out.EncaissementDelegue
    | out.EncaissementNonDelegue
    | out.PaiementEncaissePourCompte
    | out.PaiementNonImpute
    | out.ContentieuxDelegue
    | out.ContentieuxSansObjet
    | out.DecisionEnAttente
)
"""What the rules of alinéa 1 decide: the outbound models of the collection topic."""


def decide_contribution(
    c: CotisationDue, registry: Registry, rules: RuleSet = RULES_2017
) -> CollectionDecision:
    """Who collects a `CotisationDue` (checks 1–7 of alinéa 1, in order)."""
    jour: date = c.periode.debut

    def not_delegated(
        motif: Motif, recouvreur: Recouvreur | None, bases: list[str]
    ) -> out.EncaissementNonDelegue:
        return out.EncaissementNonDelegue(
            **common(c.nir, c.caisse_de_base, bases, rules),
            cotisation_id=c.cotisation_id,
            motif=motif,
            recouvreur=recouvreur,
        )

    if jour < rules.debut_alinea:
        return not_delegated(Motif.PERIODE_ANTERIEURE_A_2017, None, [rules.base_alinea])
    if jour >= rules.debut_recouvrement_urssaf:
        return not_delegated(Motif.RECOUVREMENT_URSSAF, Recouvreur.URSSAF, [rules.base_urssaf])
    if c.categorie != "PROFESSION_LIBERALE":
        bases = [rules.base_alinea, rules.base_interlocuteur_unique]
        return not_delegated(Motif.CATEGORIE_HORS_CHAMP, Recouvreur.URSSAF, bases)
    affiliation = registry.affiliation_at(c.nir, jour)
    organisme = registry.organismes.get(affiliation.organisme_id) if affiliation else None
    if affiliation is None or organisme is None:
        # an affiliation to an organism not declared yet cannot be judged either: wait
        return _waiting(c.nir, c.caisse_de_base, c.cotisation_id, Motif.AFFILIATION_INCONNUE, rules)
    if organisme.forme_juridique not in rules.formes_eligibles:
        return out.EncaissementNonDelegue(
            **common(c.nir, c.caisse_de_base, [rules.base_alinea], rules),
            faits_retenus=faits_retenus(affiliation, organisme, None),
            cotisation_id=c.cotisation_id,
            motif=Motif.ORGANISME_INELIGIBLE,
            recouvreur=Recouvreur.CAISSE_DE_BASE,
        )
    convention = registry.convention_for(
        organisme.organisme_id, ENCAISSEMENT, c.caisse_de_base, jour
    )
    if convention is None:
        return out.EncaissementNonDelegue(
            **common(c.nir, c.caisse_de_base, [rules.base_alinea], rules),
            faits_retenus=faits_retenus(affiliation, organisme, None),
            cotisation_id=c.cotisation_id,
            motif=Motif.AUCUNE_CONVENTION,
            recouvreur=Recouvreur.CAISSE_DE_BASE,
        )
    return out.EncaissementDelegue(
        **common(c.nir, c.caisse_de_base, [rules.base_alinea], rules),
        faits_retenus=faits_retenus(affiliation, organisme, convention),
        cotisation_id=c.cotisation_id,
        organisme_id=organisme.organisme_id,
        convention_id=convention.convention_id,
        montant_cents=c.montant_cents,
    )


def _follow_up(
    known: Contribution | None,
    nir: str,
    sujet_id: str,
    rules: RuleSet,
    decide: Callable[[Contribution, Common], CollectionDecision],
) -> CollectionDecision:
    """A follow-up of a contribution (a payment, an unpaid notice) waits while the
    contribution is unknown or not decided yet; else `decide` judges it on the contribution
    as decided, with the common fields of the decision."""
    if known is None:
        return _waiting(nir, None, sujet_id, Motif.COTISATION_INCONNUE, rules)
    if not known.decided:
        return _waiting(nir, known.caisse_de_base, sujet_id, Motif.AFFILIATION_INCONNUE, rules)
    return decide(known, common(known.nir, known.caisse_de_base, [rules.base_alinea], rules))


def _payment(p: PaiementRecu, known: Contribution, common: Common) -> CollectionDecision:
    if known.organisme_id is None:
        return out.PaiementNonImpute(
            **common,
            cotisation_id=known.cotisation_id,
            paiement_id=p.paiement_id,
            motif=Motif.NON_DELEGUE,
        )
    return out.PaiementEncaissePourCompte(
        **common,
        faits_retenus=known.faits_retenus,
        cotisation_id=known.cotisation_id,
        paiement_id=p.paiement_id,
        organisme_id=known.organisme_id,
        montant_cents=p.montant_cents,
        solde_restant_cents=known.montant_cents - known.paid_cents - p.montant_cents,
    )


def decide_payment(
    p: PaiementRecu, known: Contribution | None, rules: RuleSet = RULES_2017
) -> CollectionDecision:
    """What a `PaiementRecu` means: held for the caisse by the OC, not ours, or parked."""
    return _follow_up(known, p.nir, p.paiement_id, rules, partial(_payment, p))


def _unpaid(i: CotisationImpayee, known: Contribution, common: Common) -> CollectionDecision:
    if known.organisme_id is None:
        return out.ContentieuxSansObjet(
            **common, cotisation_id=known.cotisation_id, motif=Motif.NON_DELEGUE
        )
    solde = known.montant_cents - known.paid_cents
    if solde <= 0:
        return out.ContentieuxSansObjet(
            **common, cotisation_id=known.cotisation_id, motif=Motif.SOLDE_NUL
        )
    return out.ContentieuxDelegue(
        **common,
        faits_retenus=known.faits_retenus,
        cotisation_id=known.cotisation_id,
        organisme_id=known.organisme_id,
        restant_du_cents=solde,
    )


def decide_unpaid(
    i: CotisationImpayee, known: Contribution | None, rules: RuleSet = RULES_2017
) -> CollectionDecision:
    """What a `CotisationImpayee` means: litigation by the OC, nothing to do, or parked."""
    return _follow_up(known, i.nir, i.cotisation_id, rules, partial(_unpaid, i))
