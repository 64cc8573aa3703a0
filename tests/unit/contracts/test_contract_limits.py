"""The limits of contract v1 at the door: each one accepted at its edge, refused one past it,
with the field named; the Kafka key and the headers checked; no NIR in any reason."""

import copy
import json
from typing import Any, cast

import pytest

from contracts import (
    CENTS_MAX,
    HEADERS_MAX,
    ID_MAX,
    LIST_MAX,
    SUM_MAX,
    TEXT_MAX,
    VALUE_MAX,
    ContractError,
    PaiementEncaissePourCompte,
    check_headers,
    expected_key,
    key_field,
    make_nir,
    mask_personal,
    parse_inbound,
    parse_outbound,
    to_wire,
)

pytestmark = pytest.mark.unit

NIR = "255081416802538"
ENVELOPE: dict[str, Any] = {
    "event_id": "7d0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10",
    "schema_version": 1,
    "occurred_at": "2017-01-15T08:00:00Z",
    "source": "caisse-de-base/PL-IDF",
}
PAYLOADS: dict[str, dict[str, Any]] = {
    "OrganismeDeclare": {
        "organisme_id": "OC-MUT-01",
        "nom": "Mutuelle des Professions Libérales",
        "forme_juridique": "MUTUELLE",
    },
    "ConventionConclue": {
        "convention_id": "CNV-2017-001",
        "organisme_id": "OC-MUT-01",
        "objet": "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
        "caisses_de_base": ["PL-IDF"],
        "effet_du": "2017-01-01",
    },
    "ConventionResiliee": {"convention_id": "CNV-2017-001", "effet_au": "2017-06-30"},
    "AffiliationEnregistree": {
        "nir": NIR,
        "organisme_id": "OC-MUT-01",
        "mode": "CHOIX",
        "effet_du": "2016-01-01",
    },
    "CotisationDue": {
        "cotisation_id": "COT-2017-000123",
        "nir": NIR,
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": "PL-IDF",
        "periode": {"debut": "2017-01-01", "fin": "2017-12-31"},
        "montant_cents": 195000,
        "exigible_le": "2017-02-05",
    },
    "PaiementRecu": {
        "paiement_id": "PAY-88",
        "cotisation_id": "COT-2017-000123",
        "nir": NIR,
        "montant_cents": 50000,
        "recu_le": "2017-02-03",
    },
    "CotisationImpayee": {
        "cotisation_id": "COT-2017-000123",
        "nir": NIR,
        "restant_du_cents": 145000,
        "constatee_le": "2017-03-07",
    },
    "PrestationEspecesDue": {
        "prestation_id": "PRE-2017-42",
        "nir": NIR,
        "categorie": "PROFESSION_LIBERALE",
        "caisse_de_base": "PL-IDF",
        "nature": "ALLOCATION_REPOS_MATERNEL",
        "fait_generateur_le": "2017-05-02",
        "montant_cents": 326900,
    },
}
KEYS = {
    "OrganismeDeclare": b"OC-MUT-01",
    "ConventionConclue": b"CNV-2017-001",
    "ConventionResiliee": b"CNV-2017-001",
    **{t: NIR.encode() for t in PAYLOADS if t.startswith(("Affiliation", "Cot", "Pai", "Pre"))},
}


def message(event_type: str, envelope: dict[str, Any] | None = None, **payload: Any) -> bytes:
    document = {**ENVELOPE, "event_type": event_type, **(envelope or {})}
    document["payload"] = {**copy.deepcopy(PAYLOADS[event_type]), **payload}
    return json.dumps(document, ensure_ascii=False).encode()


def refused(raw: bytes, **options: Any) -> ContractError:
    with pytest.raises(ContractError) as caught:
        parse_inbound(raw, **options)
    return caught.value


# (event type, field, value at the limit, value one past it)
EDGES: list[tuple[str, str, Any, Any]] = [
    ("CotisationDue", "cotisation_id", "C" * ID_MAX, "C" * (ID_MAX + 1)),
    ("PaiementRecu", "paiement_id", "P" * ID_MAX, "P" * (ID_MAX + 1)),
    ("PrestationEspecesDue", "prestation_id", "é" * ID_MAX, "é" * (ID_MAX + 1)),
    ("AffiliationEnregistree", "organisme_id", "O" * ID_MAX, "O" * (ID_MAX + 1)),
    ("ConventionResiliee", "convention_id", "K" * ID_MAX, "K" * (ID_MAX + 1)),
    ("CotisationDue", "caisse_de_base", "B" * ID_MAX, "B" * (ID_MAX + 1)),
    ("ConventionConclue", "caisses_de_base", ["B" * ID_MAX], ["B" * (ID_MAX + 1)]),
    ("ConventionConclue", "caisses_de_base", ["B"] * LIST_MAX, ["B"] * (LIST_MAX + 1)),
    ("OrganismeDeclare", "nom", "n" * TEXT_MAX, "n" * (TEXT_MAX + 1)),
    ("CotisationDue", "montant_cents", CENTS_MAX, CENTS_MAX + 1),
    ("PaiementRecu", "montant_cents", CENTS_MAX, CENTS_MAX + 1),
    ("CotisationImpayee", "restant_du_cents", CENTS_MAX, CENTS_MAX + 1),
    ("PrestationEspecesDue", "montant_cents", CENTS_MAX, CENTS_MAX + 1),
]


@pytest.mark.parametrize(
    ("event_type", "field", "edge", "beyond"),
    EDGES,
    ids=[
        f"{t}.{f}" + ("[n]" if f == "caisses_de_base" and len(e) > 1 else "")
        for t, f, e, _ in EDGES
    ],
)
def test_a_payload_limit_accepts_its_edge_and_refuses_one_past_it(
    event_type: str, field: str, edge: Any, beyond: Any
) -> None:
    parsed = parse_inbound(message(event_type, **{field: edge}))
    assert getattr(parsed.payload, field) == (tuple(edge) if isinstance(edge, list) else edge)
    error = refused(message(event_type, **{field: beyond}))
    assert error.field is not None and error.field.startswith(f"payload.{field}")
    assert "at most" in error.reason or "less than or equal" in error.reason


@pytest.mark.parametrize("field", ["source", "correlation_id", "causation_id"])
def test_the_envelope_ids_have_the_same_limit(field: str) -> None:
    parse_inbound(message("CotisationDue", {field: "s" * ID_MAX}))
    assert refused(message("CotisationDue", {field: "s" * (ID_MAX + 1)})).field == field


def test_a_zero_amount_is_refused_everywhere_including_what_is_still_owed() -> None:
    error = refused(message("CotisationImpayee", restant_du_cents=0))
    assert (error.field, "greater than 0" in error.reason) == ("payload.restant_du_cents", True)


@pytest.mark.parametrize("character", ["\x00", "\x1f", "\x7f", "\x85", "\x9f"])
def test_an_id_with_a_control_character_is_refused(character: str) -> None:
    error = refused(message("CotisationDue", cotisation_id=f"COT{character}1"))
    assert (error.field, "control" in error.reason) == ("payload.cotisation_id", True)


def padded(size: int) -> bytes:
    """A valid CotisationDue of exactly `size` bytes (an ignored extra field pads it)."""
    bare = message("CotisationDue", {"pad": ""})
    raw = message("CotisationDue", {"pad": "x" * (size - len(bare))})
    assert len(raw) == size
    return raw


def test_a_value_of_64_kib_is_accepted_and_one_byte_more_is_refused_before_decoding() -> None:
    assert parse_inbound(padded(VALUE_MAX)).event_type == "CotisationDue"
    error = refused(padded(VALUE_MAX + 1))
    assert error.field is None
    assert error.reason == f"message value is {VALUE_MAX + 1} bytes, over the limit of 65536 bytes"
    # refused on size alone: not even decoded
    assert "65537 bytes" in refused(b"\xff" * (VALUE_MAX + 1)).reason
    # bytes-like values other than the signature's `bytes`, as a careless caller passes them
    assert "bytes, over the limit" in refused(cast(bytes, bytearray(VALUE_MAX + 1))).reason
    huge_view = memoryview(b"{" * (VALUE_MAX + 1))
    assert "bytes, over the limit" in refused(cast(bytes, huge_view)).reason


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_a_record_under_its_contract_key_is_accepted(event_type: str) -> None:
    parsed = parse_inbound(message(event_type), key=KEYS[event_type])
    assert expected_key(parsed) == KEYS[event_type]
    assert KEYS[event_type] == str(getattr(parsed.payload, key_field(event_type))).encode()


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
@pytest.mark.parametrize(
    "key", [None, b"", b"PL-IDF", b"OC-MUT-01 ", make_nir("1850575123456").encode()]
)
def test_a_record_under_another_key_is_refused_without_quoting_either_key(
    event_type: str, key: bytes | None
) -> None:
    if key == KEYS[event_type]:
        pytest.skip("that is its key")
    error = refused(message(event_type), key=key)
    assert error.field == "key"
    assert key_field(event_type) in error.reason
    assert ("no key" in error.reason) == (key is None)
    for secret in (KEYS[event_type], key or b""):
        assert not secret or secret.decode() not in str(error)


def test_without_a_key_argument_the_key_is_not_checked() -> None:
    assert parse_inbound(message("CotisationDue")).event_type == "CotisationDue"


def test_a_broken_value_is_refused_for_its_value_even_under_a_wrong_key() -> None:
    error = refused(message("CotisationDue", montant_cents=0), key=b"wrong")
    assert error.field == "payload.montant_cents"


def test_a_key_that_is_not_bytes_is_refused_not_a_crash() -> None:
    error = refused(message("CotisationDue"), key="255081416802538")
    assert error.field == "key" and NIR not in str(error)


def test_a_decision_is_keyed_by_its_nir() -> None:
    decision = {
        "nir": NIR,
        "caisse_de_base": "PL-IDF",
        "base_legale": ["CSS L611-20 al.1 (v. 2017-01-01)"],
        "regles_version": "2017.1",
        "cotisation_id": "COT-1",
        "paiement_id": "PAY-1",
        "organisme_id": "OC-1",
        "montant_cents": 1,
        "solde_restant_cents": -SUM_MAX,
    }
    raw = json.dumps({**ENVELOPE, "event_type": "PaiementEncaissePourCompte", "payload": decision})
    assert parse_outbound(raw.encode(), key=NIR.encode()).payload.nir == NIR
    with pytest.raises(ContractError) as caught:
        parse_outbound(raw.encode(), key=b"OC-1")
    assert caught.value.field == "key"


@pytest.mark.parametrize("solde", [SUM_MAX + 1, -SUM_MAX - 1, 2**63])
def test_a_balance_beyond_10_to_the_15_is_refused(solde: int) -> None:
    with pytest.raises(ValueError, match="solde_restant_cents"):
        PaiementEncaissePourCompte(
            nir=NIR,
            caisse_de_base="PL-IDF",
            base_legale=("CSS L611-20 al.1 (v. 2017-01-01)",),
            regles_version="2017.1",
            cotisation_id="COT-1",
            paiement_id="PAY-1",
            organisme_id="OC-1",
            montant_cents=1,
            solde_restant_cents=solde,
        )


def test_the_largest_valid_inbound_message_still_fits_the_value_limit() -> None:
    """A message at every limit at once, with 4-byte characters: its canonical form (what a
    service would store and publish) is still within 64 KiB."""
    widest = "😀" * ID_MAX
    raw = message(
        "ConventionConclue",
        {"source": widest, "correlation_id": widest, "causation_id": widest},
        convention_id=widest,
        organisme_id=widest,
        caisses_de_base=[widest] * LIST_MAX,
    )
    event = parse_inbound(raw)
    assert len(to_wire(event)) <= VALUE_MAX


def test_headers_up_to_16_kib_pass_and_beyond_are_refused() -> None:
    check_headers([])
    check_headers([("trace", None), ("k", b"v" * (HEADERS_MAX - 6))])  # 5 + 1 + the rest
    check_headers([("é" * 10, b"v" * (HEADERS_MAX - 20))])  # keys count in UTF-8 bytes
    with pytest.raises(ContractError) as caught:
        check_headers([("trace", None), ("k", b"v" * (HEADERS_MAX - 5))])
    assert caught.value.field == "headers"
    assert f"{HEADERS_MAX + 1} bytes" in caught.value.reason and "16384" in caught.value.reason
    with pytest.raises(ContractError, match="over the limit"):
        check_headers([("é" * 10, b"v" * (HEADERS_MAX - 19))])
    with pytest.raises(ContractError, match="over the limit"):
        check_headers([(f"h{i}", b"x" * 100) for i in range(200)])


@pytest.mark.parametrize(
    "headers",
    [[("k", "text")], [(None, b"v")], [("k",)], [3], None, [("\ud800", b"v" * HEADERS_MAX)]],
)
def test_malformed_headers_are_a_contract_error_not_a_crash(headers: Any) -> None:
    with pytest.raises(ContractError) as caught:
        check_headers(headers)
    assert caught.value.field == "headers"


CORSICAN = make_nir("185052A123456")


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("an id", message("CotisationDue", cotisation_id=f"{NIR} ")),
        ("an id, Corsican", message("CotisationDue", cotisation_id=f" {CORSICAN}")),
        ("an amount", message("CotisationDue", montant_cents=int(NIR))),
        ("an amount as text", message("CotisationDue", montant_cents=NIR)),
        ("the event type", message("CotisationDue", {"event_type": NIR})),
        ("a date", message("CotisationDue", exigible_le=NIR)),
        ("an enum", message("CotisationDue", categorie=NIR)),
        ("the event id", message("CotisationDue", {"event_id": NIR})),
        ("spaced", message("CotisationDue", cotisation_id="2 55 08 14 168 025 38 ")),
        ("the source", message("CotisationDue", {"source": f"x{NIR}" * 5})),
    ],
)
def test_a_nir_sent_in_the_wrong_field_is_masked_in_the_reason(where: str, raw: bytes) -> None:
    error = refused(raw)
    text = str(error) + repr(error.headers())
    assert NIR not in text and CORSICAN not in text and "168 025" not in text
    assert not any(NIR[i : i + 13] in text for i in range(3))


def test_mask_personal_hides_nirs_but_leaves_amounts_dates_and_ids() -> None:
    text = f"{NIR}, {CORSICAN.lower()}, 1 55 08 14 168 025 38, 100000000000, COT-2017-000123"
    masked = mask_personal(text)
    assert masked == "<masked>, <masked>, <masked>, 100000000000, COT-2017-000123"


def test_a_reason_is_one_bounded_line() -> None:
    error = ContractError("x\n" * 1000, "payload.x")
    assert "\n" not in str(error) and len(error.reason) == 400
