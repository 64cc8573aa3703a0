"""What the dashboard may show of text it did not write: bounded, printable, NIR-masked.

Everything the page displays from a topic or a service (a rejected value, a reason, a
header, an id, a reply from `/ready`) goes through :func:`shown` first. It never changes
what is on the topics: only the copy the dashboard keeps in memory.

- at most :data:`SHOWN` characters, and only the first :data:`WINDOW` bytes of a value are
  looked at (a 1 MB value costs as little as a short one);
- bytes that are not UTF-8 become U+FFFD, and so do control characters and line
  separators; format characters (bidirectional overrides, zero-width marks) are dropped:
  a value can neither rearrange the page nor slip a NIR past the mask;
- NIR-like sequences are replaced by :data:`NIR_MASK`. The rule is deliberately more
  generous than a NIR check: any run of 15 or more digits, and 5 digits + ``2A``/``2B``
  (Corsica, either case) + 8 digits, valid key or not. Masking happens before truncation,
  so a number cut by the limit is masked whole, never shown in part;
- HTML escaping is the page's job (every value goes through its `esc()` or `textContent`)
  and, as a second guard, :func:`render_json` writes ``<``, ``>`` and ``&`` as JSON
  escapes, so the document served cannot contain markup whatever the topics hold.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any, Final

SHOWN: Final = 200
"""At most this many characters of any text are shown."""
WINDOW: Final = 4 * SHOWN + 64
"""At most this many bytes (or characters) of a value are looked at to show it: enough
for :data:`SHOWN` characters of 4 bytes each, plus a whole NIR starting at the last one."""
NIR_MASK: Final = "***NIR***"
ELLIPSIS: Final = "…"

_NIR_LIKE: Final = re.compile(r"\d{15,}|\d{5}2[ABab]\d{8}")
_INVISIBLE: Final = "Cf"
"""Format characters (zero-width marks, bidirectional overrides): dropped, so they can
neither reorder the page nor split a NIR to escape the mask."""
_UNSAFE: Final = frozenset({"Cc", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Controls, surrogates, private-use, unassigned, line and paragraph separators."""
_JSON_HTML: Final = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def mask_nir(text: str) -> str:
    """`text` with every NIR-like sequence replaced by :data:`NIR_MASK`."""
    return _NIR_LIKE.sub(NIR_MASK, text)


def _printable(text: str) -> str:
    if text.isascii() and text.isprintable():
        return text  # the usual case, without looking at each character
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category != _INVISIBLE:
            kept.append("\ufffd" if category in _UNSAFE else char)
    return "".join(kept)


def shown(value: object, limit: int = SHOWN) -> str | None:
    """A bounded, printable, NIR-masked text of `value` (bytes, str or a JSON scalar);
    None for None and for anything else (containers are never turned into text: that is
    where recursion and size hazards live). `limit` is at most :data:`SHOWN`."""
    limit = min(limit, SHOWN)
    if value is None:
        return None
    cut = False
    if isinstance(value, bytes | bytearray | memoryview):
        cut = len(value) > WINDOW
        text = bytes(value[:WINDOW]).decode("utf-8", "replace")
    elif isinstance(value, str):
        cut = len(value) > WINDOW
        text = value[:WINDOW]
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = repr(value)[:WINDOW]  # an int's repr is bounded by the JSON parser's range
    else:
        return None
    text = mask_nir(_printable(text))
    if cut or len(text) > limit:
        return text[: limit - 1] + ELLIPSIS
    return text


def render_json(document: Any) -> str:
    """Compact JSON of `document` with no raw ``<``, ``>`` or ``&`` (they only ever occur
    inside strings, where their escapes mean the same): safe in any HTML context."""
    text = json.dumps(document, separators=(",", ":"), allow_nan=False)
    for char, escape in _JSON_HTML.items():
        text = text.replace(char, escape)
    return text
