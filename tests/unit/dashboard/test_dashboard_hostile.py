"""The dashboard's aggregate against hostile records: whatever a decision or rejection topic
holds (any bytes, JSON nested 10,000 deep, megabyte values, tombstones, null, binary or
huge headers, NIRs anywhere), feeding it never raises, every record is accounted for, a
valid record behind them is still counted, and what the page gets is bounded, free of
markup and free of NIR-like sequences."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import decision_payload

from contracts.nir import make_nir
from services.tools.dashboard.board import MAX_VALUE, SERVICES, Board
from services.tools.dashboard.shown import NIR_MASK, SHOWN, mask_nir, render_json, shown

pytestmark = pytest.mark.unit

ASCII_RUN = re.compile(r"[0-9]{15}")
NIR_LIKE = re.compile(r"\d{15}|\d{5}2[ABab]\d{8}")
KNOWN_TYPES = (
    "EncaissementDelegue",
    "PaiementEncaissePourCompte",
    "ContentieuxDelegue",
    "VersementDelegue",
    "VersementDirect",
    "DecisionEnAttente",
    "EncaissementNonDelegue",
    "constructor",
    "__proto__",
)
HEADER_NAMES = (
    "reject_reason",
    "reject_field",
    "event_id",
    "source_topic",
    "source_partition",
    "source_offset",
)


def deep(depth: int, kind: str) -> bytes:
    """JSON nested `depth` levels (built as bytes: Python could not dump it)."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


nirs = st.one_of(
    st.from_regex(r"[12][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{6}", fullmatch=True).map(make_nir),
    st.from_regex(r"[0-9]{15,22}", fullmatch=True),
    st.from_regex(r"[0-9]{5}2[ABab][0-9]{8}", fullmatch=True),
)
markup = st.sampled_from(
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "\"'><b>bold</b>&amp;",
        "\u202eevil\u200b",
        "line\nbreak\r\x00",
    ]
)
texts = st.one_of(
    st.text(max_size=40),
    markup,
    st.builds(lambda a, n, b: a + n + b, st.text(max_size=20), nirs, st.text(max_size=20)),
    st.integers(SHOWN, 5000).map(lambda n: "é" * n + make_nir("1850578006084")),
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), texts, st.floats(allow_nan=False, allow_infinity=False)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
amounts = st.one_of(st.integers(0, 10**11), st.integers(), json_values)
deep_bytes = st.builds(deep, st.integers(1000, 10_000), st.sampled_from(["array", "object"]))


def _envelope(event_type: Any, payload: Any, extra: dict[str, Any]) -> bytes:
    return json.dumps({"event_type": event_type, "payload": payload, **extra}).encode()


decision_docs = st.builds(
    _envelope,
    st.one_of(st.sampled_from(KNOWN_TYPES), json_values),
    st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "motif": json_values,
                "organisme_id": texts,
                "caisse_de_base": texts,
                "sujet_id": texts,
                "montant_cents": amounts,
                "restant_du_cents": amounts,
            },
        ),
        json_values,
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "event_id": st.one_of(texts, json_values),
            "causation_id": json_values,
            "occurred_at": st.one_of(
                texts, st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01", "2026-01-01T10:00Z"])
            ),
        },
    ),
)


def _with_deep_field(field: str, nested: bytes) -> bytes:
    """A decision whose `field` (event_type, an id, payload or motif) is nested JSON."""
    if field == "payload.motif":
        return b'{"event_type":"DecisionEnAttente","payload":{"motif":' + nested + b"}}"
    if field == "payload":
        return b'{"event_type":"DecisionEnAttente","payload":' + nested + b"}"
    return b'{"event_type":"DecisionEnAttente","payload":{},"%s":%s}' % (field.encode(), nested)


values = st.one_of(
    st.none(),
    st.binary(max_size=300),
    texts.map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    decision_docs,
    deep_bytes,
    st.builds(
        _with_deep_field,
        st.sampled_from(["event_type", "event_id", "causation_id", "payload", "payload.motif"]),
        deep_bytes,
    ),
    st.sampled_from([MAX_VALUE + 1, 3 * MAX_VALUE]).map(
        lambda n: b'{"event_type":"VersementDirect","payload":{"x":"' + b"7" * n + b'"}}'
    ),
)
header_values = st.one_of(
    st.none(),
    st.binary(max_size=64),
    texts.map(str.encode),
    nirs.map(str.encode),
    st.just(b"9" * 100_000),
    deep_bytes,
)
headers = st.lists(
    st.tuples(st.one_of(st.sampled_from(HEADER_NAMES), st.text(max_size=10)), header_values),
    max_size=8,
)
timestamps = st.one_of(
    st.none(), st.integers(-(2**63), 2**63 - 1), st.integers(1_600_000_000_000, 1_900_000_000_000)
)
records = st.tuples(
    st.sampled_from(SERVICES),
    st.sampled_from(["decision", "rejection"]),
    values,
    headers,
    timestamps,
)


def valid_decision() -> bytes:
    return _envelope(
        "VersementDirect",
        decision_payload("VersementDirect"),
        {
            "event_id": str(uuid.uuid4()),
            "causation_id": str(uuid.uuid4()),
            "schema_version": 1,
            "occurred_at": "2026-01-01T10:00:00Z",
            "source": "benefits",
            "correlation_id": None,
        },
    )


def strings(document: Any) -> list[str]:
    """Every string in a JSON-ready document (keys included)."""
    if isinstance(document, str):
        return [document]
    if isinstance(document, dict):
        return [s for k, v in document.items() for s in (k, *strings(v))]
    if isinstance(document, list):
        return [s for v in document for s in strings(v)]
    return []


def assert_safe(board: Board) -> None:
    """What the page gets: valid JSON, no markup characters, bounded, no NIR-like text."""
    state = board.snapshot()
    rendered = render_json(state)
    assert not set("<>&") & set(rendered)
    assert json.loads(rendered) == state
    assert ASCII_RUN.search(rendered) is None
    for text in strings(state):
        assert len(text) <= SHOWN
        assert NIR_LIKE.search(text) is None, text


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(records, max_size=12))
def test_no_record_stops_the_board_and_each_is_accounted_for(
    batch: list[tuple[str, str, bytes | None, list[tuple[str, bytes | None]], int | None]],
) -> None:
    board = Board()
    outcomes = [
        (role, board.ingest(service, role, value, hs, ts)) for service, role, value, hs, ts in batch
    ]
    # a valid decision and a valid rejection behind them are still counted
    assert board.ingest("benefits", "decision", valid_decision()) == "counted"
    fresh = [("event_id", str(uuid.uuid4()).encode()), ("reject_reason", b"not JSON")]
    assert board.ingest("collection", "rejection", b"{", fresh) == "counted"
    outcomes += [("decision", "counted"), ("rejection", "counted")]

    state = board.snapshot()
    counted_decisions = sum(r["count"] for s in state["services"].values() for r in s["decisions"])
    assert counted_decisions == outcomes.count(("decision", "counted"))
    assert state["totals"]["rejected"] == outcomes.count(("rejection", "counted"))
    assert state["totals"]["unreadable"] == sum(o == "unreadable" for _, o in outcomes)
    assert ("rejection", "unreadable") not in outcomes  # a rejection always has a row
    assert_safe(board)


@pytest.mark.parametrize("depth", [1_000, 1_025, 10_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_deeply_nested_json_is_unreadable_as_a_decision_and_shown_as_a_rejection(
    depth: int,
    kind: str,
) -> None:
    board = Board()
    nested = deep(depth, kind)
    assert board.ingest("collection", "decision", nested) == "unreadable"
    assert board.ingest("collection", "decision", _with_deep_field("payload.motif", nested)) in (
        "unreadable",
        "counted",
    )  # orjson reads up to 1,024 levels: then only scalars count
    assert board.ingest("collection", "rejection", nested, [("reject_reason", nested)]) == "counted"
    assert board.ingest("collection", "decision", valid_decision()) == "counted"
    row = board.snapshot()["rejections"][0]
    assert row["value_bytes"] == len(nested) and len(row["value"]) == SHOWN
    assert row["value"].endswith("…") and row["reason"].endswith("…")
    assert_safe(board)


def test_huge_values_and_headers_are_shown_truncated() -> None:
    board = Board()
    value = b'{"event_type":"CotisationDue","x":"' + b"a" * (4 * MAX_VALUE) + b'"}'
    assert board.ingest("collection", "decision", value) == "unreadable"
    assert (
        board.ingest("collection", "rejection", value, [("reject_reason", b"r" * 1_000_000)])
        == "counted"
    )
    row = board.snapshot()["rejections"][0]
    assert row["value_bytes"] == len(value) and row["value"].startswith('{"event_type"')
    assert row["event_type"] is None  # not parsed: too large
    assert len(row["reason"]) == SHOWN


def test_tombstones_and_null_or_missing_headers() -> None:
    board = Board()
    assert board.ingest("benefits", "decision", None) == "unreadable"
    assert (
        board.ingest("benefits", "rejection", None, [("reject_reason", None), ("event_id", None)])
        == "counted"
    )
    assert board.ingest("benefits", "rejection", b"", []) == "counted"
    latest, first = board.snapshot()["rejections"]
    assert (first["value"], first["value_bytes"], first["reason"]) == (
        None,
        None,
        "(no reason given)",
    )
    assert (latest["value"], latest["value_bytes"], latest["source_topic"]) == ("", 0, None)


def test_the_last_reject_header_is_the_one_shown() -> None:
    """Upstream's own reject_field/reject_reason come first; the system's are appended."""
    board = Board()
    upstream = [("reject_field", b"forged.field"), ("reject_reason", b"forged reason")]
    ours = [
        ("reject_reason", b"payload.montant_cents: too large"),
        ("reject_field", b"payload.montant_cents"),
    ]
    board.ingest("benefits", "rejection", b"{}", upstream + ours)
    row = board.snapshot()["rejections"][0]
    assert (row["reason"], row["field"]) == (
        "payload.montant_cents: too large",
        "payload.montant_cents",
    )


def test_nirs_are_masked_in_what_is_shown_never_on_the_topic() -> None:
    board = Board()
    nir = make_nir("1850578006084")
    corsican = make_nir("185052A006084")
    value = json.dumps(
        {"event_type": "CotisationDue", "payload": {"nir": nir, "x": corsican}}
    ).encode()
    reason = f"payload.nir: bad shape (got '{nir}')".encode()
    board.ingest(
        "collection",
        "rejection",
        value,
        [
            ("reject_reason", reason),
            ("reject_field", nir.encode()),
            ("source_topic", corsican.encode()),
            ("source_offset", nir.encode()),
            ("event_id", nir.encode()),
        ],
    )
    row = board.snapshot()["rejections"][0]
    assert row["reason"] == f"payload.nir: bad shape (got '{NIR_MASK}')"
    assert row["field"] == row["source_topic"] == row["event_id"] == NIR_MASK
    assert row["source_offset"] is None  # 15 digits are not taken for an offset
    assert nir not in row["value"] and corsican not in row["value"]
    assert row["value"].count(NIR_MASK) == 2
    assert nir.encode() in value  # the bytes given are untouched
    assert_safe(board)


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("185057800608436", NIR_MASK),
        ("x185057800608436y", f"x{NIR_MASK}y"),  # generous: no word boundary needed
        ("1850578006084361234", NIR_MASK),  # a longer run is masked whole
        ("185052A00608436", NIR_MASK),
        ("185052b00608436", NIR_MASK),
        ("18505780060843", "18505780060843"),  # 14 digits: not a NIR
        ("1850\u200b5780060\u200e8436", NIR_MASK),  # invisible marks do not split it
        ("\u0661" * 15, NIR_MASK),  # any script's digits
    ],
)
def test_nir_like_sequences(text: str, masked: str) -> None:
    assert shown(text) == masked


def test_a_nir_cut_by_the_limit_is_not_shown_in_part() -> None:
    nir = make_nir("1850578006084")
    text = shown("a" * (SHOWN - 5) + nir)
    assert text is not None and len(text) == SHOWN and not re.search(r"[0-9]", text)
    assert mask_nir(nir) == NIR_MASK


def test_markup_and_controls_are_kept_as_text() -> None:
    text = shown("<script>alert(1)</script>\n\u202e")
    assert text == "<script>alert(1)</script>\ufffd"  # escaped by the page and the JSON
    assert (
        render_json({"t": text})
        == '{"t":"\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\\ufffd"}'
    )
