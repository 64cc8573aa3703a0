"""Bytes in, typed events out (and back): the only door through which messages enter.

:func:`parse_inbound` and :func:`parse_outbound` turn a Kafka message value into a typed
envelope or raise :class:`ContractError` -- and nothing else, whatever the bytes -- with a
one-line reason naming the field (``payload.periode.fin: ...``). :func:`to_wire` is their
inverse: compact UTF-8 JSON, ISO dates, fields in contract order, deterministic.
"""

from collections.abc import Mapping
from typing import Any, Final, cast

from pydantic import ValidationError
from pydantic_core import ErrorDetails, from_json

from contracts.envelope import (
    INBOUND_CLASSES,
    OUTBOUND_CLASSES,
    Envelope,
    InboundEnvelope,
    InboundEvent,
    OutboundEnvelope,
    OutboundEvent,
)

_SHOWN: Final = 40
"""At most this many characters of an offending value are quoted in a reason."""
_PERSONAL: Final = frozenset({"nir"})
"""Fields whose values are personal data: never quoted in a reason."""
_SELF_EXPLAINED: Final = frozenset({"missing", "date_order"})
"""Error types whose message already says everything about the value."""


class ContractError(ValueError):
    """A message breaks wire contract v1.

    ``reason`` says why in one line; ``field`` is the dotted path of the offending field
    (``payload.periode.fin``, ``payload.caisses_de_base[0]``) or None for the whole message.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        self.reason = " ".join(reason.splitlines())
        self.field = field
        super().__init__(f"{field}: {self.reason}" if field else self.reason)

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for the copy of the refused message sent to a rejects topic."""
        headers = [("reject_reason", str(self).encode())]
        if self.field is not None:
            headers.append(("reject_field", self.field.encode()))
        return headers


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _json_kind(value: object) -> str:
    kinds = {bool: "a boolean", str: "a string", list: "an array", int: "a number"}
    return "null" if value is None else kinds.get(type(value), "a number")


def _dotted(loc: tuple[int | str, ...]) -> str | None:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or None


def _from_validation(error: ValidationError) -> ContractError:
    """The first error, with its field path, the offending value and how many more."""
    details: list[ErrorDetails] = error.errors(include_url=False, include_context=False)
    first = details[0]
    reason = first["msg"]
    value = first.get("input")
    personal = _PERSONAL.intersection(str(part) for part in first["loc"])
    quoted = first["type"] not in _SELF_EXPLAINED and not isinstance(value, dict | list)
    if quoted and not personal:
        reason += f" (got {_shown(value)})"
    if len(details) > 1:
        reason += f" (and {len(details) - 1} more)"
    return ContractError(reason, _dotted(first["loc"]))


def _parse(
    raw: object, allowed: frozenset[str] | None, classes: Mapping[str, type[Envelope]], kind: str
) -> Envelope:
    if raw is None or (isinstance(raw, bytes | bytearray | memoryview) and len(raw) == 0):
        raise ContractError("empty message value (null or zero bytes)")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ContractError(f"message value must be bytes, got {type(raw).__name__}")
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as error:
        raise ContractError(f"not UTF-8: invalid byte at offset {error.start}") from None
    try:
        document: Any = from_json(text, allow_inf_nan=False)
    except ValueError as error:
        raise ContractError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ContractError(f"not a JSON object: the message is {_json_kind(document)}")
    for name in ("event_type", "schema_version"):  # defaults exist for code, not for the wire
        if name not in document:
            raise ContractError("Field required", name)
    event_type = document["event_type"]
    if not isinstance(event_type, str):
        raise ContractError(f"must be a string (got {_shown(event_type)})", "event_type")
    if event_type not in classes:
        raise ContractError(f"unknown {kind} event_type {_shown(event_type)}", "event_type")
    if allowed is not None and event_type not in allowed:
        raise ContractError(f"{event_type} is not allowed on this topic", "event_type")
    try:
        return classes[event_type].model_validate(document)
    except ValidationError as error:
        raise _from_validation(error) from None
    except Exception as error:  # a bug of ours must not stall a partition: reject the message
        raise ContractError(f"internal error while validating: {type(error).__name__}") from error


def parse_inbound(raw: bytes | None, *, allowed: frozenset[str] | None = None) -> InboundEvent:
    """Parse an inbound message value; raise :class:`ContractError` when it breaks v1.

    ``allowed`` restricts the event types accepted (those of the topic the message came
    from, e.g. ``topics.COTISATIONS_EVENT_TYPES``); None accepts every inbound type.
    """
    return cast(InboundEnvelope, _parse(raw, allowed, INBOUND_CLASSES, "inbound"))


def parse_outbound(raw: bytes | None, *, allowed: frozenset[str] | None = None) -> OutboundEvent:
    """Parse a decision message value (audit, replay, dashboards); same rules as inbound."""
    return cast(OutboundEnvelope, _parse(raw, allowed, OUTBOUND_CLASSES, "outbound"))


def to_wire(event: InboundEnvelope | OutboundEnvelope) -> bytes:
    """Serialise an envelope: compact UTF-8 JSON, ISO dates, every field, contract order."""
    return event.model_dump_json().encode("utf-8")
