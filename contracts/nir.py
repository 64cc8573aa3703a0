"""The NIR (French social-security number): 13-character body + 2-digit key.

The key is ``97 - (N mod 97)`` where N is the body read as a number, after replacing the
Corsican department codes ``2A`` by ``19`` and ``2B`` by ``18`` (positions 6-7, 1-based).
Error messages never repeat the NIR itself: it is personal data and they end up in logs
and Kafka headers.
"""

import re
from typing import Annotated, Final

from pydantic import AfterValidator, Strict, WithJsonSchema
from pydantic_core import PydanticCustomError

NIR_LENGTH: Final = 15
BODY_LENGTH: Final = 13
_BODY: Final = re.compile(r"[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{6}")
_KEY: Final = re.compile(r"[0-9]{2}")
_CORSICA: Final = {"2A": "19", "2B": "18"}
NIR_PATTERN: Final = r"^[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}$"
"""Shape of a NIR (the key itself is not expressible as a pattern)."""


def _body_problem(body: str) -> str | None:
    """Say what is wrong with a 13-character body, or None when its shape is right."""
    if len(body) != BODY_LENGTH:
        return f"NIR body must be {BODY_LENGTH} characters, got {len(body)}"
    if _BODY.fullmatch(body) is None:
        return "NIR body must be digits, except positions 6-7 which may be 2A or 2B (Corsica)"
    return None


def nir_key(body: str) -> str:
    """Return the 2-digit key of a 13-character NIR body.

    Raises ValueError when the body has the wrong length or characters.
    """
    problem = _body_problem(body)
    if problem is not None:
        raise ValueError(problem)
    digits = body[:5] + _CORSICA.get(body[5:7], body[5:7]) + body[7:]
    return f"{97 - int(digits) % 97:02d}"


def make_nir(body13: str) -> str:
    """Return the full 15-character NIR for a 13-character body (body + computed key)."""
    return body13 + nir_key(body13)


def sample_nir(n: int) -> str:
    """A valid, fictitious NIR, distinct for each ``0 <= n < 1,000,000`` (men born in 1975,
    département and commune from ``n``): what tests, benchmarks and examples use."""
    return make_nir(f"1{(n % 99) + 1:02d}0175{n:06d}"[:13])


def check_nir(value: str) -> str:
    """Return ``value`` when it is a valid NIR; raise a pydantic error saying why not."""
    if len(value) != NIR_LENGTH:
        raise PydanticCustomError(
            "nir_length",
            "NIR must be {expected} characters, got {given}",
            {"expected": NIR_LENGTH, "given": len(value)},
        )
    body, key = value[:BODY_LENGTH], value[BODY_LENGTH:]
    problem = _body_problem(body)
    if problem is not None:
        raise PydanticCustomError("nir_characters", problem)
    if _KEY.fullmatch(key) is None:
        raise PydanticCustomError("nir_characters", "NIR key (last 2 characters) must be digits")
    expected = nir_key(body)
    if key != expected:
        raise PydanticCustomError(
            "nir_key",
            "NIR key is {given}, expected {expected}",
            {"given": key, "expected": expected},
        )
    return value


Nir = Annotated[
    str,
    Strict(),
    AfterValidator(check_nir),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": NIR_LENGTH,
            "maxLength": NIR_LENGTH,
            "pattern": NIR_PATTERN,
            "description": "NIR: 13-character body + 2-digit key = 97 - (body mod 97), "
            "with 2A -> 19 and 2B -> 18 (Corsica) before computing.",
        }
    ),
]
"""A validated NIR, as a plain ``str``."""
