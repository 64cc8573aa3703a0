"""Proofs an auditor checks alone: a subject's recorded events with Merkle inclusion proofs
under a signed anchor (`mandat audit prove`), and their check with nothing but the file and
the public key (`mandat audit check-proof`): no database, no Kafka.

A proof is one canonical JSON document (sorted keys, no spaces, then one newline):

    {"format": "mandat-proof/1", "subject": <the id asked about, or null>,
     "services": [{"anchor": <signed anchor>,
                   "events": [{<the row's fields>, "previous_hash": <hex>,
                               "path": [<hex>, ...]}, ...],
                   "consistency": null | {"anchor": <an earlier signed anchor>,
                                          "path": [<hex>, ...]}}, ...]}

Each event carries every column the chain hash covers and the chain hash of the row before
it. The checker recomputes the row's chain hash (the store's own `chain_hash`), its leaf
(SHA-256(0x00 || chain hash)), and walks the audit path to the root the anchor signed. The
anchor's signature, over its sizes and hashes, ties that root to the agency's key. The file
itself must be canonical: any altered byte either changes what is checked, and the check
fails, or breaks the canonical form, and the check fails.

Events are those `mandat audit trail` shows; the checker requires each to be about the
subject (naming it, or decided on an input naming it), registry facts excepted (context the
decisions relied on). A proof shows that these events are in the signed record, unaltered,
at these positions; it does not show that no other event about the subject exists.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.adapters.eventstore import EventStore, StoredEvent
from services.adapters.runtime.logs import mask_nir
from services.adapters.trust.anchors import Anchor, AnchorFormatError, anchor_from_dict
from services.adapters.trust.merkle import (
    consistency_nodes,
    inclusion_nodes,
    leaf_hash,
    root_from_path,
    verify_consistency,
)
from services.adapters.trust.storetree import GapError, tree_of
from services.domain.catalog import INPUT_TYPES
from services.domain.kernel.records import GENESIS_HASH, canonical_bytes, expected_hash
from services.domain.registry import REGISTRY_EVENT_TYPES
from services.tools.audit.reading import subjects_of
from services.tools.audit.report import as_report
from services.tools.audit.trail import relied_on, trail

PROOF_FORMAT = "mandat-proof/1"
MAX_PROOF_BYTES = 256 * 1024 * 1024
_EVENT_FIELDS = frozenset(
    {
        "position",
        "stream_id",
        "stream_version",
        "event_id",
        "event_type",
        "schema_version",
        "payload",
        "metadata",
        "recorded_at",
        "previous_hash",
        "path",
    }
)


class ProofError(Exception):
    """A proof cannot be made (the store contradicts the anchor, nothing to prove)."""


# --- making a proof -------------------------------------------------------------------------


def event_entry(event: StoredEvent, previous_hash: bytes, path: Sequence[bytes]) -> dict[str, Any]:
    """An event of a proof: the row as stored, the hash before it, its audit path."""
    return {
        "position": event.position,
        "stream_id": event.stream_id,
        "stream_version": event.stream_version,
        "event_id": str(event.event_id),
        "event_type": event.event_type,
        "schema_version": event.schema_version,
        "payload": event.payload,
        "metadata": event.metadata,
        "recorded_at": event.recorded_at.isoformat(),
        "previous_hash": previous_hash.hex(),
        "path": [h.hex() for h in path],
    }


def proof_bytes(subject: str | None, parts: Sequence[dict[str, Any]]) -> bytes:
    """The proof document, in its one canonical form."""
    return (
        canonical_bytes({"format": PROOF_FORMAT, "subject": subject, "services": list(parts)})
        + b"\n"
    )


@dataclass
class ServiceProof:
    """The part of a proof about one store, and what could not be put in it."""

    part: dict[str, Any]
    proven: int
    after_anchor: int  # events about the subject recorded after the anchor (not provable)


async def prove_service(
    store: EventStore,
    service: str,
    subject: str | None,
    anchor: Anchor,
    earlier: Anchor | None = None,
) -> ServiceProof:
    """Prove `subject`'s events in `store` under `anchor` (and, with `earlier`, that the
    anchor extends it). One pass over the chain hashes up to the anchor's size gives every
    audit path and the root, which must be the anchor's: a store that does not hold what
    was signed cannot prove anything."""
    if anchor.service != service or anchor.schema != store.schema:
        raise ProofError(
            f"the anchor is of {anchor.service}/{anchor.schema}, not of {service}/{store.schema}"
        )
    events: list[StoredEvent] = []
    if subject is not None:
        events = [entry.event for entry in (await trail(store, service, subject)).entries]
    proven = [e for e in events if e.position <= anchor.size]
    wanted = {r for e in proven for r in inclusion_nodes(e.position - 1, anchor.size)}
    if earlier is not None:
        if earlier.size > anchor.size:
            raise ProofError(
                f"the earlier anchor (size {earlier.size}) is larger than the "
                f"later one ({anchor.size})"
            )
        wanted |= set(consistency_nodes(earlier.size, anchor.size))
    try:
        tree = await tree_of(store, anchor.size, wanted)
    except GapError as exc:
        raise ProofError(
            f"the store does not hold the rows the {anchor.describe()} signed: "
            f"{exc}; run `mandat audit chain`"
        ) from exc
    head_hash = await store.hash_at(anchor.size)
    if tree.root() != anchor.root or head_hash != anchor.chain_hash:
        raise ProofError(
            f"the store does not hold what the {anchor.describe()} signed; run `mandat audit chain`"
        )
    nodes = tree.hashes()
    previous = await _previous_hashes(store, [e.position for e in proven])
    entries = []
    for event in proven:
        before = previous[event.position - 1]
        if expected_hash(before, event) != event.hash:
            raise ProofError(
                f"row #{event.position}'s content does not match its chain "
                "hash; run `mandat audit chain`"
            )
        path = [nodes[r] for r in inclusion_nodes(event.position - 1, anchor.size)]
        entries.append(event_entry(event, before, path))
    consistency = None
    if earlier is not None:
        consistency = {
            "anchor": earlier.as_dict(),
            "path": [nodes[r].hex() for r in consistency_nodes(earlier.size, anchor.size)],
        }
    part = {"anchor": anchor.as_dict(), "events": entries, "consistency": consistency}
    return ServiceProof(part, len(proven), len(events) - len(proven))


async def _previous_hashes(store: EventStore, positions: Sequence[int]) -> dict[int, bytes]:
    wanted = [p - 1 for p in positions if p > 1]
    found = {0: GENESIS_HASH} | await store.hashes_at(wanted)
    missing = [p for p in wanted if p not in found]
    if missing:
        raise ProofError(f"position #{missing[0]} is missing from the store")
    return found


# --- checking a proof (offline) -------------------------------------------------------------


class Invalid(Exception):
    """What makes a proof fail."""


@dataclass
class ProofReport:
    """The check of a proof: what holds, and the first thing that does not."""

    lines: list[str] = field(default_factory=list)
    failure: str | None = None
    events: int = 0
    services: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None

    def as_dict(self) -> dict[str, Any]:
        return as_report(self, leave_out=("lines",), ok=self.ok)


def check_proof(data: bytes, keys: Sequence[Ed25519PublicKey]) -> ProofReport:
    """Check a proof file's bytes with the public key(s) only."""
    report = ProofReport()
    try:
        _check(data, keys, report)
    except Invalid as exc:
        report.failure = str(exc)
    except Exception as exc:  # hostile input fails the check, never the checker
        report.failure = f"malformed proof ({type(exc).__name__})"
    return report


def _check(data: bytes, keys: Sequence[Ed25519PublicKey], report: ProofReport) -> None:
    if len(data) > MAX_PROOF_BYTES:
        raise Invalid("the file is too large to be a proof")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise Invalid("not JSON") from exc
    if not isinstance(document, dict) or set(document) != {"format", "subject", "services"}:
        raise Invalid("not a proof document")
    if document["format"] != PROOF_FORMAT:
        raise Invalid("unknown proof format")
    if canonical_bytes(document) + b"\n" != data:
        raise Invalid("the file is not in its canonical form: it was altered (or re-encoded)")
    subject, parts = document["subject"], document["services"]
    if subject is not None and not isinstance(subject, str):
        raise Invalid("malformed subject")
    if not isinstance(parts, list) or not parts:
        raise Invalid("no service in the proof")
    report.lines.append(f"proof about {masked(subject)}, sha256 {digest_of(data)[:16]}…")
    seen: set[tuple[str, str]] = set()
    for part in parts:
        anchor = _check_part(part, subject, keys, report)
        if (anchor.service, anchor.schema) in seen:
            raise Invalid(f"{anchor.service} appears twice")
        seen.add((anchor.service, anchor.schema))


def _anchor(document: Any, keys: Sequence[Ed25519PublicKey], what: str) -> Anchor:
    try:
        anchor = anchor_from_dict(document)
    except AnchorFormatError as exc:
        raise Invalid(f"{what}: {exc}") from exc
    if not anchor.signed_by(keys):
        raise Invalid(
            f"{what}: bad signature (the {anchor.describe()} is not signed by the given key)"
        )
    return anchor


def _check_part(
    part: Any, subject: str | None, keys: Sequence[Ed25519PublicKey], report: ProofReport
) -> Anchor:
    if not isinstance(part, dict) or set(part) != {"anchor", "events", "consistency"}:
        raise Invalid("malformed service part")
    anchor = _anchor(part["anchor"], keys, "anchor")
    where = f"{anchor.service} (schema {anchor.schema})"
    report.lines.append(f"{where}: {anchor.describe()}: signature OK")
    events = _check_events(part["events"], anchor, where)
    if subject is None and events:
        raise Invalid(f"{where}: events without a subject")
    if subject is not None:
        _check_about(events, subject, where)
    relied = relied_on_positions(events)
    for event in events:
        facts = ", ".join(f"#{p}" for p in relied.get(event.position, ()))
        report.lines.append(
            f"    #{event.position:<8} {event.event_type:<27} "
            f"{event.recorded_at.isoformat()}  included"
            + (f" (relies on {facts})" if facts else "")
        )
    report.events += len(events)
    summary: dict[str, Any] = {
        "service": anchor.service,
        "schema": anchor.schema,
        "anchor_size": anchor.size,
        "anchored_at": anchor.anchored_at,
        "key_id": anchor.key_id,
        "positions": [e.position for e in events],
    }
    if part["consistency"] is not None:
        earlier = _check_consistency(part["consistency"], anchor, keys, where)
        summary["extends"] = {"size": earlier.size, "anchored_at": earlier.anchored_at}
        report.lines.append(f"{where}: extends the {earlier.describe()}: consistency OK")
    report.services.append(summary)
    return anchor


def _check_events(entries: Any, anchor: Anchor, where: str) -> list[StoredEvent]:
    """Every event's leaf leads to the anchor's root; the events as the store had them."""
    if not isinstance(entries, list):
        raise Invalid(f"{where}: malformed events")
    events: list[StoredEvent] = []
    for entry in entries:
        event, previous, path = _event(entry, where)
        if events and event.position <= events[-1].position:
            raise Invalid(f"{where}: events out of order at #{event.position}")
        if event.position > anchor.size:
            raise Invalid(f"{where}: #{event.position} is after the anchor (size {anchor.size})")
        if event.position == 1 and previous != GENESIS_HASH:
            raise Invalid(f"{where}: #1 does not chain to the genesis hash")
        if events and events[-1].position == event.position - 1 and previous != events[-1].hash:
            raise Invalid(f"{where}: #{event.position} does not chain to #{events[-1].position}")
        if event.position == anchor.size and event.hash != anchor.chain_hash:
            raise Invalid(f"{where}: #{event.position} is not the chain head the anchor signed")
        root = root_from_path(event.position - 1, anchor.size, leaf_hash(event.hash), path)
        if root != anchor.root:
            raise Invalid(
                f"{where}: #{event.position} ({event.event_type}) is not in the "
                "signed tree: its content, position or audit path was altered"
            )
        events.append(event)
    return events


def _event(entry: Any, where: str) -> tuple[StoredEvent, bytes, list[bytes]]:
    """An event of the proof, its chain hash recomputed from its fields (the store's own
    function), the previous hash and its audit path."""
    if not isinstance(entry, dict) or set(entry) != _EVENT_FIELDS:
        raise Invalid(f"{where}: malformed event")
    try:
        position = _natural(entry["position"])
        event_id = UUID(entry["event_id"])
        recorded_at = datetime.fromisoformat(entry["recorded_at"])
        previous = _hex32(entry["previous_hash"])
        path = [_hex32(h) for h in entry["path"]]
        fields_ok = (
            str(event_id) == entry["event_id"]
            and recorded_at.isoformat() == entry["recorded_at"]
            and recorded_at.tzinfo is not None
            and isinstance(entry["stream_id"], str)
            and isinstance(entry["event_type"], str)
            and isinstance(entry["payload"], dict)
            and isinstance(entry["metadata"], dict)
            and _natural(entry["stream_version"]) > 0
            and position > 0
        )
        schema_version = _natural(entry["schema_version"])
    except (TypeError, ValueError, AttributeError) as exc:
        raise Invalid(f"{where}: malformed event ({type(exc).__name__})") from exc
    if not fields_ok:
        raise Invalid(f"{where}: malformed event at #{entry.get('position')}")
    unhashed = StoredEvent(
        position,
        entry["stream_id"],
        entry["stream_version"],
        event_id,
        entry["event_type"],
        schema_version,
        entry["payload"],
        entry["metadata"],
        recorded_at,
        b"",
    )
    event = StoredEvent(
        position,
        unhashed.stream_id,
        unhashed.stream_version,
        event_id,
        unhashed.event_type,
        schema_version,
        unhashed.payload,
        unhashed.metadata,
        recorded_at,
        expected_hash(previous, unhashed),
    )
    return event, previous, path


def _natural(value: Any) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise ValueError("not a natural number")
    return value


def _hex32(value: Any) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or value != value.lower():
        raise ValueError("not a hash")
    return bytes.fromhex(value)


def _check_about(events: list[StoredEvent], subject: str, where: str) -> None:
    """Each event names the subject, or was decided on an input naming it, or is a
    registry fact (the context decisions rely on); and one names it at least."""
    naming = {e.position for e in events if subject in subjects_of(e.payload)}
    if not naming:
        raise Invalid(f"{where}: no event names the subject")
    inputs = {
        str(e.event_id) for e in events if e.position in naming and e.event_type in INPUT_TYPES
    }
    for event in events:
        if event.position in naming or event.event_type in REGISTRY_EVENT_TYPES:
            continue
        if str(event.metadata.get("causation_id")) not in inputs:
            raise Invalid(
                f"{where}: #{event.position} ({event.event_type}) is not about the subject"
            )


def _check_consistency(
    document: Any, anchor: Anchor, keys: Sequence[Ed25519PublicKey], where: str
) -> Anchor:
    if not isinstance(document, dict) or set(document) != {"anchor", "path"}:
        raise Invalid(f"{where}: malformed consistency proof")
    earlier = _anchor(document["anchor"], keys, "earlier anchor")
    if (earlier.service, earlier.schema) != (anchor.service, anchor.schema):
        raise Invalid(f"{where}: the earlier anchor is of another store")
    try:
        path = [_hex32(h) for h in document["path"]]
    except (TypeError, ValueError) as exc:
        raise Invalid(f"{where}: malformed consistency path") from exc
    if not verify_consistency(earlier.size, anchor.size, earlier.root, anchor.root, path):
        raise Invalid(
            f"{where}: the {anchor.describe()} does not extend the "
            f"{earlier.describe()}: the record was rewritten between them, or the "
            "proof altered"
        )
    return earlier


def relied_on_positions(events: list[StoredEvent]) -> dict[int, tuple[int, ...]]:
    """For each decision of a proof, the registry facts in it the decision relied on (as
    `audit trail` finds them)."""
    facts = [e for e in events if e.event_type in REGISTRY_EVENT_TYPES]
    found = {}
    for event in events:
        if event.payload.get("faits_retenus"):
            try:
                found[event.position] = relied_on(event, facts)
            except (KeyError, TypeError, AttributeError):  # not the shape decisions have
                found[event.position] = ()
    return found


def masked(subject: str | None) -> str:
    """A subject for a report line (a NIR masked, as in the logs)."""
    return mask_nir(subject) if subject is not None else "(none)"


def digest_of(data: bytes) -> str:
    """The SHA-256 of a proof file (to cite it)."""
    return hashlib.sha256(data).hexdigest()
