"""The NIR key rule: 97 - (N mod 97), with 2A -> 19 and 2B -> 18 before computing."""

import pytest
from pydantic import TypeAdapter, ValidationError

from contracts import Nir, make_nir, nir_key

pytestmark = pytest.mark.unit

NIR = TypeAdapter(Nir)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("2550814168025", "38"),  # the contract's example
        ("1000000000000", "47"),
        ("1000000000047", "97"),  # N mod 97 == 0 gives 97, never 00
        ("185052A123456", "33"),  # 1850519123456 mod 97 = 64
        ("185052B123456", "60"),  # 1850518123456 mod 97 = 37
    ],
)
def test_the_key_is_97_minus_the_body_modulo_97(body: str, key: str) -> None:
    assert nir_key(body) == key
    assert make_nir(body) == body + key
    assert NIR.validate_python(body + key) == body + key


def test_a_key_below_ten_is_written_with_two_digits() -> None:
    body = next(f"{n:013d}" for n in range(10**12, 10**12 + 200) if 97 - n % 97 < 10)
    assert len(nir_key(body)) == 2
    assert nir_key(body).startswith("0")


@pytest.mark.parametrize(
    "body", ["255081416802", "25508141680251", "2550X14168025", "18505CA123456"]
)
def test_the_key_of_a_malformed_body_cannot_be_computed(body: str) -> None:
    with pytest.raises(ValueError, match="NIR body"):
        nir_key(body)


@pytest.mark.parametrize(
    ("nir", "why"),
    [
        ("255081416802539", "NIR key is 39, expected 38"),
        ("25508141680253", "NIR must be 15 characters, got 14"),
        ("2550814168025AB", "NIR key (last 2 characters) must be digits"),
        ("2A5081416802538", "NIR body must be digits"),
        ("185052a12345633", "NIR body must be digits"),
    ],
)
def test_an_invalid_nir_is_refused_saying_what_is_wrong(nir: str, why: str) -> None:
    with pytest.raises(
        ValidationError, match=r"(?s)" + why.replace("(", r"\(").replace(")", r"\)")
    ):
        NIR.validate_python(nir)
