"""Inbound payloads of contract v1: registry facts, contributions, payments, benefits.

Field names and values are those of ``docs/contract.md``; amounts are positive integers in
euro cents, dates are ``YYYY-MM-DD``. Unknown extra fields are ignored.
"""

from datetime import date

from pydantic import ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from contracts.enums import (
    Categorie,
    FormeJuridique,
    ModeAffiliation,
    Nature,
    ObjetConvention,
)
from contracts.nir import Nir
from contracts.scalars import Cents, Code, Codes, IsoDate, Texte, WireModel


def _not_before(later: date | None, info: ValidationInfo, earlier_name: str) -> date | None:
    """Refuse ``later`` < the already-validated field ``earlier_name`` (bounds inclusive)."""
    earlier = info.data.get(earlier_name)
    if later is not None and isinstance(earlier, date) and later < earlier:
        raise PydanticCustomError(
            "date_order",
            "{name} {later} is before {earlier_name} {earlier}",
            {
                "name": info.field_name,
                "later": later.isoformat(),
                "earlier_name": earlier_name,
                "earlier": earlier.isoformat(),
            },
        )
    return later


class Periode(WireModel):
    """A period of dates, both bounds inclusive, ``debut`` <= ``fin``."""

    debut: IsoDate
    fin: IsoDate

    @field_validator("fin")
    @classmethod
    def _fin_not_before_debut(cls, fin: date, info: ValidationInfo) -> date:
        _not_before(fin, info, "debut")
        return fin


class OrganismeDeclare(WireModel):
    """An organism is declared to the registry with its legal form."""

    organisme_id: Code
    nom: Texte
    forme_juridique: FormeJuridique


class ConventionConclue(WireModel):
    """The Caisse nationale concluded a convention with an organism.

    In force from ``effet_du`` to ``effet_au`` (inclusive; open-ended when null) for the
    listed caisses de base.
    """

    convention_id: Code
    organisme_id: Code
    objet: ObjetConvention
    caisses_de_base: Codes
    effet_du: IsoDate
    effet_au: IsoDate | None = None

    @field_validator("effet_au")
    @classmethod
    def _effet_au_not_before_effet_du(
        cls, effet_au: date | None, info: ValidationInfo
    ) -> date | None:
        return _not_before(effet_au, info, "effet_du")


class ConventionResiliee(WireModel):
    """A convention is terminated: its last day in force is ``effet_au``."""

    convention_id: Code
    effet_au: IsoDate


class AffiliationEnregistree(WireModel):
    """An insured person is attached to an organism from ``effet_du``."""

    nir: Nir
    organisme_id: Code
    mode: ModeAffiliation
    effet_du: IsoDate


class CotisationDue(WireModel):
    """A contribution is due for a period; its reference date is ``periode.debut``."""

    cotisation_id: Code
    nir: Nir
    categorie: Categorie
    caisse_de_base: Code
    periode: Periode
    montant_cents: Cents
    exigible_le: IsoDate


class PaiementRecu(WireModel):
    """A payment towards a contribution was received."""

    paiement_id: Code
    cotisation_id: Code
    nir: Nir
    montant_cents: Cents
    recu_le: IsoDate


class CotisationImpayee(WireModel):
    """A contribution is found unpaid: ``restant_du_cents`` is still owed."""

    cotisation_id: Code
    nir: Nir
    restant_du_cents: Cents
    constatee_le: IsoDate


class PrestationEspecesDue(WireModel):
    """A cash benefit is due; its reference date is ``fait_generateur_le``."""

    prestation_id: Code
    nir: Nir
    categorie: Categorie
    caisse_de_base: Code
    nature: Nature
    fait_generateur_le: IsoDate
    periode: Periode | None = None
    montant_cents: Cents


InboundPayload = (
    OrganismeDeclare
    | ConventionConclue
    | ConventionResiliee
    | AffiliationEnregistree
    | CotisationDue
    | PaiementRecu
    | CotisationImpayee
    | PrestationEspecesDue
)
"""Any inbound payload model."""
