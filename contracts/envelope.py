"""The envelope of every message, one class per event type, and the discriminated unions.

``InboundEvent`` and ``OutboundEvent`` are unions discriminated by ``event_type``; each
member pairs a literal ``event_type`` with its typed payload. Field order is the wire
order of ``docs/contract.md``.
"""

from typing import Annotated, Any, Final, Literal, get_args
from uuid import UUID

from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from contracts import inbound as i
from contracts import outbound as o
from contracts.scalars import Code, Instant, WireModel

SCHEMA_VERSION: Final = 1
"""The only schema version of contract v1."""


def _integer(value: object) -> object:
    """Keep ``true`` and ``1.0`` from passing as the integer 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError(
            "int_type", "must be the integer {version}", {"version": SCHEMA_VERSION}
        )
    return value


SchemaVersion = Annotated[Literal[1], BeforeValidator(_integer)]
_WIRE_REQUIRED: Final = ("event_type", "schema_version")


def _wire_required(schema: JsonDict) -> None:
    """On the wire ``event_type`` and ``schema_version`` are required (defaults are for code)."""
    properties = schema["properties"]
    assert isinstance(properties, dict)
    for name in _WIRE_REQUIRED:
        field = properties[name]
        assert isinstance(field, dict)
        field.pop("default", None)
    required = schema.get("required", [])
    assert isinstance(required, list)
    schema["required"] = [n for n in properties if n in required or n in _WIRE_REQUIRED]


class Envelope(WireModel):
    """Fields common to every message. ``event_id`` is the idempotency key.

    ``event_type`` and ``schema_version`` have defaults for code that builds messages, but
    are required on the wire (:func:`.parse_inbound` refuses a message without them).
    """

    model_config = ConfigDict(json_schema_extra=_wire_required)

    event_id: UUID
    event_type: str
    schema_version: SchemaVersion = SCHEMA_VERSION
    occurred_at: Instant
    source: Code
    correlation_id: Code | None = None
    causation_id: Code | None = Field(
        default=None, description="For a decision, the event_id of the input that caused it."
    )
    payload: WireModel


# Inbound


class OrganismeDeclareEvent(Envelope):
    """Message whose payload is a ``OrganismeDeclare``."""

    event_type: Literal["OrganismeDeclare"] = "OrganismeDeclare"
    payload: i.OrganismeDeclare


class ConventionConclueEvent(Envelope):
    """Message whose payload is a ``ConventionConclue``."""

    event_type: Literal["ConventionConclue"] = "ConventionConclue"
    payload: i.ConventionConclue


class ConventionResilieeEvent(Envelope):
    """Message whose payload is a ``ConventionResiliee``."""

    event_type: Literal["ConventionResiliee"] = "ConventionResiliee"
    payload: i.ConventionResiliee


class AffiliationEnregistreeEvent(Envelope):
    """Message whose payload is a ``AffiliationEnregistree``."""

    event_type: Literal["AffiliationEnregistree"] = "AffiliationEnregistree"
    payload: i.AffiliationEnregistree


class CotisationDueEvent(Envelope):
    """Message whose payload is a ``CotisationDue``."""

    event_type: Literal["CotisationDue"] = "CotisationDue"
    payload: i.CotisationDue


class PaiementRecuEvent(Envelope):
    """Message whose payload is a ``PaiementRecu``."""

    event_type: Literal["PaiementRecu"] = "PaiementRecu"
    payload: i.PaiementRecu


class CotisationImpayeeEvent(Envelope):
    """Message whose payload is a ``CotisationImpayee``."""

    event_type: Literal["CotisationImpayee"] = "CotisationImpayee"
    payload: i.CotisationImpayee


class PrestationEspecesDueEvent(Envelope):
    """Message whose payload is a ``PrestationEspecesDue``."""

    event_type: Literal["PrestationEspecesDue"] = "PrestationEspecesDue"
    payload: i.PrestationEspecesDue


# Outbound


class EncaissementDelegueEvent(Envelope):
    """Message whose payload is a ``EncaissementDelegue``."""

    event_type: Literal["EncaissementDelegue"] = "EncaissementDelegue"
    payload: o.EncaissementDelegue


class EncaissementNonDelegueEvent(Envelope):
    """Message whose payload is a ``EncaissementNonDelegue``."""

    event_type: Literal["EncaissementNonDelegue"] = "EncaissementNonDelegue"
    payload: o.EncaissementNonDelegue


class PaiementEncaissePourCompteEvent(Envelope):
    """Message whose payload is a ``PaiementEncaissePourCompte``."""

    event_type: Literal["PaiementEncaissePourCompte"] = "PaiementEncaissePourCompte"
    payload: o.PaiementEncaissePourCompte


class PaiementNonImputeEvent(Envelope):
    """Message whose payload is a ``PaiementNonImpute``."""

    event_type: Literal["PaiementNonImpute"] = "PaiementNonImpute"
    payload: o.PaiementNonImpute


class ContentieuxDelegueEvent(Envelope):
    """Message whose payload is a ``ContentieuxDelegue``."""

    event_type: Literal["ContentieuxDelegue"] = "ContentieuxDelegue"
    payload: o.ContentieuxDelegue


class ContentieuxSansObjetEvent(Envelope):
    """Message whose payload is a ``ContentieuxSansObjet``."""

    event_type: Literal["ContentieuxSansObjet"] = "ContentieuxSansObjet"
    payload: o.ContentieuxSansObjet


class DecisionEnAttenteEvent(Envelope):
    """Message whose payload is a ``DecisionEnAttente``."""

    event_type: Literal["DecisionEnAttente"] = "DecisionEnAttente"
    payload: o.DecisionEnAttente


class VersementDelegueEvent(Envelope):
    """Message whose payload is a ``VersementDelegue``."""

    event_type: Literal["VersementDelegue"] = "VersementDelegue"
    payload: o.VersementDelegue


class VersementDirectEvent(Envelope):
    """Message whose payload is a ``VersementDirect``."""

    event_type: Literal["VersementDirect"] = "VersementDirect"
    payload: o.VersementDirect


class PrestationNonTraiteeEvent(Envelope):
    """Message whose payload is a ``PrestationNonTraitee``."""

    event_type: Literal["PrestationNonTraitee"] = "PrestationNonTraitee"
    payload: o.PrestationNonTraitee


class EncaissementReviseEvent(Envelope):
    """Message whose payload is a ``EncaissementRevise``."""

    event_type: Literal["EncaissementRevise"] = "EncaissementRevise"
    payload: o.EncaissementRevise


class VersementReviseEvent(Envelope):
    """Message whose payload is a ``VersementRevise``."""

    event_type: Literal["VersementRevise"] = "VersementRevise"
    payload: o.VersementRevise


InboundEnvelope = (
    OrganismeDeclareEvent
    | ConventionConclueEvent
    | ConventionResilieeEvent
    | AffiliationEnregistreeEvent
    | CotisationDueEvent
    | PaiementRecuEvent
    | CotisationImpayeeEvent
    | PrestationEspecesDueEvent
)
OutboundEnvelope = (
    EncaissementDelegueEvent
    | EncaissementNonDelegueEvent
    | PaiementEncaissePourCompteEvent
    | PaiementNonImputeEvent
    | ContentieuxDelegueEvent
    | ContentieuxSansObjetEvent
    | DecisionEnAttenteEvent
    | VersementDelegueEvent
    | VersementDirectEvent
    | PrestationNonTraiteeEvent
    | EncaissementReviseEvent
    | VersementReviseEvent
)
InboundEvent = Annotated[InboundEnvelope, Field(discriminator="event_type")]
"""Any inbound message, discriminated by ``event_type``."""
OutboundEvent = Annotated[OutboundEnvelope, Field(discriminator="event_type")]
"""Any outbound decision message, discriminated by ``event_type``."""

INBOUND_ADAPTER: TypeAdapter[InboundEnvelope] = TypeAdapter(InboundEvent)
"""Validates and serialises any inbound message."""
OUTBOUND_ADAPTER: TypeAdapter[OutboundEnvelope] = TypeAdapter(OutboundEvent)
"""Validates and serialises any outbound message."""


def _by_event_type(classes: tuple[type[Envelope], ...]) -> dict[str, Any]:
    return {get_args(c.model_fields["event_type"].annotation)[0]: c for c in classes}


INBOUND_CLASSES: dict[str, type[InboundEnvelope]] = _by_event_type(get_args(InboundEnvelope))
"""Inbound envelope class of each inbound ``event_type``."""
OUTBOUND_CLASSES: dict[str, type[OutboundEnvelope]] = _by_event_type(get_args(OutboundEnvelope))
"""Outbound envelope class of each decision ``event_type``."""
