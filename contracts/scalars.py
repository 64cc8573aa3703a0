"""Scalar wire types shared by every model of contract v1, and the frozen base model.

Models validate in lax mode so that a dict decoded from JSON (by the parser, or read back
from the store) validates exactly like the JSON text; the types below put strictness back
where the contract wants it: cents are integers (never strings, floats or booleans), dates
are ``YYYY-MM-DD`` strings, instants are ISO 8601 with an offset, texts are strings. They
also carry the contract's limits (:mod:`.limits`): ids of at most 64 characters, texts
of at most 200, arrays of at most 200 entries, amounts of at most 10¹¹ cents.
"""

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from contracts.limits import CENTS_MAX, ID_MAX, LIST_MAX, SUM_MAX, TEXT_MAX

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL and C1
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_INSTANT: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"  # date and time
    r"(?:\.[0-9]{1,6})?"  # optional fraction, at most microseconds
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})"  # offset is mandatory: instants are unambiguous
)


class WireModel(BaseModel):
    """Base of every wire model: immutable, unknown fields ignored (additive changes).

    Serialised messages always carry every field (null when absent), so the serialization
    JSON Schema marks fields with defaults as required too.
    """

    model_config = ConfigDict(
        frozen=True, extra="ignore", json_schema_serialization_defaults_required=True
    )


def _text(value: object) -> object:
    """Refuse control characters (PostgreSQL ``jsonb`` rejects ``\\u0000``) and blanks."""
    if isinstance(value, str):
        if _CONTROL.search(value):
            raise PydanticCustomError("text_control", "must not contain control characters")
        if not value.strip():
            raise PydanticCustomError("text_blank", "must not be empty or blank")
    return value


def _code(value: object) -> object:
    """A code or id: a text without surrounding spaces (they would silently never match)."""
    value = _text(value)
    if isinstance(value, str) and value != value.strip():
        raise PydanticCustomError("code_spaces", "must not start or end with whitespace")
    return value


def _array(value: object) -> object:
    """A non-empty JSON array (kept as an immutable tuple)."""
    if not isinstance(value, list | tuple):
        raise PydanticCustomError("array_type", "must be an array")
    if not value:
        raise PydanticCustomError("array_empty", "must not be an empty array")
    return value


def _iso_date(value: object) -> object:
    """Accept a ``date`` or a ``YYYY-MM-DD`` string only (no timestamps, no datetimes)."""
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise PydanticCustomError("date_type", "must be a date string YYYY-MM-DD")
    if isinstance(value, str):
        if _DATE.fullmatch(value) is None:
            raise PydanticCustomError("date_format", "must be a date string YYYY-MM-DD")
        return _parsed(date.fromisoformat, value, "date_value", "is not a calendar date")
    return value


def _iso_instant(value: object) -> object:
    """Accept an aware ``datetime`` or an ISO 8601 date-time string with ``Z`` or an offset."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or _INSTANT.fullmatch(value) is None:
        raise PydanticCustomError(
            "instant_format",
            "must be an ISO 8601 date-time with offset, e.g. 2017-01-15T08:00:00Z",
        )
    return _parsed(datetime.fromisoformat, value, "instant_value", "is not a valid instant")


def _parsed(parse: Callable[[str], object], value: str, code: str, what: str) -> object:
    """`parse(value)`, its ValueError said as `what: why` under the error type `code`."""
    try:
        return parse(value)
    except ValueError as error:
        raise PydanticCustomError(code, what + ": {why}", {"why": str(error)}) from None


_TEXT_SCHEMA: Final = {"type": "string", "minLength": 1, "maxLength": TEXT_MAX, "pattern": r"\S"}
_CODE_SCHEMA: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": ID_MAX,
    "pattern": r"^\S(.*\S)?$",
}


def _string(check: Callable[[object], object], schema: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a ``str`` a contract string: strict, passed by `check`, at most the
    ``maxLength`` of its JSON Schema `schema` (which it is published as)."""
    return (
        Strict(),
        BeforeValidator(check),
        Field(max_length=schema["maxLength"]),
        WithJsonSchema(schema),
    )


def _array_schema(items: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema({"type": "array", "items": items, "minItems": 1, "maxItems": LIST_MAX})


Texte = Annotated[str, *_string(_text, _TEXT_SCHEMA)]
"""Free text (a name, a legal reference): non-blank, no control characters, ≤ 200 characters."""

Code = Annotated[str, *_string(_code, _CODE_SCHEMA)]
"""An identifier or code (``COT-2017-000123``, ``PL-IDF``): 1 to 64 characters, no outer
spaces, no control characters."""

Cents = Annotated[int, Strict(), Field(gt=0, le=CENTS_MAX)]
"""A positive amount in euro cents, at most 10¹¹ (10⁹ €)."""

SignedCents = Annotated[int, Strict(), Field(ge=-SUM_MAX, le=SUM_MAX)]
"""A sum or difference of amounts in euro cents (a balance): may be zero or negative, and
its absolute value is at most 10¹⁵, so it always fits a signed 64-bit integer."""

Codes = Annotated[
    tuple[Code, ...],
    BeforeValidator(_array),
    Field(min_length=1, max_length=LIST_MAX),
    _array_schema(_CODE_SCHEMA),
]
"""A non-empty array of at most 200 codes (e.g. the caisses de base of a convention)."""

Textes = Annotated[
    tuple[Texte, ...],
    BeforeValidator(_array),
    Field(min_length=1, max_length=LIST_MAX),
    _array_schema(_TEXT_SCHEMA),
]
"""A non-empty array of at most 200 free texts (e.g. the legal basis of a decision)."""

IsoDate = Annotated[date, BeforeValidator(_iso_date)]
"""A calendar date, ``YYYY-MM-DD`` on the wire."""

Instant = Annotated[AwareDatetime, BeforeValidator(_iso_instant)]
"""An instant with its UTC offset, ISO 8601 on the wire."""
