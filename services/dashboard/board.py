"""The dashboard's in-memory aggregate of the decision and rejection topics.

Pure: it is fed records (topic role, value, headers, timestamp) and gives a JSON-ready
snapshot. A message seen twice (the relay publishes at least once) counts once, by its
`event_id`. "Currently parked" = inputs with a `DecisionEnAttente` and no final decision yet
(both carry the input's `event_id` as `causation_id`).
"""

from __future__ import annotations

import heapq
import json
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SERVICES = ("collection", "benefits")
PARKED = "DecisionEnAttente"

DECISION_ORDER = {
    "collection": ("EncaissementDelegue", "EncaissementNonDelegue", "PaiementEncaissePourCompte",
                   "PaiementNonImpute", "ContentieuxDelegue", "ContentieuxSansObjet", PARKED),
    "benefits": ("VersementDelegue", "VersementDirect", "PrestationNonTraitee", PARKED),
}
"""Display order of decision types (unknown types come after, alphabetically)."""

AMOUNT_FIELD = {
    "EncaissementDelegue": "montant_cents",
    "PaiementEncaissePourCompte": "montant_cents",
    "ContentieuxDelegue": "restant_du_cents",
    "VersementDelegue": "montant_cents",
    "VersementDirect": "montant_cents",
}
"""The amount a decision type carries (in euro cents), if any."""

ORGANISM_COLUMN = {
    "EncaissementDelegue": "delegated",
    "PaiementEncaissePourCompte": "held",
    "ContentieuxDelegue": "litigation",
    "VersementDelegue": "paid",
}
"""Decision types that put an amount on an organism, and the column they fill."""


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


@dataclass
class OrganismLine:
    counts: Counter[str] = field(default_factory=Counter)
    cents: Counter[str] = field(default_factory=Counter)


class Board:
    """Counts, amounts, parked inputs and the latest rejections, per service."""

    def __init__(self, *, max_rejections: int = 50, max_parked_listed: int = 100) -> None:
        self.max_parked_listed = max_parked_listed
        self.decisions: dict[str, Counter[tuple[str, str]]] = {s: Counter() for s in SERVICES}
        self.decision_cents: dict[str, Counter[tuple[str, str]]] = {
            s: Counter() for s in SERVICES}
        self.organisms: dict[tuple[str, str], OrganismLine] = {}
        self.direct_cents: Counter[str] = Counter()  # per caisse de base: paid by itself
        self.parked: dict[str, Parked] = {}
        self.decided: set[str] = set()  # causation ids with a final decision
        self.seen: set[str] = set()
        self.rejections: deque[Rejection] = deque(maxlen=max_rejections)
        self.rejected: Counter[str] = Counter()
        self.unreadable: Counter[str] = Counter()
        self.version = 0
        self.last_message_at: float | None = None

    # -- feeding ------------------------------------------------------------------------

    def on_decision(self, service: str, value: bytes, timestamp_ms: int | None = None) -> bool:
        """Count one decision message; False when it was a duplicate or unreadable."""
        try:
            envelope = json.loads(value)
            event_type = str(envelope["event_type"])
            payload = envelope["payload"]
            event_id = str(envelope.get("event_id") or "")
        except (ValueError, KeyError, TypeError):
            self.unreadable[service] += 1
            self._touch()
            return False
        if event_id and event_id in self.seen:
            return False
        if event_id:
            self.seen.add(event_id)
        motif = str(payload.get("motif") or "")
        self.decisions[service][(event_type, motif)] += 1
        amount = _cents(payload.get(AMOUNT_FIELD.get(event_type, "")))
        self.decision_cents[service][(event_type, motif)] += amount
        caisse = str(payload.get("caisse_de_base") or "?")
        column = ORGANISM_COLUMN.get(event_type)
        if column is not None:
            line = self.organisms.setdefault((str(payload.get("organisme_id") or "?"), caisse),
                                             OrganismLine())
            line.counts[column] += 1
            line.cents[column] += amount
        elif event_type == "VersementDirect":
            self.direct_cents[caisse] += amount
        cause = str(envelope.get("causation_id") or payload.get("sujet_id") or event_id)
        key = f"{service}:{cause}"
        if event_type == PARKED:
            if key not in self.decided:
                previous = self.parked.get(key)
                since = previous.since if previous else _when(envelope, timestamp_ms)
                self.parked[key] = Parked(service, cause, str(payload.get("sujet_id") or "?"),
                                          motif, caisse, since)
        else:
            self.decided.add(key)
            self.parked.pop(key, None)
        self._touch()
        return True

    def on_rejection(self, service: str, headers: Sequence[tuple[str, bytes]], value: bytes,
                     timestamp_ms: int | None = None) -> bool:
        """Count one rejected message (its headers say why); False for a duplicate."""
        h = {k: v.decode("utf-8", "replace") for k, v in headers}  # the last one wins
        event_id = h.get("event_id")
        if event_id and event_id in self.seen:
            return False
        if event_id:
            self.seen.add(event_id)
        event_type = None
        try:
            original = json.loads(value)
            if isinstance(original, dict):
                event_type = str(original.get("event_type")) if original.get("event_type") \
                    else None
        except ValueError:
            pass
        at = timestamp_ms / 1000 if timestamp_ms else time.time()
        self.rejections.appendleft(Rejection(
            service=service, at=at, reason=h.get("reject_reason", "(no reason given)"),
            field=h.get("reject_field") or None, source_topic=h.get("source_topic"),
            source_partition=_int(h.get("source_partition")),
            source_offset=_int(h.get("source_offset")), event_type=event_type,
            event_id=event_id))
        self.rejected[service] += 1
        self._touch()
        return True

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
                "decisions": [{"event_type": t, "motif": m, "count": counts[(t, m)],
                               "amount_cents": self.decision_cents[s][(t, m)]}
                              for t, m in rows],
                "final": sum(n for (t, _), n in counts.items() if t != PARKED),
                "parked_events": sum(n for (t, _), n in counts.items() if t == PARKED),
                "parked_now": sum(1 for p in self.parked.values() if p.service == s),
                "rejected": self.rejected[s],
                "unreadable": self.unreadable[s],
            }
        organisms = [
            {"organisme_id": o, "caisse_de_base": c,
             **{f"{col}_count": line.counts[col] for col in ORGANISM_COLUMN.values()},
             **{f"{col}_cents": line.cents[col] for col in ORGANISM_COLUMN.values()}}
            for (o, c), line in sorted(self.organisms.items())
        ]
        parked = heapq.nsmallest(self.max_parked_listed, self.parked.values(),
                                 key=lambda p: (p.since, p.sujet_id))
        totals = {
            "decisions": sum(v["final"] for v in services.values()),
            "parked_now": len(self.parked),
            "parked_events": sum(v["parked_events"] for v in services.values()),
            "rejected": sum(self.rejected.values()),
            **{f"{col}_cents": sum(line.cents[col] for line in self.organisms.values())
               for col in ORGANISM_COLUMN.values()},
            "direct_cents": sum(self.direct_cents.values()),
        }
        return {
            "version": self.version,
            "last_message_at": _iso(self.last_message_at),
            "totals": totals,
            "services": services,
            "organisms": organisms,
            "direct": [{"caisse_de_base": c, "cents": n}
                       for c, n in sorted(self.direct_cents.items())],
            "parked": [{"service": p.service, "sujet_id": p.sujet_id, "motif": p.motif,
                        "caisse_de_base": p.caisse_de_base, "causation_id": p.causation_id,
                        "since": _iso(p.since), "age_s": max(0.0, round(now - p.since, 1))}
                       for p in parked],
            "rejections": [{"service": r.service, "at": _iso(r.at), "reason": r.reason,
                            "field": r.field, "source_topic": r.source_topic,
                            "source_partition": r.source_partition,
                            "source_offset": r.source_offset, "event_type": r.event_type,
                            "event_id": r.event_id}
                           for r in self.rejections],
        }


def _cents(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _when(envelope: dict[str, Any], timestamp_ms: int | None) -> float:
    """When a decision was recorded: its `occurred_at`, else the Kafka timestamp, else now."""
    text = envelope.get("occurred_at")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return timestamp_ms / 1000 if timestamp_ms else time.time()


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")
