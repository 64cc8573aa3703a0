"""Bytes in, typed events out (and back): the only door through which messages enter.

:func:`parse_inbound` and :func:`parse_outbound` turn a Kafka message value into a typed
envelope or raise :class:`ContractError` -- and nothing else, whatever the bytes -- with a
one-line reason naming the field (``payload.periode.fin: ...``). Given the record's Kafka
key, they also check it is the one the contract fixes; :func:`check_headers` checks the
record's headers. :func:`to_wire` is their inverse: compact UTF-8 JSON, ISO dates, fields in
contract order, deterministic.

A reason never carries personal data: values of personal fields are never quoted, and
every reason is masked (:func:`.personal.mask_personal`) in case a NIR was sent
where another value belongs.
"""

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any, Final, Literal, TypeAlias, cast

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
from contracts.limits import HEADERS_MAX, REASON_MAX, VALUE_MAX
from contracts.messages import expected_key, key_field
from contracts.personal import mask_personal

_SHOWN: Final = 40
"""At most this many characters of an offending value are quoted in a reason."""
_PERSONAL: Final = frozenset({"nir"})
"""Fields whose values are personal data: never quoted in a reason."""
_SELF_EXPLAINED: Final = frozenset({"missing", "date_order"})
"""Error types whose message already says everything about the value."""


class _Unchecked(Enum):
    UNCHECKED = "unchecked"


UNCHECKED: Final = _Unchecked.UNCHECKED
"""Default of the ``key`` argument of the parsers: the Kafka key is not checked."""
KeyArgument: TypeAlias = bytes | Literal[_Unchecked.UNCHECKED] | None
"""What the parsers accept as ``key``: the record's key (bytes or None), or UNCHECKED."""


class ContractError(ValueError):
    """A message breaks wire contract v1.

    ``reason`` says why in one line of at most 400 characters, with anything that could be
    a NIR masked; ``field`` is the dotted path of the offending field (``payload.periode.fin``,
    ``payload.caisses_de_base[0]``), ``key`` or ``headers`` for the record's Kafka key or
    headers, or None for the whole message.
    """

    def __init__(self, reason: str, field: str | None = None) -> None:
        reason = mask_personal(" ".join(reason.splitlines()))
        if len(reason) > REASON_MAX:
            reason = reason[: REASON_MAX - 3] + "..."
        self.reason = reason
        self.field = None if field is None else mask_personal(" ".join(field.splitlines()))
        super().__init__(f"{self.field}: {self.reason}" if self.field else self.reason)

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for the copy of the refused message sent to a rejects topic."""
        headers = [("reject_reason", str(self).encode("utf-8", "backslashreplace"))]
        if self.field is not None:
            headers.append(("reject_field", self.field.encode("utf-8", "backslashreplace")))
        return headers


def _shown(value: object) -> str:
    """A short quote of ``value``, masked before it is cut (no NIR half-shown)."""
    try:
        text = mask_personal(repr(value))
    except ValueError:  # an int too long to print: say what it is instead
        return f"a {type(value).__name__}"
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


def _size(raw: object) -> int:
    """Bytes of a message value, without copying it."""
    return raw.nbytes if isinstance(raw, memoryview) else len(cast(bytes, raw))


def _document(raw: object) -> dict[str, Any]:
    """The JSON object of a message value: bounded, UTF-8, JSON, an object."""
    if raw is None or (isinstance(raw, bytes | bytearray | memoryview) and _size(raw) == 0):
        raise ContractError("empty message value (null or zero bytes)")
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ContractError(f"message value must be bytes, got {type(raw).__name__}")
    if _size(raw) > VALUE_MAX:
        raise ContractError(
            f"message value is {_size(raw)} bytes, over the limit of {VALUE_MAX} bytes"
        )
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
    return document


def _validate(
    document: dict[str, Any],
    allowed: frozenset[str] | None,
    classes: Mapping[str, type[Envelope]],
    kind: str,
) -> Envelope:
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


def _check_key(event: InboundEnvelope | OutboundEnvelope, key: object) -> None:
    """Refuse a record whose Kafka key is not the contract's (the key is never quoted)."""
    if key is not None and not isinstance(key, bytes | bytearray | memoryview):
        raise ContractError(f"Kafka key must be bytes or null, got {type(key).__name__}", "key")
    if key is not None and bytes(key) == expected_key(event):
        return
    given = "the record has no key" if key is None else "the record has another key"
    raise ContractError(
        f"Kafka key of {event.event_type} must be its payload's "
        f"{key_field(event.event_type)} ({given})",
        "key",
    )


def _parse(
    raw: object,
    allowed: frozenset[str] | None,
    key: object,
    classes: Mapping[str, type[Envelope]],
    kind: str,
) -> Envelope:
    try:
        event = _validate(_document(raw), allowed, classes, kind)
        if key is not UNCHECKED:
            _check_key(cast("InboundEnvelope | OutboundEnvelope", event), key)
        return event
    except ContractError:
        raise
    except Exception as error:  # a bug of ours must not stall a partition: reject the message
        raise ContractError(f"internal error while validating: {type(error).__name__}") from error


def check_headers(headers: Sequence[tuple[str, bytes | None]]) -> None:
    """Raise :class:`ContractError` (field ``headers``) when a record's headers exceed 16 KiB.

    The size is that of every key (UTF-8) and value, a null value counting 0. Anything that
    is not a sequence of (text or bytes, bytes or null) pairs is refused the same way, never
    with another exception.
    """
    try:
        total = sum(_header_size(name, value) for name, value in headers)
    except ContractError:
        raise
    except Exception as error:
        raise ContractError(f"malformed headers: {type(error).__name__}", "headers") from None
    if total > HEADERS_MAX:
        raise ContractError(
            f"headers are {total} bytes (keys and values), over the limit of {HEADERS_MAX} bytes",
            "headers",
        )


def _header_size(name: object, value: object) -> int:
    if isinstance(name, str):
        size = len(name.encode("utf-8", "surrogatepass"))
    elif isinstance(name, bytes | bytearray):
        size = len(name)
    else:
        raise ContractError(f"a header key is {type(name).__name__}, not text", "headers")
    if value is None:
        return size
    if isinstance(value, bytes | bytearray | memoryview):
        return size + _size(value)
    raise ContractError(f"a header value is {type(value).__name__}, not bytes", "headers")


def parse_inbound(
    raw: bytes | None,
    *,
    allowed: frozenset[str] | None = None,
    key: KeyArgument = UNCHECKED,
) -> InboundEvent:
    """Parse an inbound message value; raise :class:`ContractError` when it breaks v1.

    ``allowed`` restricts the event types accepted (those of the topic the message came
    from, e.g. ``topics.COTISATIONS_EVENT_TYPES``); None accepts every inbound type.
    ``key``, when given (the record's key: bytes, or None for a record without one), must
    be the event's :func:`.expected_key`, else the error's field is ``key``. The
    value is checked first: a record broken in both ways is refused for its value.
    """
    return cast(InboundEnvelope, _parse(raw, allowed, key, INBOUND_CLASSES, "inbound"))


def parse_outbound(
    raw: bytes | None,
    *,
    allowed: frozenset[str] | None = None,
    key: KeyArgument = UNCHECKED,
) -> OutboundEvent:
    """Parse a decision message value (audit, replay, dashboards); same rules as inbound."""
    return cast(OutboundEnvelope, _parse(raw, allowed, key, OUTBOUND_CLASSES, "outbound"))


def to_wire(event: InboundEnvelope | OutboundEnvelope) -> bytes:
    """Serialise an envelope: compact UTF-8 JSON, ISO dates, every field, contract order."""
    return event.model_dump_json().encode("utf-8")
