"""A signed record in memory for the trust tests: a service's real decisions, chained as the
store chains them, a key, and anchors over them. (Imported as `trust_memory`.)"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from audit_memory import MemoryRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.adapters.eventstore import StoredEvent
from services.adapters.trust.anchors import Anchor, sign
from services.adapters.trust.merkle import Frontier, consistency_path, inclusion_path, leaf_hash
from services.domain.catalog import COLLECTION
from services.domain.kernel.records import GENESIS_HASH, expected_hash
from services.tools.audit.proofs import event_entry, proof_bytes
from services.tools.audit.sample import NIR_A, NIR_B, due, payment, registry, unpaid

ANCHORED_AT = datetime(2017, 7, 1, 12, 0, tzinfo=UTC)


def chained(events: list[StoredEvent]) -> list[StoredEvent]:
    """The events with the chain hashes the store would give them."""
    previous, out = GENESIS_HASH, []
    for event in events:
        event = dataclasses.replace(event, hash=expected_hash(previous, event))
        out.append(event)
        previous = event.hash
    return out


def history() -> list[StoredEvent]:
    """A collection record: registry, two contributions with payments, a rejection."""
    record = MemoryRecord(COLLECTION)
    for fact in registry():
        record.record(fact)
    record.record(due("COT-1", NIR_A, 2017, 100000))
    record.record(payment("PAY-1", "COT-1", NIR_A, 40000))
    record.reject()
    record.record(due("COT-B", NIR_B, 2017, 50000))
    record.record(payment("PAY-B", "COT-B", NIR_B, 1000))
    record.record(unpaid("COT-1", NIR_A, 60000))
    return chained(record.events)


def anchor_of(
    key: Ed25519PrivateKey,
    events: list[StoredEvent],
    size: int,
    *,
    schema: str = "collection",
    at: datetime = ANCHORED_AT,
) -> Anchor:
    frontier = Frontier()
    for event in events[:size]:
        frontier.push_data(event.hash)
    return sign(
        key,
        service="collection",
        schema=schema,
        frontier=frontier,
        chain_hash=events[size - 1].hash,
        anchored_at=at,
    )


def proof_of(
    key: Ed25519PrivateKey,
    events: list[StoredEvent],
    subject: str | None,
    positions: list[int],
    *,
    size: int | None = None,
    earlier: int | None = None,
) -> bytes:
    """A proof of the events at `positions` under an anchor of `size` rows."""
    size = size or len(events)
    leaves = [leaf_hash(e.hash) for e in events[:size]]
    entries = [
        event_entry(
            events[p - 1],
            events[p - 2].hash if p > 1 else GENESIS_HASH,
            inclusion_path(leaves, p - 1),
        )
        for p in positions
    ]
    consistency: dict[str, Any] | None = None
    if earlier is not None:
        consistency = {
            "anchor": anchor_of(key, events, earlier).as_dict(),
            "path": [h.hex() for h in consistency_path(leaves, earlier)],
        }
    part = {
        "anchor": anchor_of(key, events, size).as_dict(),
        "events": entries,
        "consistency": consistency,
    }
    return proof_bytes(subject, [part])


def about(events: list[StoredEvent], subject: str) -> list[int]:
    """The positions `audit trail` would give for a contribution (what names it, what its
    inputs caused, the registry facts)."""
    named = [e for e in events if subject in {str(v) for v in e.payload.values()}]
    inputs = {str(e.event_id) for e in named}
    caused = [e for e in events if str(e.metadata.get("causation_id")) in inputs]
    facts = [
        e
        for e in events
        if e.event_type in ("OrganismeDeclare", "ConventionConclue", "AffiliationEnregistree")
        and e.payload.get("nir", NIR_A) == NIR_A
    ]
    return sorted({e.position for e in [*named, *caused, *facts]})
