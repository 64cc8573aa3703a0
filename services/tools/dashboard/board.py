"""The dashboard's in-memory aggregate of the decision and rejection topics.

Pure: it is fed records (topic role, value, headers, timestamp) and gives a JSON-ready
snapshot. A message seen twice (the relay publishes at least once) counts once, by its
`event_id`. "Currently parked" = inputs with a `DecisionEnAttente` and no final decision yet
(both carry the input's `event_id` as `causation_id`).

A revision (`EncaissementRevise`, `VersementRevise`) settles no input: its `causation_id` is
the registry fact that caused it. It is counted per type, apart from the final decisions, and
read for what operations need from it: which organism a subject moved from and to
(`avant` → `apres`; none = not delegated), and what the outgoing organism already collected
for the caisse de base (`deja_encaisse_cents`), which it now owes it.

Whatever a record holds, feeding it never raises (:meth:`Board.ingest`): a value is parsed
only when it is at most :data:`MAX_VALUE` bytes, by orjson (which refuses nesting deeper
than 1,024 levels instead of recursing), and only scalar fields are read from it; a
decision that cannot be read is counted as unreadable. Every text kept for the page goes
through :func:`services.tools.dashboard.shown.shown` (bounded, printable, NIR-masked).
"""

from __future__ import annotations

import functools
import heapq
import re
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from contracts import topics
from contracts.outbound import EncaissementRevise, VersementRevise
from contracts.parsing import ContractError, parse_outbound
from services.domain import catalog
from services.tools.dashboard.shown import shown

SERVICES = tuple(catalog.SERVICES)
PARKED = topics.PARKED
REVISIONS = topics.REVISIONS
DECISION_ORDER = {name: service.decision_order for name, service in catalog.SERVICES.items()}
"""Display order of decision types (unknown types come after, alphabetically)."""

AMOUNT_FIELD = {
    "EncaissementDelegue": "montant_cents",
    "PaiementEncaissePourCompte": "montant_cents",
    "ContentieuxDelegue": "restant_du_cents",
    "VersementDelegue": "montant_cents",
    "VersementDirect": "montant_cents",
    "EncaissementRevise": "deja_encaisse_cents",
}
"""The amount a decision type carries (in euro cents), if any: for a revision of a
contribution, what the organism leaving had collected for the caisse (it owes it)."""

ORGANISM_COLUMN = {
    "EncaissementDelegue": "delegated",
    "PaiementEncaissePourCompte": "held",
    "ContentieuxDelegue": "litigation",
    "VersementDelegue": "paid",
}
"""Decision types that put an amount on an organism, and the column they fill."""

MAX_VALUE: Final = 1 << 20
"""A value larger than this (bytes) is not parsed: no decision is that large."""
MAX_CENTS: Final = 10**11
"""The largest amount the contract allows, in cents: a decision beyond it is unreadable."""
MAX_ROWS: Final = 200
"""Distinct (decision type, motif) rows kept per service; further ones are lumped."""
MAX_ORGANISMS: Final = 5000
"""Distinct (organism, caisse) lines kept; further ones are lumped."""
MAX_MOVES: Final = 5000
"""Distinct (service, from, to) moves of revisions kept; further ones are lumped."""
NOT_DELEGATED: Final = ""
"""A revision's side that names no organism (not delegated, paid by the caisse itself)."""
OTHER: Final = "(other)"
ID_KEPT: Final = 128
"""Characters of an id kept to recognise a duplicate (contract ids are at most 64)."""
_PLAUSIBLE_EPOCH: Final = (946_684_800.0, 7_258_118_400.0)
"""Times outside 2000-2200 (a bad clock, a hostile header) are replaced by a better one."""
_DIGITS: Final = re.compile(rb"[0-9]{1,12}")
"""A partition or offset header: plain digits, short enough never to look like a NIR."""

Headers = Iterable[tuple[str, bytes | None]]
Outcome = Literal["counted", "duplicate", "unreadable"]
"""What became of a record: counted, already counted (same `event_id`), or unreadable."""


@dataclass
class Parked:
    service: str
    causation_id: str
    sujet_id: str
    motif: str
    caisse_de_base: str
    since: float  # epoch seconds


@dataclass
class Rejection:
    service: str
    at: float
    reason: str
    field: str | None
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    event_type: str | None
    event_id: str | None
    value: str | None  # the start of the rejected value, as shown (None: no value at all)
    value_bytes: int | None


@dataclass
class OrganismLine:
    counts: Counter[str] = field(default_factory=Counter)
    cents: Counter[str] = field(default_factory=Counter)


@dataclass
class OwedLine:
    """What an organism that stopped collecting owes a caisse de base, from revisions."""

    revisions: int = 0
    cents: int = 0  # deja_encaisse_cents: collected for the caisse in its tenure
    litigation: int = 0  # revisions whose litigation had been entrusted to it


@dataclass(frozen=True)
class _Move:
    """What the board reads of a revision: who handled the subject before and after."""

    before: str  # organism, or NOT_DELEGATED
    after: str
    collects: bool  # a contribution's (the organism leaving may owe the caisse), not a benefit's
    held_cents: int  # deja_encaisse_cents
    litigation: bool  # contentieux_transfere


@dataclass(frozen=True)
class _Decision:
    """What the board reads of a decision: scalars only, already bounded and masked."""

    event_id: str  # kept to recognise a duplicate ("" when it has none)
    event_type: str
    motif: str
    cents: int
    organisme_id: str
    caisse: str
    cause: str  # the input it decides (kept to pair a parked input with its decision)
    sujet_id: object  # as it came: shaped only for a parked input
    occurred_at: object
    move: _Move | None = None  # for a revision


class Board:
    """Counts, amounts, parked inputs and the latest rejections, per service."""

    def __init__(self, *, max_rejections: int = 50, max_parked_listed: int = 100) -> None:
        self.max_parked_listed = max_parked_listed
        self.decisions: dict[str, Counter[tuple[str, str]]] = {s: Counter() for s in SERVICES}
        self.decision_cents: dict[str, Counter[tuple[str, str]]] = {s: Counter() for s in SERVICES}
        self.organisms: dict[tuple[str, str], OrganismLine] = {}
        self.direct_cents: Counter[str] = Counter()  # per caisse de base: paid by itself
        self.parked: dict[str, Parked] = {}
        self.decided: set[str] = set()  # causation ids with a final decision
        self.moves: Counter[tuple[str, str, str]] = Counter()  # (service, from, to) -> n
        self.owed: dict[tuple[str, str], OwedLine] = {}  # (outgoing organism, caisse)
        self.seen: set[str] = set()
        self.rejections: deque[Rejection] = deque(maxlen=max_rejections)
        self.rejected: Counter[str] = Counter()
        self.unreadable: Counter[str] = Counter()
        self.version = 0
        self.last_message_at: float | None = None

    # -- feeding ------------------------------------------------------------------------

    def ingest(
        self,
        service: str,
        role: str,
        value: bytes | None,
        headers: Headers = (),
        timestamp_ms: int | None = None,
    ) -> Outcome:
        """Count one record of a decision (`role` "decision") or rejection topic; never
        raises, whatever the record holds: what cannot be read is counted as unreadable."""
        try:
            if role == "decision":
                return self.on_decision(service, value, timestamp_ms)
            return self.on_rejection(service, headers, value, timestamp_ms)
        except Exception:  # a bug of ours on some content: count it, never stop reading
            self.unreadable[service] += 1
            self._touch()
            return "unreadable"

    def count_unreadable(self, service: str) -> None:
        """Count a record that could not even be decoded by the Kafka client."""
        self.unreadable[service] += 1
        self._touch()

    def on_decision(
        self, service: str, value: bytes | None, timestamp_ms: int | None = None
    ) -> Outcome:
        """Count one decision message (once per `event_id`)."""
        decision = _read_decision(value)
        if decision is None:
            self.unreadable[service] += 1
            self._touch()
            return "unreadable"
        if decision.event_id:
            if decision.event_id in self.seen:
                return "duplicate"
            self.seen.add(decision.event_id)
        self._count(service, decision, timestamp_ms)
        self._touch()
        return "counted"

    def _count(self, service: str, d: _Decision, timestamp_ms: int | None) -> None:
        rows = self.decisions[service]
        row = (d.event_type, d.motif)
        if row not in rows and len(rows) >= MAX_ROWS:
            row = (OTHER, "")
        rows[row] += 1
        self.decision_cents[service][row] += d.cents
        column = ORGANISM_COLUMN.get(d.event_type)
        if column is not None:
            where = (d.organisme_id, d.caisse)
            if where not in self.organisms and len(self.organisms) >= MAX_ORGANISMS:
                where = (OTHER, OTHER)
            line = self.organisms.setdefault(where, OrganismLine())
            line.counts[column] += 1
            line.cents[column] += d.cents
        elif d.event_type == "VersementDirect":
            self.direct_cents[d.caisse] += d.cents
        if d.move is not None:
            self._count_move(service, d.move, d.caisse)
            return  # caused by a registry fact: it settles no input, and unparks none
        key = f"{service}:{d.cause}"
        if d.event_type == PARKED:
            if key not in self.decided:
                previous = self.parked.get(key)
                since = previous.since if previous else _when(d.occurred_at, timestamp_ms)
                self.parked[key] = Parked(
                    service,
                    shown(d.cause) or "?",
                    _label(d.sujet_id, "?"),
                    d.motif,
                    d.caisse,
                    since,
                )
        else:
            self.decided.add(key)
            self.parked.pop(key, None)

    def _count_move(self, service: str, move: _Move, caisse: str) -> None:
        """A revision: the move it makes, and what the organism leaving owes the caisse."""
        moved = (service, move.before, move.after)
        if moved not in self.moves and len(self.moves) >= MAX_MOVES:
            moved = (service, OTHER, OTHER)
        self.moves[moved] += 1
        if not move.collects or move.before in (NOT_DELEGATED, move.after):
            return  # a benefit, or no organism leaves: nothing is owed
        where = (move.before, caisse)
        if where not in self.owed and len(self.owed) >= MAX_ORGANISMS:
            where = (OTHER, OTHER)
        line = self.owed.setdefault(where, OwedLine())
        line.revisions += 1
        line.cents += move.held_cents
        line.litigation += move.litigation

    def on_rejection(
        self, service: str, headers: Headers, value: bytes | None, timestamp_ms: int | None = None
    ) -> Outcome:
        """Count one rejected message (its headers say why), once per `event_id`.

        A header the system sets comes after any same-named one from upstream, so the
        last occurrence of each is the one shown."""
        h: dict[str, bytes | None] = {}
        for key, raw in headers:
            h[key] = raw  # the last one wins
        event_id = _kept_id(h.get("event_id"))
        if event_id:
            if event_id in self.seen:
                return "duplicate"
            self.seen.add(event_id)
        document = _document(value)
        event_type = document.get("event_type") if document is not None else None
        self.rejections.appendleft(
            Rejection(
                service=service,
                at=_epoch(timestamp_ms) or time.time(),
                reason=shown(h.get("reject_reason")) or "(no reason given)",
                field=shown(h.get("reject_field")) or None,
                source_topic=shown(h.get("source_topic")),
                source_partition=_int(h.get("source_partition")),
                source_offset=_int(h.get("source_offset")),
                event_type=shown(event_type) if isinstance(event_type, str) else None,
                event_id=shown(event_id) if event_id else None,
                value=shown(value),
                value_bytes=None if value is None else len(value),
            )
        )
        self.rejected[service] += 1
        self._touch()
        return "counted"

    def _touch(self) -> None:
        self.version += 1
        self.last_message_at = time.time()

    # -- reading ------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Everything the page shows, JSON-ready (amounts in integer cents)."""
        now = time.time() if now is None else now
        services: dict[str, Any] = {}
        for s in SERVICES:
            counts = self.decisions[s]
            order = {t: i for i, t in enumerate(DECISION_ORDER[s])}
            rows = sorted(counts, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
            services[s] = {
                "decisions": [
                    {
                        "event_type": t,
                        "motif": m,
                        "count": counts[(t, m)],
                        "amount_cents": self.decision_cents[s][(t, m)],
                    }
                    for t, m in rows
                ],
                "final": sum(
                    n for (t, _), n in counts.items() if t != PARKED and t not in REVISIONS
                ),
                "revisions": sum(n for (t, _), n in counts.items() if t in REVISIONS),
                "parked_events": sum(n for (t, _), n in counts.items() if t == PARKED),
                "parked_now": sum(1 for p in self.parked.values() if p.service == s),
                "rejected": self.rejected[s],
                "unreadable": self.unreadable[s],
            }
        organisms = [
            {
                "organisme_id": o,
                "caisse_de_base": c,
                **{f"{col}_count": line.counts[col] for col in ORGANISM_COLUMN.values()},
                **{f"{col}_cents": line.cents[col] for col in ORGANISM_COLUMN.values()},
            }
            for (o, c), line in sorted(self.organisms.items())
        ]
        parked = heapq.nsmallest(
            self.max_parked_listed, self.parked.values(), key=lambda p: (p.since, p.sujet_id)
        )
        moves = [
            {"service": s, "from": b or None, "to": a or None, "count": n}
            for (s, b, a), n in sorted(self.moves.items())
        ]
        owed = [
            {
                "organisme_id": o,
                "caisse_de_base": c,
                "revisions": line.revisions,
                "cents": line.cents,
                "litigation": line.litigation,
            }
            for (o, c), line in sorted(self.owed.items())
        ]
        totals = {
            "decisions": sum(v["final"] for v in services.values()),
            "revisions": sum(v["revisions"] for v in services.values()),
            "owed_cents": sum(line.cents for line in self.owed.values()),
            "parked_now": len(self.parked),
            "parked_events": sum(v["parked_events"] for v in services.values()),
            "rejected": sum(self.rejected.values()),
            "unreadable": sum(self.unreadable.values()),
            **{
                f"{col}_cents": sum(line.cents[col] for line in self.organisms.values())
                for col in ORGANISM_COLUMN.values()
            },
            "direct_cents": sum(self.direct_cents.values()),
        }
        return {
            "version": self.version,
            "last_message_at": _iso(self.last_message_at),
            "totals": totals,
            "services": services,
            "organisms": organisms,
            "moves": moves,
            "owed": owed,
            "direct": [
                {"caisse_de_base": c, "cents": n} for c, n in sorted(self.direct_cents.items())
            ],
            "parked": [
                {
                    "service": p.service,
                    "sujet_id": p.sujet_id,
                    "motif": p.motif,
                    "caisse_de_base": p.caisse_de_base,
                    "causation_id": p.causation_id,
                    "since": _iso(p.since),
                    "age_s": max(0.0, round(now - p.since, 1)),
                }
                for p in parked
            ],
            "rejections": [
                {
                    "service": r.service,
                    "at": _iso(r.at),
                    "reason": r.reason,
                    "field": r.field,
                    "source_topic": r.source_topic,
                    "source_partition": r.source_partition,
                    "source_offset": r.source_offset,
                    "event_type": r.event_type,
                    "event_id": r.event_id,
                    "value": r.value,
                    "value_bytes": r.value_bytes,
                }
                for r in self.rejections
            ],
        }


def _document(value: bytes | None) -> dict[str, Any] | None:
    """A value's JSON object, or None: too large, not JSON, nested too deep, not an object."""
    if not value or len(value) > MAX_VALUE:
        return None
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:  # also for non-UTF-8 and for depth beyond orjson's limit
        return None
    return document if isinstance(document, dict) else None


def _label(value: object, default: str) -> str:
    """A string field as shown; `default` when it is missing, empty or not a string."""
    if not isinstance(value, str):
        return default
    return (_short_label(value) if len(value) <= ID_KEPT else shown(value)) or default


@functools.lru_cache(maxsize=4096)
def _short_label(text: str) -> str | None:
    """`shown` of a short text: types, motifs, organisms and caisses repeat across
    decisions, so each is shaped once."""
    return shown(text)


def _read_decision(value: bytes | None) -> _Decision | None:
    """The scalars the board needs from a decision, read through the contract's outbound
    models; None when the value is not a decision of contract v1 (too large, not JSON, a
    field out of the contract). A decision type this contract does not know yet (published
    by a newer service during an upgrade) is counted from its scalars, after the known ones."""
    if not value or len(value) > MAX_VALUE:
        return None
    try:
        decision = parse_outbound(value)
    except ContractError:
        return _read_newer(value)
    payload = decision.payload
    amount = getattr(payload, AMOUNT_FIELD.get(decision.event_type, ""), 0)
    event_id = str(decision.event_id)
    sujet_id = getattr(payload, "sujet_id", None)
    return _Decision(
        event_id=event_id,
        event_type=_label(decision.event_type, "?"),
        motif=_label(getattr(payload, "motif", None), ""),
        cents=amount if type(amount) is int else 0,
        organisme_id=_label(getattr(payload, "organisme_id", None), "?"),
        caisse=_label(payload.caisse_de_base, "?"),
        cause=_kept_id(decision.causation_id) or _kept_id(sujet_id) or event_id,
        sujet_id=sujet_id,
        occurred_at=decision.occurred_at.isoformat(),
        move=_move(payload),
    )


def _move(payload: object) -> _Move | None:
    """What a revision moves (None for any other decision)."""
    if isinstance(payload, EncaissementRevise):
        held, litigation = payload.deja_encaisse_cents, payload.contentieux_transfere
    elif isinstance(payload, VersementRevise):
        held, litigation = 0, False
    else:
        return None
    return _Move(
        before=_label(payload.avant.organisme_id, NOT_DELEGATED),
        after=_label(payload.apres.organisme_id, NOT_DELEGATED),
        collects=isinstance(payload, EncaissementRevise),
        held_cents=held,
        litigation=litigation,
    )


def _read_newer(value: bytes) -> _Decision | None:
    """A decision of a type the contract does not know, from its scalars (no amount: what it
    means is not known here); None for anything else."""
    envelope = _document(value)
    if envelope is None:
        return None
    event_type, payload = envelope.get("event_type"), envelope.get("payload")
    if (
        not isinstance(event_type, str)
        or not event_type
        or event_type in topics.OUTBOUND_EVENT_TYPES  # a known type that breaks the contract
        or not isinstance(payload, dict)
    ):
        return None
    event_id = _kept_id(envelope.get("event_id"))
    return _Decision(
        event_id=event_id,
        event_type=_label(event_type, "?"),
        motif=_label(payload.get("motif"), ""),
        cents=0,
        organisme_id=_label(payload.get("organisme_id"), "?"),
        caisse=_label(payload.get("caisse_de_base"), "?"),
        cause=_kept_id(envelope.get("causation_id")) or event_id,
        sujet_id=payload.get("sujet_id"),
        occurred_at=envelope.get("occurred_at"),
    )


def _kept_id(value: object) -> str:
    """An id as kept to recognise duplicates and pair decisions ("" when there is none)."""
    if isinstance(value, bytes):
        value = value[: 4 * ID_KEPT].decode("utf-8", "replace")
    return value[:ID_KEPT] if isinstance(value, str) else ""


def _int(raw: bytes | None) -> int | None:
    """A partition or offset header as a number; None when it is not plain digits."""
    return int(raw) if raw is not None and _DIGITS.fullmatch(raw) else None


def _epoch(timestamp_ms: object) -> float | None:
    """A Kafka timestamp in epoch seconds, when it is plausible."""
    if type(timestamp_ms) is not int:
        return None
    seconds = timestamp_ms / 1000
    low, high = _PLAUSIBLE_EPOCH
    return seconds if low <= seconds <= high else None


def _when(occurred_at: object, timestamp_ms: int | None) -> float:
    """When a decision was recorded: its `occurred_at`, else the Kafka timestamp, else now."""
    if isinstance(occurred_at, str) and len(occurred_at) <= 64:
        try:
            epoch = datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            epoch = None
        low, high = _PLAUSIBLE_EPOCH
        if epoch is not None and low <= epoch <= high:
            return epoch
    return _epoch(timestamp_ms) or time.time()


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
