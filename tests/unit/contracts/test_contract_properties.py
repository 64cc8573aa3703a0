"""Properties: valid events survive the wire unchanged; no input makes parsing crash."""

import json
from typing import Any

import pytest
from contract_strategies import ROLE, events, json_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import (
    INBOUND_CLASSES,
    OUTBOUND_CLASSES,
    ContractError,
    expected_key,
    parse_inbound,
    parse_outbound,
    to_wire,
)

pytestmark = pytest.mark.unit


@given(events(INBOUND_CLASSES))
def test_a_valid_inbound_event_round_trips_through_the_wire(event: Any) -> None:
    wire = to_wire(event)
    parsed = parse_inbound(wire, allowed=ROLE[event.event_type], key=expected_key(event))
    assert parsed == event
    assert to_wire(parsed) == wire


@given(events(OUTBOUND_CLASSES))
def test_a_valid_decision_round_trips_through_the_wire(event: Any) -> None:
    wire = to_wire(event)
    parsed = parse_outbound(wire, key=expected_key(event))
    assert parsed == event
    assert to_wire(parsed) == wire


def _refused_cleanly(raw: bytes) -> None:
    try:
        parse_inbound(raw)
    except ContractError as error:
        assert not error.reason.startswith("internal error"), error
        assert "\n" not in str(error)


@given(st.binary(max_size=300))
def test_random_bytes_never_raise_anything_but_a_contract_error(raw: bytes) -> None:
    _refused_cleanly(raw)


@given(json_values)
def test_random_json_never_raises_anything_but_a_contract_error(value: Any) -> None:
    _refused_cleanly(json.dumps(value).encode())


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


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(events(INBOUND_CLASSES), st.data())
def test_a_valid_event_with_one_field_broken_never_crashes_parsing(event: Any, data: Any) -> None:
    document = json.loads(to_wire(event))
    path = data.draw(st.sampled_from(_paths(document)))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if data.draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(json_values)
    _refused_cleanly(json.dumps(document).encode())
