"""Properties of the door, on generated hostile input: whatever the bytes, ids, amounts, keys
or headers, parsing raises nothing but ContractError; whatever it accepts is within the
contract's limits and under its key; no reason ever carries a NIR."""

import json
import re
from typing import Any

import pytest
from contract_strategies import events, json_values, nirs
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from contracts import (
    CENTS_MAX,
    HEADERS_MAX,
    ID_MAX,
    INBOUND_CLASSES,
    LIST_MAX,
    TEXT_MAX,
    VALUE_MAX,
    ContractError,
    check_headers,
    check_nir,
    expected_key,
    key_field,
    make_nir,
    mask_personal,
    parse_inbound,
    to_wire,
)

pytestmark = pytest.mark.unit

ID_FIELDS = frozenset(
    {
        "cotisation_id",
        "paiement_id",
        "prestation_id",
        "organisme_id",
        "convention_id",
        "caisse_de_base",
        "caisses_de_base",
        "source",
        "correlation_id",
        "causation_id",
    }
)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NIR_RUN = re.compile(r"\d{13}")  # any Unicode digits, a NIR's body or more
CORSICAN_RUN = re.compile(r"\d{5}2[AaBb]\d{6}")

corsican = st.from_regex(r"[0-9]{5}2[AB][0-9]{6}", fullmatch=True).map(make_nir)
any_text = st.text(st.characters(exclude_categories=()), max_size=40)  # surrogates too
spaced = nirs.map(lambda n: " ".join([n[:1], n[1:3], n[3:5], n[5:7], n[7:10], n[10:13], n[13:]]))
with_nir = st.builds(
    lambda before, nir, after: before + nir + after,
    st.text(max_size=8),
    nirs | corsican | spaced,
    st.text(max_size=8),
)
_CLEAN = st.characters(exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
clean_texts = st.integers(1, TEXT_MAX + 3).flatmap(
    lambda n: st.text(_CLEAN, min_size=n, max_size=n)
)
"""Texts that only their length can make invalid, some on each side of every limit."""
hostile_texts = (
    any_text
    | clean_texts
    | with_nir
    | st.text(min_size=ID_MAX - 2, max_size=ID_MAX + 2)
    | st.text(min_size=TEXT_MAX - 2, max_size=TEXT_MAX + 2)
    | st.from_regex(r"[0-9]{10,20}", fullmatch=True)
)
hostile_ints = (
    st.integers()
    | st.integers(-(2**70), 2**70)
    | st.integers(10**12, 10**16)
    | st.integers(-5, CENTS_MAX + 5)
    | st.sampled_from([0, 1, -1, CENTS_MAX, CENTS_MAX + 1, 2**63 - 1, 2**63, -(2**63)])
)
hostile_lists = st.lists(hostile_texts, max_size=4) | st.integers(LIST_MAX - 2, LIST_MAX + 2).map(
    lambda n: ["PL-IDF"] * n
)
hostile_values = (
    hostile_texts
    | hostile_ints
    | hostile_lists
    | st.none()
    | st.booleans()
    | st.floats(allow_nan=False)
    | json_values
)
keys = st.none() | st.binary(max_size=20) | nirs.map(str.encode)


def _like(value: Any) -> st.SearchStrategy[Any]:
    """Hostile values of the same JSON type as `value` (more likely to pass the type check,
    so that the limits themselves are tried)."""
    if isinstance(value, str):
        return hostile_texts
    if isinstance(value, int) and not isinstance(value, bool):
        return hostile_ints
    if isinstance(value, list):
        return hostile_lists
    return hostile_values


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        items: Any = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return found
    for key, child in items:
        found += _paths(child, (*prefix, key))
    return found


def _encode(document: Any, ascii_only: bool) -> bytes:
    """JSON bytes; a lone surrogate makes invalid UTF-8 unless escaped, as a hostile
    producer could send."""
    return json.dumps(document, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def _within_limits(node: Any, name: str = "") -> None:
    """Every string, array and amount of an accepted message is within the limits."""
    if isinstance(node, dict):
        for key, value in node.items():
            _within_limits(value, key)
    elif isinstance(node, list):
        assert len(node) <= LIST_MAX, name
        for value in node:
            _within_limits(value, name)
    elif isinstance(node, str):
        assert CONTROL.search(node) is None, name
        assert 1 <= len(node) <= (ID_MAX if name in ID_FIELDS else TEXT_MAX), name
        if name == "nir":
            check_nir(node)
    elif isinstance(node, int) and not isinstance(node, bool) and name.endswith("_cents"):
        assert 0 < node <= CENTS_MAX, name


def _accepted_or_refused_cleanly(raw: Any, key: Any) -> None:
    """The one property of the door: a clean refusal, or an event within the limits."""
    try:
        parsed = parse_inbound(raw, key=key)
    except ContractError as error:
        text = str(error) + repr(error.headers())
        assert NIR_RUN.search(text) is None, text
        assert CORSICAN_RUN.search(text) is None, text
        assert "\n" not in str(error) and len(error.reason) <= 400
        assert not error.reason.startswith("internal error"), error
        event(f"refused on {(error.field or 'the value').split('.')[0].split('[')[0]}")
        return
    event("accepted")
    assert expected_key(parsed) == key
    _within_limits(parsed.model_dump(mode="json"))
    wire = to_wire(parsed)
    assert len(wire) <= VALUE_MAX
    assert parse_inbound(wire, key=key) == parsed


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(events(INBOUND_CLASSES), st.data())
def test_hostile_fields_are_refused_cleanly_or_accepted_within_the_limits(
    event: Any, data: Any
) -> None:
    document = json.loads(to_wire(event))
    for _ in range(data.draw(st.integers(1, 2))):
        paths = _paths(document)
        in_payload = [p for p in paths if p[0] == "payload" and len(p) > 1]
        path = data.draw(
            st.sampled_from(in_payload if in_payload and data.draw(st.integers(0, 4)) else paths)
        )
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.integers(0, 4)):
            parent[path[-1]] = data.draw(_like(parent[path[-1]]) | hostile_values)
        else:
            parent.pop(path[-1])
    key = expected_key(event) if data.draw(st.integers(0, 3)) else data.draw(keys)
    _accepted_or_refused_cleanly(_encode(document, data.draw(st.booleans())), key)


LIMITED = {**dict.fromkeys(ID_FIELDS - {"caisses_de_base"}, ID_MAX), "nom": TEXT_MAX}


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(events(INBOUND_CLASSES), st.data())
def test_an_id_a_name_or_an_amount_is_accepted_exactly_when_within_its_limit(
    event: Any, data: Any
) -> None:
    document = json.loads(to_wire(event))
    payload = document["payload"]
    fields = [n for n in (*payload, *document) if n in LIMITED or n.endswith("_cents")]
    name = data.draw(st.sampled_from(fields))
    where = payload if name in payload else document
    if name.endswith("_cents"):
        value: Any = data.draw(hostile_ints)
        within = 0 < value <= CENTS_MAX
    else:
        value = data.draw(clean_texts)
        within = len(value) <= LIMITED[name]
    where[name] = value
    key = expected_key(event)
    if name == key_field(event.event_type):  # the key follows its field
        key = value.encode()
    try:
        parse_inbound(_encode(document, False), key=key)
    except ContractError as error:
        assert not within, error
        assert error.field is not None and error.field.split(".")[-1] == name
        assert NIR_RUN.search(str(error)) is None
    else:
        assert within


@given(events(INBOUND_CLASSES), keys)
def test_a_valid_event_is_accepted_exactly_under_its_key(event: Any, key: bytes | None) -> None:
    raw = to_wire(event)
    if key == expected_key(event):
        assert parse_inbound(raw, key=key) == event
    else:
        with pytest.raises(ContractError) as refused:
            parse_inbound(raw, key=key)
        assert refused.value.field == "key"
        assert NIR_RUN.search(str(refused.value)) is None


tokens = st.sampled_from(
    [b"{", b"}", b"[", b"]", b'"', b":", b",", b"null", b"1e400", b"-0", b"\xff", b"\\u0000"]
    + [f'"{name}"'.encode() for name in ("event_type", "payload", "nir", "montant_cents")]
    + [b'"CotisationDue"', b'"PaiementRecu"', b"255081416802538", b'"185052A12345633"']
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=300) | st.lists(tokens, max_size=40).map(b"".join),
    st.just(None) | keys,
)
def test_arbitrary_bytes_under_any_key_only_ever_raise_a_contract_error(
    raw: bytes, key: bytes | None
) -> None:
    _accepted_or_refused_cleanly(raw, key)


@given(json_values | hostile_values, keys)
def test_arbitrary_json_only_ever_raises_a_contract_error(value: Any, key: bytes | None) -> None:
    _accepted_or_refused_cleanly(_encode(value, True), key)


@given(st.integers(0, 3 * VALUE_MAX), st.sampled_from([b" ", b"9", b"\xff"]))
def test_a_value_over_the_limit_is_refused_on_its_size(size: int, filler: bytes) -> None:
    raw = b"{" + filler * size
    try:
        parse_inbound(raw)
    except ContractError as error:
        assert ("over the limit" in error.reason) == (len(raw) > VALUE_MAX)


header_values = st.none() | st.binary(max_size=64) | st.integers(0, HEADERS_MAX).map(bytes)


@given(st.lists(st.tuples(st.text(max_size=20), header_values), max_size=8))
def test_headers_are_refused_exactly_when_over_16_kib(headers: list[Any]) -> None:
    size = sum(len(k.encode("utf-8", "surrogatepass")) + len(v or b"") for k, v in headers)
    if size > HEADERS_MAX:
        with pytest.raises(ContractError) as refused:
            check_headers(headers)
        assert refused.value.field == "headers"
    else:
        check_headers(headers)


@given(st.lists(any_text | with_nir | st.from_regex(r"[0-9 .]{0,30}", fullmatch=True), max_size=6))
def test_a_masked_text_never_holds_a_nir(parts: list[str]) -> None:
    text = "".join(parts)
    masked = mask_personal(text)
    assert NIR_RUN.search(masked) is None
    assert CORSICAN_RUN.search(masked) is None
    assert mask_personal(masked) == masked
    for found in re.findall(r"\d{13,}", text):
        assert found not in masked


@given(with_nir, st.sampled_from(["payload.cotisation_id", "source", None]))
def test_a_contract_error_never_holds_a_nir_whatever_it_is_given(
    text: str, field: str | None
) -> None:
    assume(text.strip())
    error = ContractError(f"bad value (got {text!r})", field)
    assert NIR_RUN.search(str(error)) is None
    assert CORSICAN_RUN.search(str(error)) is None
