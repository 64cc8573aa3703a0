"""Replay compares canonical content byte for byte, and says which fields differ."""

from __future__ import annotations

import pytest

from services.domain.kernel.records import canonical_json
from services.tools.audit.compare import _CANONICAL, FieldDiff, decision_only, diff, same

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1, 2, {"z": None, "y": "é"}]},
        {"montant_cents": 195000, "base_legale": ["CSS L611-20 al.1 (v. 2017-01-01)"]},
        [],
        "texte",
        1.5,
    ],
)
def test_the_shared_encoder_writes_exactly_canonical_json(value: object) -> None:
    assert _CANONICAL.encode(value) == canonical_json(value)


def test_equal_values_in_another_key_order_are_the_same() -> None:
    assert same({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"d": 3, "c": 2}, "a": 1})


@pytest.mark.parametrize("recorded, replayed", [(1, 1.0), (1, True), (0, False), ("1", 1)])
def test_values_python_finds_equal_but_json_writes_differently_are_not_the_same(
    recorded: object, replayed: object
) -> None:
    assert recorded == replayed or str(recorded) == str(replayed)
    assert not same({"x": recorded}, {"x": replayed})


def test_diff_names_each_differing_leaf_by_its_path() -> None:
    recorded = {
        "payload": {"organisme_id": "OC-X", "faits": {"ids": ["a", "b"]}, "k": 1},
        "event_type": "EncaissementDelegue",
    }
    replayed = {
        "payload": {"organisme_id": "OC-MUT-01", "faits": {"ids": ["a", "c"]}, "new": True},
        "event_type": "EncaissementDelegue",
    }
    assert diff(recorded, replayed) == [
        FieldDiff("payload.faits.ids[1]", "b", "c"),
        FieldDiff("payload.k", 1, "<absent>"),
        FieldDiff("payload.new", "<absent>", True),
        FieldDiff("payload.organisme_id", "OC-X", "OC-MUT-01"),
    ]
    assert (
        str(diff(recorded, replayed)[-1])
        == 'payload.organisme_id: recorded "OC-X" != replayed "OC-MUT-01"'
    )


def test_diff_of_lists_of_other_lengths_is_the_whole_list() -> None:
    assert diff({"l": [1]}, {"l": [1, 2]}) == [FieldDiff("l", [1], [1, 2])]


def test_diff_of_same_values_is_empty() -> None:
    assert diff({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}) == []


def test_what_if_compares_decisions_without_rule_version_ids_or_stream_versions() -> None:
    content = {
        "event_id": "e1",
        "event_type": "EncaissementDelegue",
        "stream_id": "s",
        "stream_version": 2,
        "schema_version": 1,
        "metadata": {"causation_id": "c"},
        "payload": {"regles_version": "al1-2017.1", "motif": None},
    }
    other = content | {
        "event_id": "e2",
        "stream_version": 3,
        "payload": {"regles_version": "al1-2017.2", "motif": None},
    }
    assert decision_only(content) == decision_only(other)
    assert not same(content, other)
