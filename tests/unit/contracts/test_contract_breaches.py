"""Each kind of contract breach is refused with a ContractError naming the field and why."""

import copy
import json
from typing import Any

import pytest

from contracts import (
    ContractError,
    ConventionConclue,
    CotisationDue,
    make_nir,
    parse_inbound,
    topics,
)

pytestmark = pytest.mark.unit

Document = dict[str, Any]

VALID: Document = {
    "event_id": "7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10",
    "event_type": "CotisationDue",
    "schema_version": 1,
    "occurred_at": "2017-01-15T08:00:00Z",
    "source": "caisse-de-base/PL-IDF",
    "correlation_id": None,
    "causation_id": None,
    "payload": {
        "cotisation_id": "COT-2017-000123",
        "nir": "255081416802538",
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": "PL-IDF",
        "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
        "montant_cents": 195000,
        "exigible_le": "2017-02-05",
    },
}
CORSE_DU_SUD = make_nir("185052A123456")
HAUTE_CORSE = make_nir("185052B123456")


def with_payload(**changes: Any) -> bytes:
    document = copy.deepcopy(VALID)
    document["payload"].update(changes)
    return json.dumps(document).encode()


def with_envelope(**changes: Any) -> bytes:
    document = copy.deepcopy(VALID)
    document.update(changes)
    return json.dumps(document).encode()


def without(*path: str) -> bytes:
    document = copy.deepcopy(VALID)
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return json.dumps(document).encode()


def convention(**changes: Any) -> bytes:
    payload = {
        "convention_id": "CNV-2017-001",
        "organisme_id": "OC-MUT-01",
        "objet": "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
        "caisses_de_base": ["PL-IDF"],
        "effet_du": "2017-01-01",
        "effet_au": None,
    }
    return with_envelope(event_type="ConventionConclue", payload={**payload, **changes})


# (raw message, field named, words the reason must contain)
BREACHES: dict[str, tuple[bytes | None, str | None, str]] = {
    "null value": (None, None, "empty"),
    "empty value": (b"", None, "empty"),
    "not UTF-8": (b'{"event_type": "\xff"}', None, "not UTF-8"),
    "bad JSON": (b'{"event_type": ', None, "not JSON"),
    "NaN is not JSON": (b'{"a": NaN}', None, "not JSON"),
    "not an object": (b"[1, 2]", None, "not a JSON object"),
    "missing event_type": (without("event_type"), "event_type", "required"),
    "event_type not a string": (with_envelope(event_type=3), "event_type", "string"),
    "unknown event_type": (with_envelope(event_type="CotisationPayee"), "event_type", "unknown"),
    "decision sent inbound": (
        with_envelope(event_type="EncaissementDelegue"),
        "event_type",
        "unknown",
    ),
    "missing schema_version": (without("schema_version"), "schema_version", "required"),
    "schema_version 2": (with_envelope(schema_version=2), "schema_version", "1"),
    "schema_version true": (with_envelope(schema_version=True), "schema_version", "integer"),
    "event_id not a UUID": (with_envelope(event_id="COT-1"), "event_id", "UUID"),
    "naive occurred_at": (
        with_envelope(occurred_at="2017-01-15T08:00:00"),
        "occurred_at",
        "offset",
    ),
    "epoch occurred_at": (with_envelope(occurred_at=1484467200), "occurred_at", "ISO 8601"),
    "blank source": (with_envelope(source="  "), "source", "blank"),
    "payload not an object": (with_envelope(payload="x"), "payload", "dictionary"),
    "missing field": (without("payload", "montant_cents"), "payload.montant_cents", "required"),
    "missing nested field": (
        without("payload", "periode", "fin"),
        "payload.periode.fin",
        "required",
    ),
    "invalid NIR key": (
        with_payload(nir="255081416802539"),
        "payload.nir",
        "key is 39, expected 38",
    ),
    "short NIR": (with_payload(nir="25508141680253"), "payload.nir", "15 characters, got 14"),
    "long NIR": (with_payload(nir="2550814168025380"), "payload.nir", "15 characters, got 16"),
    "NIR with letters": (with_payload(nir="2550814X6802538"), "payload.nir", "digits"),
    "NIR as a number": (with_payload(nir=255081416802538), "payload.nir", "string"),
    "lowercase Corsica": (with_payload(nir=CORSE_DU_SUD.lower()), "payload.nir", "2A or 2B"),
    "Corsica 2A, wrong key": (
        with_payload(nir=CORSE_DU_SUD[:13] + "34"),
        "payload.nir",
        "expected 33",
    ),
    "Corsica 2B, wrong key": (
        with_payload(nir=HAUTE_CORSE[:13] + "33"),
        "payload.nir",
        "expected 60",
    ),
    "negative amount": (with_payload(montant_cents=-1), "payload.montant_cents", "greater than 0"),
    "zero amount": (with_payload(montant_cents=0), "payload.montant_cents", "greater than 0"),
    "string amount": (with_payload(montant_cents="195000"), "payload.montant_cents", "integer"),
    "float amount": (with_payload(montant_cents=1950.5), "payload.montant_cents", "integer"),
    "boolean amount": (with_payload(montant_cents=True), "payload.montant_cents", "integer"),
    "amount beyond bigint": (
        with_payload(montant_cents=2**63),
        "payload.montant_cents",
        "less than",
    ),
    "periode debut after fin": (
        with_payload(periode={"debut": "2017-12-31", "fin": "2017-01-01"}),
        "payload.periode.fin",
        "fin 2017-01-01 is before debut 2017-12-31",
    ),
    "impossible date": (with_payload(exigible_le="2017-02-30"), "payload.exigible_le", "calendar"),
    "compact date": (with_payload(exigible_le="20170205"), "payload.exigible_le", "YYYY-MM-DD"),
    "datetime as date": (
        with_payload(exigible_le="2017-02-05T00:00:00"),
        "payload.exigible_le",
        "YYYY-MM-DD",
    ),
    "number as date": (with_payload(exigible_le=20170205), "payload.exigible_le", "YYYY-MM-DD"),
    "bad enum value": (with_payload(categorie="AGRICULTEUR"), "payload.categorie", "ARTISAN"),
    "empty id": (with_payload(cotisation_id=""), "payload.cotisation_id", "blank"),
    "id with outer spaces": (
        with_payload(caisse_de_base="PL-IDF "),
        "payload.caisse_de_base",
        "whitespace",
    ),
    "id with NUL": (with_payload(cotisation_id="COT\u00001"), "payload.cotisation_id", "control"),
    "empty caisses_de_base": (
        convention(caisses_de_base=[]),
        "payload.caisses_de_base",
        "empty array",
    ),
    "caisses_de_base a string": (
        convention(caisses_de_base="PL-IDF"),
        "payload.caisses_de_base",
        "must be an array",
    ),
    "blank caisse in list": (
        convention(caisses_de_base=["PL-IDF", ""]),
        "payload.caisses_de_base[1]",
        "blank",
    ),
    "convention ends before it starts": (
        convention(effet_du="2017-06-01", effet_au="2017-05-31"),
        "payload.effet_au",
        "before effet_du",
    ),
}


@pytest.mark.parametrize(("raw", "field", "words"), BREACHES.values(), ids=BREACHES.keys())
def test_a_breach_is_refused_with_a_one_line_reason_naming_the_field(
    raw: bytes | None, field: str | None, words: str
) -> None:
    with pytest.raises(ContractError) as refused:
        parse_inbound(raw)
    assert refused.value.field == field
    assert words in refused.value.reason
    assert "\n" not in str(refused.value)
    assert str(refused.value).startswith(f"{field}: " if field else refused.value.reason)


def test_an_event_type_not_carried_by_the_topic_is_refused() -> None:
    raw = with_envelope()
    with pytest.raises(ContractError, match="not allowed on this topic") as refused:
        parse_inbound(raw, allowed=topics.PRESTATIONS_EVENT_TYPES)
    assert refused.value.field == "event_type"
    assert parse_inbound(raw, allowed=topics.COTISATIONS_EVENT_TYPES).event_type == "CotisationDue"


@pytest.mark.parametrize("nir", [CORSE_DU_SUD, HAUTE_CORSE], ids=["2A", "2B"])
def test_a_corsican_nir_with_its_key_is_accepted(nir: str) -> None:
    payload = parse_inbound(with_payload(nir=nir)).payload
    assert isinstance(payload, CotisationDue) and payload.nir == nir


def test_unknown_extra_fields_are_ignored_in_envelope_and_payload() -> None:
    document = copy.deepcopy(VALID)
    document["trace"] = {"span": 1}
    document["payload"]["commentaire"] = "ajout v1.1"
    document["payload"]["periode"]["jours"] = 365
    assert parse_inbound(json.dumps(document).encode()) == parse_inbound(with_envelope())


def test_optional_fields_may_be_omitted_or_null() -> None:
    document = copy.deepcopy(VALID)
    del document["correlation_id"], document["causation_id"]
    assert parse_inbound(json.dumps(document).encode()) == parse_inbound(with_envelope())
    payload = parse_inbound(convention()).payload
    assert isinstance(payload, ConventionConclue) and payload.effet_au is None


def test_a_reason_never_quotes_a_nir() -> None:
    with pytest.raises(ContractError) as refused:
        parse_inbound(with_payload(nir="2550814X6802538"))
    assert "2550814X6802538" not in str(refused.value)


def test_several_errors_report_the_first_and_count_the_others() -> None:
    with pytest.raises(ContractError, match=r"\(and 2 more\)") as refused:
        parse_inbound(with_payload(montant_cents=0, exigible_le="x", categorie="X"))
    assert refused.value.field == "payload.categorie"


def test_a_contract_error_becomes_reject_headers() -> None:
    with pytest.raises(ContractError) as refused:
        parse_inbound(with_payload(montant_cents=0))
    headers = dict(refused.value.headers())
    assert headers["reject_field"] == b"payload.montant_cents"
    assert headers["reject_reason"].startswith(b"payload.montant_cents: ")


def test_a_value_that_is_not_bytes_is_a_breach_not_a_crash() -> None:
    with pytest.raises(ContractError, match="must be bytes"):
        parse_inbound("{}")  # type: ignore[arg-type]  # a str on purpose: the wrong type
