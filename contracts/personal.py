"""Keep personal data out of texts that leave the service: rejection reasons above all.

A reason travels in a Kafka header and is shown on dashboards, so it must never carry a NIR,
even one sent in the wrong field (a ``cotisation_id`` that is a NIR, a NIR as an amount).
Rather than trust each place that quotes a value, every reason goes through
:func:`mask_personal`, which hides anything that could be a NIR: a run of 13 or more digits
(a NIR's body is 13, the whole 15), also written with single spaces or dots between the
digits (``1 55 08 14 168 025 38``), and the Corsican form where ``2A`` or ``2B`` stands for
two of the digits. Amounts within the contract's limit have at most 12 digits and are left
alone. The replacement is a fixed token, not a digest: the same bytes must always give the
same reason, and a digest of a NIR without a secret key could be reversed by trying them.
"""

import re
from typing import Final

MASK: Final = "<masked>"
"""What a NIR-like sequence becomes."""

_SEP: Final = r"[ .\u00a0\u202f]?"  # at most one space (also non-breaking) or dot
_CORSICAN: Final = re.compile(rf"\d(?:{_SEP}\d){{4}}{_SEP}2[AaBb](?:{_SEP}\d){{6,}}")
_DIGITS: Final = re.compile(rf"\d(?:{_SEP}\d){{12,}}")


def mask_personal(text: str) -> str:
    """``text`` with every NIR-like sequence replaced by :data:`MASK`.

    ``\\d`` is any Unicode decimal digit, so a NIR in full-width or other digits is hidden
    too. Idempotent: masking a masked text changes nothing.
    """
    return _DIGITS.sub(MASK, _CORSICAN.sub(MASK, text))
