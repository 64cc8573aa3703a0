"""docs/contract.md and docs/law.md stay true to the code: their examples parse, their limits
are the code's, every event type and motif is described, their cross-links resolve."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from contracts import (
    CENTS_MAX,
    HEADERS_MAX,
    ID_MAX,
    INBOUND_CLASSES,
    LIST_MAX,
    OUTBOUND_CLASSES,
    SUM_MAX,
    TEXT_MAX,
    VALUE_MAX,
    EncaissementDelegue,
    EncaissementRevise,
    Motif,
    expected_key,
    parse_inbound,
)

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs"
CONTRACT = (DOCS / "contract.md").read_text(encoding="utf-8")
LAW = (DOCS / "law.md").read_text(encoding="utf-8")


def json_blocks(text: str) -> list[str]:
    return re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)


def anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings."""
    found = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_the_envelope_example_is_a_valid_message_under_its_key() -> None:
    envelope = json_blocks(CONTRACT)[0]
    event = parse_inbound(envelope.encode(), key=b"255081416802538")
    assert event.event_type == "PaiementRecu" and event.correlation_id == "dossier-4411"
    assert expected_key(event) == b"255081416802538"


def _inbound_examples() -> list[dict[str, Any]]:
    block = next(b for b in json_blocks(CONTRACT) if '"OrganismeDeclare"' in b)
    return [json.loads(line) for line in block.splitlines() if line.strip()]


@pytest.mark.parametrize("example", _inbound_examples(), ids=lambda e: e["event_type"])
def test_each_inbound_example_parses_with_every_field_of_its_model(example: dict[str, Any]) -> None:
    document = json.loads(json_blocks(CONTRACT)[0]) | example
    event = parse_inbound(json.dumps(document, ensure_ascii=False).encode())
    payload_model = type(event.payload)
    assert set(payload_model.model_fields) == set(example["payload"])


def test_the_inbound_examples_cover_every_inbound_event_type() -> None:
    assert [e["event_type"] for e in _inbound_examples()] == list(INBOUND_CLASSES)


def test_the_decision_example_is_a_valid_encaissement_delegue() -> None:
    block = next(b for b in json_blocks(CONTRACT) if '"regles_version"' in b)
    decision = EncaissementDelegue.model_validate_json(block)
    assert decision.regles_version == "al1-2017.1"


def test_the_revision_example_is_a_valid_encaissement_revise_with_every_field() -> None:
    block = next(b for b in json_blocks(CONTRACT) if '"decision_revisee_id"' in b)
    revision = EncaissementRevise.model_validate_json(block)
    assert set(json.loads(block)) == set(EncaissementRevise.model_fields)
    assert revision.avant.organisme_id == "OC-MUT-01" and revision.apres.organisme_id is None
    assert revision.deja_encaisse_cents == 30000


@pytest.mark.parametrize("field", ["decision_revisee_id", "avant", "apres",
                                   "deja_encaisse_cents", "contentieux_transfere"])  # fmt: skip
def test_every_field_of_a_revision_is_described_in_the_contract(field: str) -> None:
    assert f"| `{field}`" in CONTRACT or f"`{field}`, `" in CONTRACT


def _number(value: int) -> str:
    return f"{value:,}"


@pytest.mark.parametrize(
    "words",
    [
        f"1 to {ID_MAX} characters",
        f"1 to {TEXT_MAX} characters",
        f"1 to {LIST_MAX} entries",
        f"1 to {_number(CENTS_MAX)} cents",
        f"{_number(VALUE_MAX)} bytes (64 KiB)",
        f"{_number(HEADERS_MAX)} bytes (16 KiB)",
        "|x| ≤ 10¹⁵ cents",
    ],
)
def test_the_limits_table_says_what_the_code_checks(words: str) -> None:
    assert words in CONTRACT
    assert SUM_MAX == 10**15


@pytest.mark.parametrize("event_type", sorted({*INBOUND_CLASSES, *OUTBOUND_CLASSES}))
def test_every_event_type_is_described_in_the_contract(event_type: str) -> None:
    assert f"`{event_type}`" in CONTRACT


@pytest.mark.parametrize("motif", list(Motif))
def test_every_motif_has_a_row_in_the_law(motif: Motif) -> None:
    assert re.search(rf"^\| `{motif.value}` \|", LAW, flags=re.MULTILINE), motif


@pytest.mark.parametrize(
    ("page", "target"),
    [
        (CONTRACT, "law.md#the-motifs"),
        (CONTRACT, "law.md#revisions"),
        (LAW, "contract.md#revisions"),
        (LAW, "contract.md#rejections"),
        (LAW, "contract.md#versioning"),
    ],
)
def test_cross_links_between_the_two_pages_resolve(page: str, target: str) -> None:
    name, anchor = target.split("#")
    assert f"({target})" in page
    assert anchor in anchors((DOCS / name).read_text(encoding="utf-8"))
