"""Anchors and proofs checked offline: what verifies, and that any altered byte does not."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trust_memory import about, anchor_of, history, proof_of

from services.adapters.runtime.settings import ServiceSettings
from services.adapters.trust.anchorer import ANCHORS_TOPIC
from services.adapters.trust.anchors import AnchorFormatError, parse_anchor, record_of
from services.adapters.trust.merkle import Frontier
from services.adapters.trust.signing import (
    KeyFileError,
    key_id,
    load_private_key,
    load_public_key,
    write_key_pair,
)
from services.domain.kernel.records import canonical_bytes
from services.tools.audit.proofs import check_proof, proof_bytes

pytestmark = pytest.mark.unit

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
EVENTS = history()
SUBJECT = "COT-1"
POSITIONS = about(EVENTS, SUBJECT)
PROOF = proof_of(KEY, EVENTS, SUBJECT, POSITIONS, earlier=9)


def test_the_store_s_chain_hash_is_what_the_leaves_hold() -> None:
    assert len(EVENTS) == 18 and POSITIONS == [1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 17, 18]
    assert {EVENTS[p - 1].event_type for p in POSITIONS} >= {
        "CotisationDue",
        "EncaissementDelegue",
        "PaiementRecu",
        "PaiementEncaissePourCompte",
        "CotisationImpayee",
        "ContentieuxDelegue",
        "OrganismeDeclare",
    }


def test_a_proof_verifies_with_the_public_key_alone() -> None:
    report = check_proof(PROOF, [KEY.public_key()])
    assert report.ok, report.failure
    assert report.events == len(POSITIONS)
    [service] = report.services
    assert service["positions"] == POSITIONS and service["extends"]["size"] == 9
    assert any("relies on #" in line for line in report.lines)


def test_another_key_or_no_key_refuses_it() -> None:
    for keys in ([OTHER.public_key()], []):
        report = check_proof(PROOF, keys)
        assert not report.ok and "bad signature" in (report.failure or "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_altered_byte_fails(data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(PROOF) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != PROOF[at]))
    altered = PROOF[:at] + bytes([value]) + PROOF[at + 1 :]
    assert not check_proof(altered, [KEY.public_key()]).ok


def test_every_byte_of_a_small_proof_matters() -> None:
    """Exhaustively, on a proof of one input under an anchor of 9 rows: flipping any bit
    of any byte fails the check."""
    assert EVENTS[7].event_type == "CotisationDue"
    small = proof_of(KEY, EVENTS, SUBJECT, [8], size=9)
    assert check_proof(small, [KEY.public_key()]).ok
    for at in range(len(small)):
        altered = small[:at] + bytes([small[at] ^ 0x01]) + small[at + 1 :]
        assert not check_proof(altered, [KEY.public_key()]).ok, at


def test_what_the_checker_names() -> None:
    keys = [KEY.public_key()]
    document = orjson.loads(PROOF)

    def check(doc: object) -> str:
        return check_proof(canonical_bytes(doc) + b"\n", keys).failure or ""

    pretty = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    assert "canonical form" in (check_proof(pretty, keys).failure or "")
    payment = document["services"][0]["events"][POSITIONS.index(10)]
    assert payment["event_type"] == "PaiementRecu"
    payment["payload"]["montant_cents"] += 1
    assert check(document) == (
        "collection (schema collection): #10 (PaiementRecu) is not in "
        "the signed tree: its content, position or audit path was "
        "altered"
    )
    document = orjson.loads(PROOF)
    document["services"][0]["events"][POSITIONS.index(6)]["position"] = 7  # claimed elsewhere
    assert "#7 (AffiliationEnregistree) is not in the signed tree" in check(document)
    document["services"][0]["events"][1]["position"] = 1
    assert "events out of order at #1" in check(document)
    document = orjson.loads(PROOF)
    document["services"][0]["events"][0]["previous_hash"] = "11" * 32
    assert "#1 does not chain to the genesis hash" in check(document)
    document = orjson.loads(PROOF)
    document["subject"] = "COT-B"
    assert check(document).endswith("no event names the subject")
    stray = proof_of(KEY, EVENTS, SUBJECT, [8, 14])  # another contribution's decision
    assert (check_proof(stray, keys).failure or "").endswith(
        "#14 (DecisionEnAttente) is not about the subject"
    )
    document = orjson.loads(PROOF)
    document["services"][0]["consistency"]["path"].pop()
    assert "does not extend the anchor" in check(document)
    document = orjson.loads(PROOF)
    document["services"].append(document["services"][0])
    assert "appears twice" in check(document)
    for hostile in (b"", b"null\n", b"[]\n", b'{"format":"mandat-proof/1"}\n', b"\xff" * 9):
        assert not check_proof(hostile, keys).ok


def test_a_later_anchor_over_a_rewritten_prefix_does_not_extend_the_earlier_one() -> None:
    forged = [*EVENTS[:5], dataclasses.replace(EVENTS[5], payload={"forged": True}), *EVENTS[6:]]
    from trust_memory import chained

    rewritten = chained(forged)
    earlier = anchor_of(KEY, EVENTS, 9)
    later_proof = orjson.loads(proof_of(KEY, rewritten, None, [], earlier=9))
    later_proof["services"][0]["consistency"]["anchor"] = earlier.as_dict()
    report = check_proof(canonical_bytes(later_proof) + b"\n", [KEY.public_key()])
    assert not report.ok and "does not extend" in (report.failure or "")


# --- anchors --------------------------------------------------------------------------------


def test_an_anchor_round_trips_and_its_signature_covers_every_field() -> None:
    anchor = anchor_of(KEY, EVENTS, 12)
    raw = anchor.to_bytes()
    assert parse_anchor(raw) == anchor and anchor.signed_by([KEY.public_key()])
    assert not anchor.signed_by([OTHER.public_key()])
    assert anchor.key_id == key_id(KEY.public_key())
    body = orjson.loads(raw)
    assert body["chain_head"] == {"position": 12, "hash": EVENTS[11].hash.hex()}
    assert body["tree_head"]["size"] == 12
    for changed in (
        dataclasses.replace(anchor, service="benefits"),
        dataclasses.replace(anchor, schema="other"),
        dataclasses.replace(anchor, anchored_at="2018-07-01T12:00:00+00:00"),
    ):
        assert not changed.signed_by([KEY.public_key()])
    frontier = Frontier.resume(anchor.size, anchor.frontier)
    assert frontier.root() == anchor.root


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=3000)
    | st.builds(
        lambda raw, at, v: raw[:at] + bytes([v]) + raw[at + 1 :],
        st.just(anchor_of(KEY, EVENTS, 12).to_bytes()),
        st.integers(0, 1500),
        st.integers(0, 255),
    )
)
def test_anything_on_the_topic_is_an_anchor_or_named_unreadable(raw: bytes) -> None:
    record = record_of(0, 1, b"collection", raw)
    if record.anchor is None:
        assert record.problem
        with pytest.raises(AnchorFormatError):
            parse_anchor(raw)
    else:
        assert record.anchor.to_bytes() == raw


def test_the_settings_name_the_anchors_topic_and_cadence() -> None:
    s = ServiceSettings()
    assert s.topic_audit_anchors == ANCHORS_TOPIC == "rsi.audit.ancrages.v1"
    assert s.anchor_key_file is None and s.anchor_every_events >= 1
    assert s.anchor_every_seconds > 0


# --- key files ------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    private, public = write_key_pair(tmp_path / "anchor.pem")
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    assert public.name == "anchor.pem.pub"
    key = load_private_key(private)
    assert key_id(load_public_key(public)) == key_id(key.public_key())
    with pytest.raises(KeyFileError):
        write_key_pair(tmp_path / "anchor.pem")  # never overwritten
    os.chmod(private, 0o644)
    with pytest.raises(KeyFileError, match="open to others"):
        load_private_key(private)
    with pytest.raises(KeyFileError):
        load_public_key(private)  # a private key is not a public key file
    (tmp_path / "junk").write_bytes(b"junk")
    os.chmod(tmp_path / "junk", 0o600)
    with pytest.raises(KeyFileError):
        load_private_key(tmp_path / "junk")
    with pytest.raises(KeyFileError):
        load_private_key(tmp_path / "missing")


def test_an_empty_proof_of_a_subject_is_refused() -> None:
    document = orjson.loads(proof_of(KEY, EVENTS, SUBJECT, []))
    assert "names the subject" in (
        check_proof(proof_bytes(SUBJECT, document["services"]), [KEY.public_key()]).failure or ""
    )
