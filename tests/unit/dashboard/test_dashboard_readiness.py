"""What the dashboard makes of a service's /ready reply, whatever it holds: ready or not,
which component is stalled for how long and why, with odd or missing fields left out."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.nir import make_nir
from services.tools.dashboard.lag import MAX_SECONDS, Reply, readiness
from services.tools.dashboard.shown import NIR_MASK, SHOWN, render_json

pytestmark = pytest.mark.unit


def dumps(document: Any) -> bytes:
    return json.dumps(document).encode()


def ready(status: int, document: Any) -> dict[str, Any]:
    return readiness(Reply(status, json.dumps(document).encode()))


def test_a_ready_service_with_its_relay_lag() -> None:
    state = ready(
        200,
        {
            "ready": True,
            "store_head": 10,
            "relay_published": 8,
            "relay_leader": True,
            "parked": 2,
            "kafka": True,
            "postgres": True,
            "stalled": {"consumer": 0, "relay": 0},
            "reasons": [],
        },
    )
    assert state["up"] and state["ready"] and state["http_status"] == 200
    assert (state["relay_lag"], state["service_parked"]) == (2, 2)
    assert state["stalled"] == [] and state["reasons"] == [] and state["reply_problem"] is None


def test_a_stalled_relay_is_named_with_how_long_and_why() -> None:
    state = ready(
        503,
        {
            "ready": False,
            "store_head": 50,
            "relay_published": 38,
            "relay_leader": True,
            "stalled": {"consumer": 0, "relay": 75.46},
            "reasons": ["relay: no progress for 75 s, 12 events pending"],
        },
    )
    assert state["up"] and not state["ready"]
    assert state["stalled"] == [{"component": "relay", "seconds": 75.5}]
    assert state["reasons"] == ["relay: no progress for 75 s, 12 events pending"]
    both = ready(503, {"stalled": {"consumer": 12, "relay": 300}})
    assert [c["component"] for c in both["stalled"]] == ["relay", "consumer"]  # longest first


def test_a_reply_without_the_new_keys_still_reads() -> None:
    """Services that do not report stalls yet: status decides, nothing is invented."""
    assert ready(200, {"ready": True})["stalled"] == []
    down = ready(503, {"ready": False, "postgres": False})
    assert not down["ready"] and down["postgres"] is False and down["reasons"] == []
    assert readiness(Reply(503, b""))["ready"] is False
    assert readiness(Reply(200, b""))["ready"] is True


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"<html>proxy error</html>", "reply is not a JSON object"),
        (b"[1, 2]", "reply is not a JSON object"),
        (b"\xff\xfe", "reply is not a JSON object"),
        (b"[" * 10_000 + b"]" * 10_000, "reply is not a JSON object"),
        (None, "reply too large"),
    ],
)
def test_any_body_is_tolerated(body: bytes | None, problem: str) -> None:
    state = readiness(Reply(200, body))
    assert state["up"] and state["ready"] and state["reply_problem"] == problem
    assert readiness(Reply(503, body))["ready"] is False


def test_odd_fields_are_left_out_and_text_is_masked() -> None:
    nir = make_nir("1850578006084")
    state = ready(
        503,
        {
            "store_head": "10",
            "relay_published": -1,
            "relay_leader": "yes",
            "parked": 10**15,
            "kafka": 1,
            "stalled": {
                f"<b>{nir}</b>": 1e300,
                "consumer": "5",
                "relay": True,
                "deep": [[[]]],
                "x" * 500: 3,
            },
            "reasons": [f"<script>{nir}</script>", 5, {"a": 1}, None, "r" * 1000],
        },
    )
    assert (state["store_head"], state["relay_published"], state["relay_leader"]) == (
        None,
        None,
        None,
    )
    assert state["service_parked"] is None and state["kafka"] is None
    first, second = state["stalled"]
    assert first == {"component": f"<b>{NIR_MASK}</b>", "seconds": float(MAX_SECONDS)}
    assert second["seconds"] == 3 and len(second["component"]) == 40
    assert state["reasons"][:2] == [f"<script>{NIR_MASK}</script>", "5"]
    assert len(state["reasons"]) == 3 and len(state["reasons"][2]) == SHOWN
    assert nir not in render_json(state)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=30)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=15,
)
documents = st.fixed_dictionaries(
    {},
    optional={
        k: json_values
        for k in (
            "ready",
            "store_head",
            "relay_published",
            "relay_leader",
            "parked",
            "kafka",
            "postgres",
            "stalled",
            "reasons",
        )
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(100, 599),
    st.one_of(
        documents.map(dumps),
        st.binary(max_size=200),
        json_values.map(dumps),
        st.none(),
    ),
)
def test_readiness_never_raises_and_stays_safe(status: int, body: bytes | None) -> None:
    state = readiness(Reply(status, body))
    assert state["up"] and (state["ready"] is False or status == 200)
    rendered = render_json(state)
    assert re.search(r"[0-9]{15}", rendered) is None
    assert not set("<>&") & set(rendered)
