"""Structured logs: one JSON object per line; a NIR never appears in clear.

Any 15-character NIR in a message or field is replaced by a short keyed digest
(`nir#<8 hex>`), stable within a process run, so lines about one person can still be
followed without exposing who it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

_NIR = re.compile(r"(?<![0-9A-Za-z])[0-9]{5}(?:[0-9]{2}|2A|2B)[0-9]{8}(?![0-9A-Za-z])")
_SALT = os.urandom(16)
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_STANDARD |= {"color_message"}  # uvicorn's copy of the message with terminal colours


def mask_nir(text: str) -> str:
    """Replace every NIR in `text` by a digest."""
    return _NIR.sub(
        lambda m: (
            "nir#" + hashlib.blake2b(m.group().encode(), key=_SALT, digest_size=4).hexdigest()
        ),
        text,
    )


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields, "trace_id", "span_id"}` (the last
    two in a span) with NIRs masked."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        span = trace.get_current_span().get_span_context()
        if span.is_valid and "trace_id" not in entry:  # in a span: where in its trace
            entry["trace_id"], entry["span_id"] = f"{span.trace_id:032x}", f"{span.span_id:016x}"
        # masked before serialising: once written, a newline or tab before a NIR is `\n`
        # or `\t`, a letter the pattern would take for part of a longer word
        return json.dumps(_masked(entry), ensure_ascii=False, default=_masked_text)


def _masked_text(value: object) -> str:
    return mask_nir(str(value))


def _masked(value: Any) -> Any:
    """`value` with a NIR masked in every string, key and text form it holds."""
    if isinstance(value, str):
        return mask_nir(value)
    if isinstance(value, dict):
        return {_masked_text(k): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_masked(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and _NIR.fullmatch(str(value)):
        return _masked_text(value)  # a NIR sent as a number
    if value is None or isinstance(value, bool | int | float):
        return value
    return _masked_text(value)


def configure_json_logging(service: str, level: int = logging.INFO) -> None:
    """Route every logger (FastStream's, aiokafka's, ours) to JSON lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("faststream", "faststream.access", "faststream.access.kafka"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # Python's warnings and a crash's traceback are lines of the process too
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: Any) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    logging.getLogger("mandat").critical("uncaught %s", kind.__name__, exc_info=(kind, error, tb))
