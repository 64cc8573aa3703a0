"""`mandat audit chain --public-key`: the store against its signed anchors.

The hash chain alone cannot see what someone with the database can do without breaking it:
rewrite a row and recompute every later hash, delete the tail, or let the services take
the deleted positions again. An anchor, signed with a key the database never sees, fixes
the chain hash at its position and the Merkle root over positions 1..size at its time, so:

- an anchor that does not verify under the given public keys is named (bad signature), and
  so is anything on the topic that is not an anchor; neither is relied upon;
- the store ending below an anchored size is a truncation of the tail;
- a stored chain hash (or a recomputed root) that differs from an anchor's is a rewrite:
  the changed row lies between the last anchor that still holds and the first that does
  not (the cadence bounds how precisely it is located);
- a row recorded after an anchor that already covered its position is a position reused
  after a truncation (the services appended again where rows were deleted).

The store is read once (chain hashes only, 32 bytes a row), every anchor compared as the
tree grows through its size.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.adapters.eventstore import EventStore
from services.adapters.trust.anchors import Anchor, AnchorRecord
from services.adapters.trust.merkle import Frontier
from services.adapters.trust.storetree import chain_hashes
from services.tools.audit.report import as_report


@dataclass
class AnchorCheck:
    """One store against the anchors of its service and schema."""

    service: str
    schema: str
    head: int
    records: int = 0  # records of the topic about this store
    verified: int = 0  # anchors whose signature holds
    holding: int = 0  # of those, the ones the store agrees with
    latest: Anchor | None = None  # the largest anchor that verifies
    findings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def unanchored(self) -> int:
        """Rows after the largest anchor (not signed yet)."""
        return max(self.head - (self.latest.size if self.latest else 0), 0)

    def as_dict(self) -> dict[str, Any]:
        return as_report(
            self,
            leave_out=("service", "schema", "head"),  # the caller names the store
            latest=self.latest.as_dict() if self.latest else None,
            unanchored=self.unanchored,
            ok=self.ok,
        )

    def lines(self) -> list[str]:
        """The check for a person."""
        head = (
            f"{self.service} (schema {self.schema}): {self.verified} signed anchors "
            f"checked, {self.holding} hold"
        )
        if self.latest is not None:
            head += (
                f"; anchored up to #{self.latest.size} at {self.latest.anchored_at}, "
                f"{self.unanchored:,} rows after it"
            )
        return [head, *(f"    {f['problem'].upper()}: {f['message']}" for f in self.findings)]


def _add(check: AnchorCheck, problem: str, message: str, **detail: Any) -> None:
    check.findings.append({"problem": problem, "message": message} | detail)


async def check_anchors(
    store: EventStore,
    service: str,
    records: Sequence[AnchorRecord],
    keys: Sequence[Ed25519PublicKey],
) -> AnchorCheck:
    """Compare `store` with the anchors about it among `records` (the anchors topic)."""
    started = time.perf_counter()
    check = AnchorCheck(service, store.schema, await store.head())
    anchors = _signed(check, [r for r in records if r.about(service, store.schema)], keys)
    if anchors:
        check.latest = anchors[-1]
        agrees = await _compare(store, anchors, check.head)
        check.holding = sum(agrees.values())
        await _name(store, check, anchors, agrees)
    elif check.head > 0:
        _add(
            check,
            "no anchor",
            f"no anchor of this store signed by the given key(s): "
            f"nothing to check its {check.head:,} rows against",
        )
    check.seconds = time.perf_counter() - started
    return check


def _signed(
    check: AnchorCheck, mine: list[AnchorRecord], keys: Sequence[Ed25519PublicKey]
) -> list[Anchor]:
    """The anchors that verify, by size; the others named."""
    check.records = len(mine)
    valid: dict[tuple[int, bytes, bytes], Anchor] = {}
    for record in mine:
        anchor = record.anchor
        if anchor is None:
            _add(
                check,
                "unreadable anchor",
                f"{record.where}: {record.problem}",
                partition=record.partition,
                offset=record.offset,
            )
        elif not anchor.signed_by(keys):
            _add(
                check,
                "bad signature",
                f"{record.where}: the {anchor.describe()} is not "
                "signed by the given key(s); it is not relied upon",
                partition=record.partition,
                offset=record.offset,
                size=anchor.size,
                key_id=anchor.key_id,
            )
        else:
            check.verified += 1
            valid.setdefault((anchor.size, anchor.chain_hash, anchor.root), anchor)
    return sorted(valid.values(), key=lambda a: (a.size, a.anchored_at))


async def _compare(store: EventStore, anchors: list[Anchor], head: int) -> dict[Anchor, bool]:
    """Whether the store agrees with each anchor it reaches (chain hash at its size and
    root over 1..size), in one pass over the chain hashes."""
    agrees: dict[Anchor, bool] = {}
    pending = [a for a in anchors if a.size <= head]
    frontier, at = Frontier(), 0
    async for position, digest in chain_hashes(store, 0, pending[-1].size if pending else 0):
        if position != frontier.size + 1:
            break  # a missing row: no anchor beyond it can hold (the chain names the row)
        frontier.push_data(digest)
        while at < len(pending) and pending[at].size == position:
            anchor = pending[at]
            agrees[anchor] = digest == anchor.chain_hash and frontier.root() == anchor.root
            at += 1
    for anchor in pending[at:]:
        agrees[anchor] = False
    return agrees


async def _name(
    store: EventStore, check: AnchorCheck, anchors: list[Anchor], agrees: dict[Anchor, bool]
) -> None:
    """Say what the disagreements are: truncation, reuse, rewrite."""
    failing = [a for a in anchors if a in agrees and not agrees[a]]
    first_bad = failing[0] if failing else None
    holding_below = [
        a.size for a in anchors if agrees.get(a) and (first_bad is None or a.size < first_bad.size)
    ]
    since = max(holding_below, default=0)
    top = anchors[-1]
    if top.size > check.head:
        _add(
            check,
            "truncated",
            f"the store ends at #{check.head} but the {top.describe()} "
            f"covered #{top.size}: rows #{check.head + 1} to #{top.size} were deleted",
            head=check.head,
            anchored_size=top.size,
            anchored_at=top.anchored_at,
        )
    upper = min(check.head, first_bad.size if first_bad else top.size)
    reused = await _reused(store, anchors, since, upper)
    if reused:
        position, recorded_at, anchor = reused[0]
        _add(
            check,
            "reused",
            f"positions reused after a truncation: row #{position} was "
            f"recorded at {recorded_at.isoformat()}, after the {anchor.describe()} that "
            f"already covered position #{position} ({len(reused)} such rows up to "
            f"#{reused[-1][0]})",
            first_position=position,
            rows=len(reused),
            anchored_at=anchor.anchored_at,
            anchored_size=anchor.size,
        )
    elif first_bad is not None:
        _add(
            check,
            "rewritten",
            f"the record up to #{first_bad.size} is not what the "
            f"{first_bad.describe()} signed: a row from #{since + 1} to #{first_bad.size} "
            "was changed and the chain hashes after it recomputed "
            f"({len(failing)} anchor(s) disagree; the last one that holds is at "
            f"#{since})",
            from_position=since + 1,
            to_position=first_bad.size,
            anchored_at=first_bad.anchored_at,
            disagreeing=len(failing),
        )


async def _reused(
    store: EventStore, anchors: list[Anchor], since: int, upper: int
) -> list[tuple[int, datetime, Anchor]]:
    """Rows in (since, upper] recorded after the first anchor that covered their position:
    that anchor read another row there."""
    if upper <= since:
        return []
    sizes = [a.size for a in anchors]  # anchors are sorted by size
    earliest: list[Anchor] = []  # earliest[i]: the earliest of anchors[i:]
    for anchor in reversed(anchors):
        if not earliest or _time(anchor) < _time(earliest[-1]):
            earliest.append(anchor)
        else:
            earliest.append(earliest[-1])
    earliest.reverse()
    found = []
    after = since
    while after < upper:
        rows = await store.recorded_times(after, upper, 50_000)
        for position, recorded_at in rows:
            i = bisect.bisect_left(sizes, position)
            if i < len(anchors) and recorded_at > _time(earliest[i]):
                found.append((position, recorded_at, earliest[i]))
        if len(rows) < 50_000:
            break
        after = rows[-1][0]
    return found


def _time(anchor: Anchor) -> datetime:
    return datetime.fromisoformat(anchor.anchored_at)
