"""Outbound payloads of contract v1: the decisions of the collection and benefits services.

Every decision carries ``nir``, ``caisse_de_base``, ``base_legale`` (the legal texts it
applies) and ``regles_version`` (the rule-set version), plus ``faits_retenus``: the registry
facts the decision relied on (see :class:`FaitsRetenus`). ``faits_retenus`` is an additive
v1 field, optional and null when no registry fact was used (e.g. a period before 2017).

A revision (:class:`EncaissementRevise`, :class:`VersementRevise`, additive in v1) says that
a registry fact recorded later changed the outcome of a decision already taken: it names the
decision it supersedes and the outcome before and after (:class:`ResultatEncaissement`,
:class:`ResultatVersement`); the decision itself stays in the record.
"""

from typing import Annotated, Any, ClassVar, Literal, Self
from uuid import UUID

from pydantic import Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from contracts.enums import (
    FormeJuridique,
    ModeAffiliation,
    Motif,
    Nature,
    ObjetConvention,
    Recouvreur,
)
from contracts.limits import SUM_MAX
from contracts.nir import Nir
from contracts.scalars import Cents, Code, IsoDate, SignedCents, Textes, WireModel

TotalCents = Annotated[int, Strict(), Field(ge=0, le=SUM_MAX)]
"""A sum of amounts in euro cents that cannot be negative (money held): 0 to 10¹⁵."""
Flag = Annotated[bool, Strict()]
"""A JSON boolean: ``true`` or ``false`` only (not ``1``, not ``"true"``)."""


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


# Revisions (both topics): a later registry fact changed an earlier outcome


def _outcome_error(what: str) -> PydanticCustomError:
    return PydanticCustomError("outcome_fields", what)


class _Resultat(WireModel):
    """An outcome as a revision compares it: delegated to ``organisme_id`` under
    ``convention_id`` (the event type ``DELEGATED``), or not for ``motif``. Its subclasses
    name the event types of one service and keep these fields in this order on the wire."""

    DELEGATED: ClassVar[str]

    event_type: str
    organisme_id: Code | None
    convention_id: Code | None
    motif: Motif | None

    @property
    def delegated(self) -> bool:
        return self.event_type == self.DELEGATED

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """An outcome names an organism and a convention when delegated, a motif otherwise."""
        named = (self.organisme_id is not None, self.convention_id is not None)
        if self.delegated and (not all(named) or self.motif is not None):
            raise _outcome_error("a delegated outcome has organisme_id and convention_id, no motif")
        if not self.delegated and (any(named) or self.motif is None):
            raise _outcome_error("an outcome not delegated has a motif, no organism nor convention")
        return self


class ResultatEncaissement(_Resultat):
    """Who collects a contribution, as a revision compares it (fields null where they do not
    apply): delegated to ``organisme_id`` under ``convention_id``, or not delegated for
    ``motif``, collected by ``recouvreur``. Every field is always present on the wire."""

    DELEGATED: ClassVar[str] = "EncaissementDelegue"

    event_type: Literal["EncaissementDelegue", "EncaissementNonDelegue"]
    recouvreur: Recouvreur | None

    @model_validator(mode="after")
    def _no_recouvreur_when_delegated(self) -> Self:
        if self.delegated and self.recouvreur is not None:
            raise _outcome_error("a delegated outcome has no recouvreur")
        return self


class ResultatVersement(_Resultat):
    """Who pays a cash benefit, as a revision compares it: the organism under
    ``convention_id`` (``VersementDelegue``), or the caisse de base itself for ``motif``
    (``VersementDirect``). Every field is always present on the wire."""

    DELEGATED: ClassVar[str] = "VersementDelegue"

    event_type: Literal["VersementDelegue", "VersementDirect"]


def _changes_the_outcome(revision: "EncaissementRevise | VersementRevise") -> Any:
    """A revision's validator: it changes the outcome (``avant`` and ``apres`` differ)."""
    if revision.avant == revision.apres:
        raise _outcome_error("a revision changes the outcome: avant and apres are equal")
    return revision


class EncaissementRevise(Decision):
    """A later registry fact changed who collects the contribution: ``apres`` supersedes
    ``avant``, the outcome of the decision (or revision) ``decision_revisee_id``.

    ``deja_encaisse_cents`` is what the outgoing organism booked for the caisse de base in its
    tenure (its ``PaiementEncaissePourCompte`` since it took the contribution over), which it must
    pay over and no longer collects; ``contentieux_transfere`` says whether litigation had
    been entrusted to it in that tenure. Both are 0 / false when no organism leaves (the
    outcome before was not delegated, or only the convention changes).
    """

    cotisation_id: Code
    decision_revisee_id: UUID
    avant: ResultatEncaissement
    apres: ResultatEncaissement
    deja_encaisse_cents: TotalCents
    contentieux_transfere: Flag

    _a_change = model_validator(mode="after")(_changes_the_outcome)

    @model_validator(mode="after")
    def _tenure(self) -> Self:
        leaving = self.avant.delegated and self.avant.organisme_id != self.apres.organisme_id
        if not leaving and (self.deja_encaisse_cents or self.contentieux_transfere):
            raise PydanticCustomError(
                "tenure_without_change",
                "deja_encaisse_cents and contentieux_transfere are 0 / false when no "
                "organism leaves",
            )
        return self


class VersementRevise(Decision):
    """A later registry fact changed who pays the cash benefit: ``apres`` supersedes
    ``avant``, the outcome of the decision (or revision) ``decision_revisee_id``."""

    prestation_id: Code
    decision_revisee_id: UUID
    avant: ResultatVersement
    apres: ResultatVersement
    nature: Nature
    montant_cents: Cents

    _a_change = model_validator(mode="after")(_changes_the_outcome)


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
    | EncaissementRevise
    | VersementRevise
)
"""Any decision payload model."""
