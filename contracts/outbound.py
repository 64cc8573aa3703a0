"""Outbound payloads of contract v1: the decisions of the collection and benefits services.

Every decision carries ``nir``, ``caisse_de_base``, ``base_legale`` (the legal texts it
applies) and ``regles_version`` (the rule-set version), plus ``faits_retenus``: the registry
facts the decision relied on (see :class:`FaitsRetenus`). ``faits_retenus`` is an additive
v1 field, optional and null when no registry fact was used (e.g. a period before 2017).
"""

from typing import Any

from contracts.enums import (
    FormeJuridique,
    ModeAffiliation,
    Motif,
    Nature,
    ObjetConvention,
    Recouvreur,
)
from contracts.nir import Nir
from contracts.scalars import Cents, Code, IsoDate, SignedCents, Textes, WireModel


class AffiliationRetenue(WireModel):
    """The affiliation in force at the reference date."""

    organisme_id: Code
    mode: ModeAffiliation
    effet_du: IsoDate


class OrganismeRetenu(WireModel):
    """The organism of that affiliation, as declared."""

    organisme_id: Code
    forme_juridique: FormeJuridique


class ConventionRetenue(WireModel):
    """The convention found in force at the reference date for the caisse de base."""

    convention_id: Code
    objet: ObjetConvention
    effet_du: IsoDate
    effet_au: IsoDate | None = None


class FaitsRetenus(WireModel):
    """Registry facts a decision relied on (additive in v1; each part null when unused)."""

    affiliation: AffiliationRetenue | None = None
    organisme: OrganismeRetenu | None = None
    convention: ConventionRetenue | None = None


class Decision(WireModel):
    """Fields common to every decision."""

    nir: Nir
    caisse_de_base: Code
    base_legale: Textes
    regles_version: Code
    faits_retenus: FaitsRetenus | None = None

    @property
    def event_type(self) -> str:
        """The decision's event type on the wire: the name of its model."""
        return type(self).__name__

    @property
    def payload(self) -> dict[str, Any]:
        """The payload as recorded and published: the fields the rules gave, in JSON form
        (a field left at its default, such as ``faits_retenus`` when no registry fact was
        used, is not written)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def parked(self) -> bool:
        """Whether this is the notice that the input waits for a missing fact."""
        return isinstance(self, DecisionEnAttente)


# Collection (alinéa 1) -- rsi.reglements.cotisations.v1


class EncaissementDelegue(Decision):
    """The collection of the contribution is entrusted to the organism under the convention."""

    cotisation_id: Code
    organisme_id: Code
    convention_id: Code
    montant_cents: Cents


class EncaissementNonDelegue(Decision):
    """The contribution is not delegated; ``recouvreur`` collects it (null before 2017)."""

    cotisation_id: Code
    motif: Motif
    recouvreur: Recouvreur | None


class PaiementEncaissePourCompte(Decision):
    """The organism holds the payment for the caisse de base (a reversement is owed).

    ``solde_restant_cents`` = amount due - all payments so far; negative when overpaid.
    """

    cotisation_id: Code
    paiement_id: Code
    organisme_id: Code
    montant_cents: Cents
    solde_restant_cents: SignedCents


class PaiementNonImpute(Decision):
    """A payment on a contribution that is not delegated is not booked by an organism."""

    cotisation_id: Code
    paiement_id: Code
    motif: Motif


class ContentieuxDelegue(Decision):
    """The recovery litigation of an unpaid delegated contribution goes to the organism."""

    cotisation_id: Code
    organisme_id: Code
    restant_du_cents: Cents


class ContentieuxSansObjet(Decision):
    """No litigation is opened (nothing left to recover, or contribution not delegated)."""

    cotisation_id: Code
    motif: Motif


class DecisionEnAttente(Decision):
    """An input is parked until a missing fact arrives (both decision topics).

    ``sujet_id`` is the parked input's id: its ``cotisation_id``, ``paiement_id`` (payment)
    or ``prestation_id``.
    """

    caisse_de_base: Code | None  # type: ignore[assignment]
    """Null only when it cannot be known yet: a payment parked before its contribution."""
    sujet_id: Code
    motif: Motif


# Benefits (alinéa 2) -- rsi.reglements.prestations.v1


class VersementDelegue(Decision):
    """The organism pays the cash benefit on behalf of the caisse de base."""

    prestation_id: Code
    organisme_id: Code
    convention_id: Code
    nature: Nature
    montant_cents: Cents


class VersementDirect(Decision):
    """The caisse de base pays the cash benefit itself (not a refusal: alinéa 2 is optional)."""

    prestation_id: Code
    nature: Nature
    montant_cents: Cents
    motif: Motif


class PrestationNonTraitee(Decision):
    """The benefit is outside what this system decides (e.g. before 2017)."""

    prestation_id: Code
    motif: Motif


OutboundPayload = (
    EncaissementDelegue
    | EncaissementNonDelegue
    | PaiementEncaissePourCompte
    | PaiementNonImpute
    | ContentieuxDelegue
    | ContentieuxSansObjet
    | DecisionEnAttente
    | VersementDelegue
    | VersementDirect
    | PrestationNonTraitee
)
"""Any decision payload model."""
