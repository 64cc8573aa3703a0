"""A command's result as JSON-ready data, the same way for every audit command."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Any


def as_report(result: Any, *, leave_out: Iterable[str] = (), **computed: Any) -> dict[str, Any]:
    """The fields of the dataclass `result` (a duration in `seconds` rounded to the
    millisecond), but those in `leave_out`, then `computed`: the values a field does not
    hold as such (`ok`, a rate, nested results), which also replace a field of their name."""
    omitted = set(leave_out)
    report = {f.name: getattr(result, f.name) for f in fields(result) if f.name not in omitted}
    if "seconds" in report:
        report["seconds"] = round(report["seconds"], 3)
    return report | computed
