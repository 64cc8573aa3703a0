"""Structured logs: JSON lines, and a NIR never in clear."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from contracts.nir import make_nir
from services.adapters.runtime.logs import JsonFormatter, mask_nir

pytestmark = pytest.mark.unit

NIR = make_nir("2550814168025")
CORSICAN = make_nir("185072A123456")


def test_a_nir_is_replaced_by_a_stable_digest() -> None:
    masked = mask_nir(f"payment of {NIR} and again {NIR}")
    assert NIR not in masked
    digests = [w for w in masked.split() if w.startswith("nir#")]
    assert len(digests) == 2 and digests[0] == digests[1]


def test_a_corsican_nir_is_masked_too_and_other_numbers_are_left_alone() -> None:
    masked = mask_nir(f"{CORSICAN} paid 195000 cents at position 123456789012")
    assert CORSICAN not in masked
    assert "195000" in masked and "123456789012" in masked


def test_a_log_record_becomes_one_json_line_with_its_extra_fields_masked() -> None:
    record = logging.LogRecord("services.x", logging.INFO, __file__, 1, "decided %s", (NIR,), None)
    record.event_id = "7d0f6c1e"
    record.payload = {"nir": NIR}
    line = JsonFormatter("collection").format(record)
    assert "\n" not in line and NIR not in line
    entry = json.loads(line)
    assert entry["service"] == "collection" and entry["level"] == "info"
    assert entry["event_id"] == "7d0f6c1e" and entry["msg"].startswith("decided nir#")


@pytest.mark.parametrize("before", ["\n", "\t", "\r", "\x00", '"', "\\"])
def test_a_nir_after_a_character_json_escapes_is_masked_too(before: str) -> None:
    formatter = JsonFormatter("collection")
    try:
        raise ValueError(f"x{before}{NIR}")
    except ValueError:
        record = logging.LogRecord(
            "services.x", logging.ERROR, __file__, 1, f"bad{before}{NIR}", None, sys.exc_info()
        )
    record.detail = {"note": [f"a{before}{NIR}"], f"k{before}{NIR}": 1, "number": int(NIR)}
    line = formatter.format(record)
    assert NIR not in line and NIR not in json.dumps(json.loads(line), ensure_ascii=False)
    assert line.count("nir#") >= 5
