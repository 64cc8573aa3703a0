"""`mandat run`: feed a scenario to both services as an upstream agency would, wait for every
decision and rejection, and summarise what was decided.

Publication is in three phases, so that the outcome depends on the seed only (never on how
Kafka interleaves topics): 1 the registry, then a wait until both services' consumer groups
have committed it; 2 contributions, payments, unpaid notices and benefits (with the
breaches and duplicates), then a wait until each got a decision, a rejection or a
`DecisionEnAttente`; 3 the affiliations published late, then a wait until every input got its
final decision (or its rejection). Decisions and rejections are read from the end offsets of
the output topics taken before feeding, and matched to this run's inputs by causation id
(decisions) or by source topic, partition and offset (rejections).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.demo.scenario import (
    BENEFITS,
    COLLECTION,
    COTISATIONS,
    DUPLICATE,
    INPUT,
    PRESTATIONS,
    REFERENTIEL,
    REJECTED_KINDS,
    SERVICES,
    Message,
    Scenario,
    generate,
    new_run_tag,
)
from services.runtime.settings import ServiceSettings
from services.runtime.topics import ensure_topics

PENDING = "DecisionEnAttente"
AMOUNT_FIELDS = ("montant_cents", "restant_du_cents")
TITLES = {COLLECTION: "collection (alinéa 1)", BENEFITS: "benefits (alinéa 2)"}


def default_timeout(size: int) -> float:
    """Seconds to wait for the decisions once fed: generous for this machine's pace."""
    return 60.0 + size / 100


# ---------------------------------------------------------------------------------------
# progress


class Progress:
    """A one-line progress bar, `\\r`-updated on a terminal (one line per step otherwise)."""

    WIDTH = 30

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.live = bool(out is not None and out.isatty())
        self.last = 0.0

    def update(
        self, label: str, done: int, total: int, note: str = "", *, force: bool = False
    ) -> None:
        if self.out is None or not self.live:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        self.out.write("\r" + self._line(label, done, total, note))
        self.out.flush()

    def finish(self, label: str, done: int, total: int, note: str = "") -> None:
        if self.out is None:
            return
        self.out.write(("\r" if self.live else "") + self._line(label, done, total, note) + "\n")
        self.out.flush()

    def say(self, text: str) -> None:
        if self.out is not None:
            self.out.write(text + "\n")
            self.out.flush()

    def _line(self, label: str, done: int, total: int, note: str) -> str:
        share = done / total if total else 1.0
        filled = min(self.WIDTH, int(share * self.WIDTH))
        bar = "#" * filled + "." * (self.WIDTH - filled)
        return f"{label:<26} [{bar}] {done:>7,}/{total:<7,} {share:4.0%} {note}".rstrip() + "  "


# ---------------------------------------------------------------------------------------
# what came out


@dataclass
class Collector:
    """Reads the decision and rejection topics and matches them to the scenario."""

    scenario: Scenario
    outputs: dict[str, tuple[str, str]]  # topic -> (service, "decision" | "rejection")
    by_event_id: dict[str, int] = field(default_factory=dict)  # input event id -> index
    produced: dict[tuple[str, int, int], int] = field(default_factory=dict)  # -> index
    final: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    pending: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    rejected: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)
    unmatched: list[tuple[str, tuple[str, int, int], dict[str, str]]] = field(default_factory=list)
    foreign: int = 0  # outputs of other runs or other producers (ignored)
    received: int = 0  # outputs of this run
    waiting: dict[tuple[str, int], int] = field(default_factory=dict)  # tracked -> phase
    untouched: set[tuple[str, int]] = field(default_factory=set)  # no outcome at all yet

    def __post_init__(self) -> None:
        for index, message in enumerate(self.scenario.messages):
            if message.event_id and message.kind != DUPLICATE:
                self.by_event_id.setdefault(message.event_id, index)
            if message.kind == INPUT or message.kind in REJECTED_KINDS:
                for service in message.services:
                    self.waiting[(service, index)] = message.phase
                    self.untouched.add((service, index))

    # -- intake ------------------------------------------------------------------------
    def record(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]],
    ) -> None:
        service, what = self.outputs[topic]
        if what == "rejection":
            found = {k: v.decode("utf-8", "replace") for k, v in headers}
            try:
                origin = (
                    found["source_topic"],
                    int(found["source_partition"]),
                    int(found["source_offset"]),
                )
            except (KeyError, ValueError):
                self.foreign += 1
                return
            self._rejection(service, origin, found)
            return
        try:
            document = json.loads(value or b"")
            index = self.by_event_id.get(str(document.get("causation_id")))
        except (ValueError, AttributeError):
            index = None
        if index is None:
            self.foreign += 1
            return
        self.received += 1
        slot = (service, index)
        if document.get("event_type") == PENDING:
            self.pending.setdefault(slot, []).append(document)
            self.untouched.discard(slot)
        else:
            self.final.setdefault(slot, []).append(document)
            self._settled(slot)

    def _rejection(
        self, service: str, origin: tuple[str, int, int], headers: dict[str, str]
    ) -> None:
        index = self.produced.get(origin)
        if index is None:  # not (yet) known as ours: matched again once produced
            self.unmatched.append((service, origin, headers))
            return
        self.received += 1
        self.rejected[(service, index)] = headers
        self._settled((service, index))

    def _settled(self, slot: tuple[str, int]) -> None:
        self.waiting.pop(slot, None)
        self.untouched.discard(slot)

    def produced_at(self, origin: tuple[str, int, int], index: int) -> None:
        self.produced[origin] = index

    def rematch(self) -> None:
        """Match rejections read before their message's produce acknowledgement."""
        pending, self.unmatched = self.unmatched, []
        for service, origin, headers in pending:
            if origin in self.produced:
                self._rejection(service, origin, headers)
            else:
                self.unmatched.append((service, origin, headers))

    # -- progress ----------------------------------------------------------------------
    def tracked(self, up_to_phase: int) -> int:
        return sum(1 for _, m in self._tracked() if m.phase <= up_to_phase)

    def _tracked(self) -> Iterable[tuple[tuple[str, int], Message]]:
        for index, message in enumerate(self.scenario.messages):
            if message.kind == INPUT or message.kind in REJECTED_KINDS:
                for service in message.services:
                    yield (service, index), message

    def outstanding(self, up_to_phase: int, *, parked_counts: bool) -> int:
        """Tracked messages of phases <= `up_to_phase` still without an outcome (a final
        decision or a rejection; or, when `parked_counts`, a DecisionEnAttente)."""
        source: Iterable[tuple[str, int]] = self.untouched if parked_counts else self.waiting
        return sum(1 for slot in source if self.scenario.messages[slot[1]].phase <= up_to_phase)


# ---------------------------------------------------------------------------------------
# summary


def euros(cents: int) -> str:
    """Integer cents as euros with 2 decimals: 195000 -> '1,950.00 €'."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d} €"


def _amount(payload: dict[str, Any]) -> int | None:
    for name in AMOUNT_FIELDS:
        if isinstance(payload.get(name), int):
            return int(payload[name])
    return None


@dataclass
class Summary:
    """What a run decided, as figures (deterministic for a seed apart from time and rate)."""

    size: int
    seed: int
    run_tag: str
    published: dict[str, int]  # messages by kind, and in all
    expected: dict[str, dict[str, int]]
    decisions: dict[str, dict[tuple[str, str], list[int]]]  # service -> (type, motif) -> n, ¢
    delegated: dict[str, list[int]]  # organism -> [count, cents] (EncaissementDelegue)
    reversements: dict[tuple[str, str], list[int]]  # (organism, caisse) -> [count, cents]
    contentieux: dict[str, list[int]]  # organism -> [count, cents]
    versements_delegues: dict[tuple[str, str], list[int]]  # (organism, caisse) -> [n, cents]
    versements_directs: dict[str, list[int]]  # caisse -> [count, cents]
    decided: dict[str, int]  # inputs with their final decision, by service
    parked: dict[str, dict[str, int]]  # service -> motif -> inputs parked on their way
    still_parked: dict[str, int]
    rejected: dict[str, dict[str, int]]  # service -> reason -> count
    missing: list[str]
    unexpected: list[str]
    organisms: dict[str, str]  # organism id -> name
    elapsed_s: float
    messages_out: int
    notes: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every input got its decision or its rejection."""
        return not self.missing

    @property
    def rate(self) -> float:
        return self.published["messages"] / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def count(self, service: str, event_type: str, motif: str = "") -> int:
        return self.decisions.get(service, {}).get((event_type, motif), [0, 0])[0]

    def to_json(self) -> dict[str, Any]:
        def by_pair(table: dict[tuple[str, str], list[int]]) -> list[dict[str, Any]]:
            return [
                {"organisme_id": o, "caisse_de_base": c, "count": n, "cents": v}
                for (o, c), (n, v) in sorted(table.items())
            ]

        return {
            "run": {"size": self.size, "seed": self.seed, "run_tag": self.run_tag},
            "published": self.published,
            "expected": self.expected,
            "decisions": {
                s: [
                    {"event_type": t, "motif": m or None, "count": n, "cents": v}
                    for (t, m), (n, v) in sorted(table.items())
                ]
                for s, table in self.decisions.items()
            },
            "delegated_by_organism": {
                o: {"count": n, "cents": v} for o, (n, v) in sorted(self.delegated.items())
            },
            "reversements_owed": by_pair(self.reversements),
            "contentieux_by_organism": {
                o: {"count": n, "cents": v} for o, (n, v) in sorted(self.contentieux.items())
            },
            "benefits_paid_on_behalf": by_pair(self.versements_delegues),
            "benefits_paid_directly": {
                c: {"count": n, "cents": v} for c, (n, v) in sorted(self.versements_directs.items())
            },
            "decided": self.decided,
            "parked": self.parked,
            "still_parked": self.still_parked,
            "rejected": self.rejected,
            "complete": self.complete,
            "missing": self.missing,
            "unexpected": self.unexpected,
            "notes": self.notes,
            "elapsed_s": round(self.elapsed_s, 3),
            "messages_out": self.messages_out,
            "messages_per_s": round(self.rate, 1),
        }

    def render(self) -> str:
        lines: list[str] = []
        add = lines.append
        p = self.published
        kinds = ", ".join(
            f"{p.get(k, 0):,} {label}"
            for k, label in (
                ("input", "inputs"),
                ("fact", "registry facts"),
                ("breach", "contract breaches"),
                ("conflict", "conflicting resends"),
                ("duplicate", "duplicates"),
                ("resend", "identical resends"),
            )
        )
        add(
            f"Scenario: size {self.size:,}, seed {self.seed} — {p['messages']:,} messages "
            f"published ({kinds})"
        )
        for service in SERVICES:
            add("")
            add(f"Decisions of {TITLES[service]}, by type and motif")
            table = self.decisions.get(service, {})
            for (event_type, motif), (n, cents) in sorted(table.items()):
                amount = euros(cents) if event_type in _WITH_AMOUNT else ""
                add(f"  {event_type:<27} {motif or '':<26} {n:>8,} {amount:>18}")
            if not table:
                add("  (none)")
        self._pairs(
            add,
            "Contributions delegated, by organism (EncaissementDelegue)",
            {(o, ""): v for o, v in self.delegated.items()},
        )
        self._pairs(
            add,
            "Reversements owed: money each organism holds for each caisse de base "
            "(PaiementEncaissePourCompte)",
            self.reversements,
        )
        self._pairs(
            add,
            "Litigation delegated, by organism (ContentieuxDelegue, amount still due)",
            {(o, ""): v for o, v in self.contentieux.items()},
        )
        self._pairs(
            add,
            "Benefits paid by organisms on behalf of each caisse de base (VersementDelegue)",
            self.versements_delegues,
        )
        add("")
        add("Benefits paid directly by the caisse de base (VersementDirect)")
        for caisse, (n, cents) in sorted(self.versements_directs.items()):
            add(f"  {caisse:<10} {n:>8,} {euros(cents):>18}")
        if not self.versements_directs:
            add("  (none)")
        add("")
        add("Parked (DecisionEnAttente) on their way, then decided")
        for service in SERVICES:
            motifs = self.parked.get(service, {})
            detail = ", ".join(f"{m} {n:,}" for m, n in sorted(motifs.items())) or "none"
            add(
                f"  {service:<11} {sum(motifs.values()):>6,}  ({detail}); still parked: "
                f"{self.still_parked.get(service, 0):,}"
            )
        add("")
        add("Rejected (to the rejection topics, untouched, reason in headers)")
        for service in SERVICES:
            reasons = self.rejected.get(service, {})
            add(f"  {service:<11} {sum(reasons.values()):>6,}")
            for reason, n in sorted(reasons.items()):
                add(f"      {n:>4,}  {reason}")
        add("")
        add("Completeness")
        for service in SERVICES:
            e = self.expected[service]
            got_rejected = sum(self.rejected.get(service, {}).values())
            add(
                f"  {service:<11} {self.decided.get(service, 0):>6,}/{e['decided']:,} inputs "
                f"decided, {got_rejected:,}/{e['rejected']:,} rejections, parked "
                f"{sum(self.parked.get(service, {}).values()):,}/{e['parked']:,} as planned"
            )
        for text in self.notes:
            add(f"  note: {text}")
        for text in self.unexpected[:10]:
            add(f"  unexpected: {text}")
        if self.missing:
            add(f"  MISSING ({len(self.missing):,}):")
            for text in self.missing[:15]:
                add(f"    {text}")
            if len(self.missing) > 15:
                add(f"    ... and {len(self.missing) - 15:,} more")
        else:
            add("  every input got its decision or its rejection")
        add("")
        add(
            f"Elapsed {self.elapsed_s:.1f} s: {p['messages']:,} messages in, "
            f"{self.messages_out:,} decisions and rejections out — {self.rate:,.0f} "
            f"messages/s"
        )
        return "\n".join(lines)

    def _pairs(self, add: Any, title: str, table: dict[tuple[str, str], list[int]]) -> None:
        add("")
        add(title)
        for (organism, caisse), (n, cents) in sorted(table.items()):
            name = self.organisms.get(organism, "")
            label = f"{organism:<10} {name[:48]:<48}"
            add(f"  {label} {caisse:<8} {n:>7,} {euros(cents):>18}")
        if not table:
            add("  (none)")


_NIR_KEY = re.compile(r"(NIR key is) \d+, expected \d+")
_WHERE = re.compile(r" at line \d+ column \d+| \(got [^)]*\)")
"""Details that vary from message to message (NIR keys and positions vary with the run tag):
left out of summaries, so that rejections group by reason."""
_WITH_AMOUNT = frozenset(
    {
        "EncaissementDelegue",
        "PaiementEncaissePourCompte",
        "ContentieuxDelegue",
        "VersementDelegue",
        "VersementDirect",
    }
)


def summarise(
    scenario: Scenario, collector: Collector, elapsed: float, notes: list[str] | None = None
) -> Summary:
    """The figures of a run from what the collector matched."""
    local = scenario.local
    decisions: dict[str, dict[tuple[str, str], list[int]]] = {s: {} for s in SERVICES}
    delegated: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    reversements: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    contentieux: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    delegues: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    directs: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    unexpected: list[str] = []

    def tally(service: str, document: dict[str, Any]) -> None:
        payload = document.get("payload") or {}
        event_type = str(document.get("event_type"))
        key = (event_type, str(payload.get("motif") or ""))
        row = decisions[service].setdefault(key, [0, 0])
        amount = _amount(payload) or 0
        row[0] += 1
        row[1] += amount
        organism = local(str(payload.get("organisme_id") or ""))
        caisse = str(payload.get("caisse_de_base") or "")
        target: list[int] | None = None
        if event_type == "EncaissementDelegue":
            target = delegated[organism]
        elif event_type == "PaiementEncaissePourCompte":
            target = reversements[(organism, caisse)]
        elif event_type == "ContentieuxDelegue":
            target = contentieux[organism]
        elif event_type == "VersementDelegue":
            target = delegues[(organism, caisse)]
        elif event_type == "VersementDirect":
            target = directs[caisse]
        if target is not None:
            target[0] += 1
            target[1] += amount

    parked: dict[str, Counter[str]] = {s: Counter() for s in SERVICES}
    for (service, _index), documents in sorted(collector.pending.items()):
        for document in documents:
            tally(service, document)
        parked[service][str(documents[0]["payload"].get("motif"))] += 1
    decided: Counter[str] = Counter()
    for (service, index), documents in sorted(collector.final.items()):
        message = scenario.messages[index]
        for document in documents:
            tally(service, document)
        if message.kind == INPUT:
            decided[service] += 1
        else:
            unexpected.append(
                f"{service} decided {_describe(scenario, message)} "
                f"({message.kind}): {documents[0].get('event_type')}"
            )
        if len(documents) > 1:
            unexpected.append(
                f"{service} decided {_describe(scenario, message)} {len(documents)} times"
            )
    rejected: dict[str, Counter[str]] = {s: Counter() for s in SERVICES}
    for (service, index), headers in sorted(collector.rejected.items()):
        message = scenario.messages[index]
        text = scenario.untag(headers.get("reject_reason", "?"))
        text = _WHERE.sub("", _NIR_KEY.sub(r"\1 wrong", text))
        rejected[service][text[:120]] += 1
        if message.kind not in REJECTED_KINDS:
            unexpected.append(f"{service} rejected {_describe(scenario, message)}: {text}")
    still = Counter(
        s
        for (s, _i) in collector.pending
        if (s, _i) not in collector.final and (s, _i) not in collector.rejected
    )
    missing = []
    for (service, index), _phase in sorted(collector.waiting.items()):
        message = scenario.messages[index]
        state = (
            "parked " + str(collector.pending[(service, index)][0]["payload"].get("motif"))
            if (service, index) in collector.pending
            else "nothing received"
        )
        wanted = "rejection" if message.kind in REJECTED_KINDS else "decision"
        missing.append(f"{service}: no {wanted} for {_describe(scenario, message)} ({state})")
    return Summary(
        size=scenario.size,
        seed=scenario.seed,
        run_tag=scenario.run_tag,
        published=scenario.counts(),
        expected=scenario.expected(),
        decisions=decisions,
        delegated=dict(delegated),
        reversements=dict(reversements),
        contentieux=dict(contentieux),
        versements_delegues=dict(delegues),
        versements_directs=dict(directs),
        decided=dict(decided),
        parked={s: dict(sorted(c.items())) for s, c in parked.items()},
        still_parked=dict(still),
        rejected={s: dict(sorted(c.items())) for s, c in rejected.items()},
        missing=missing,
        unexpected=unexpected,
        organisms={o.organisme_id: o.nom for o in scenario.organisms},
        elapsed_s=elapsed,
        messages_out=collector.received,
        notes=list(notes or ()),
    )


def _describe(scenario: Scenario, message: Message) -> str:
    what = message.event_type or "message"
    subject = message.subject or ""
    return f"{what} {subject}".strip() + (f" [{message.note}]" if message.note else "")


# ---------------------------------------------------------------------------------------
# playing


class _Player:
    def __init__(
        self, scenario: Scenario, settings: ServiceSettings, progress: Progress, deadline: float
    ) -> None:
        s = settings
        self.scenario = scenario
        self.settings = settings
        self.progress = progress
        self.deadline = deadline
        self.topics = {
            REFERENTIEL: s.topic_referentiel,
            COTISATIONS: s.topic_cotisations,
            PRESTATIONS: s.topic_prestations,
        }
        outputs = {
            s.topic_reglements_cotisations: (COLLECTION, "decision"),
            s.topic_rejets_collection: (COLLECTION, "rejection"),
            s.topic_reglements_prestations: (BENEFITS, "decision"),
            s.topic_rejets_benefits: (BENEFITS, "rejection"),
        }
        self.collector = Collector(scenario, outputs)
        bootstrap = s.kafka_bootstrap_servers
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            enable_auto_commit=False,
            group_id=None,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
        )
        self.admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        self.registry_start: dict[TopicPartition, int] = {}
        self.partitions: dict[str, list[int]] = {}
        self.reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> _Player:
        s = self.settings
        await ensure_topics(
            s.kafka_bootstrap_servers,
            s.all_topics(),
            partitions=s.topic_partitions,
            replication_factor=s.topic_replication_factor,
            retention_ms=s.topic_retention_ms,
        )
        await self.admin.start()
        await self.consumer.start()
        described = await self.admin.describe_topics(
            [*self.collector.outputs, self.topics[REFERENTIEL]]
        )
        self.partitions = {
            d["topic"]: sorted(p["partition"] for p in d["partitions"]) for d in described
        }
        outputs = [tp for t in self.collector.outputs for tp in self._partitions(t)]
        self.consumer.assign(outputs)
        for tp, offset in (await self.consumer.end_offsets(outputs)).items():
            self.consumer.seek(tp, offset)
        self.registry_start = await self._ends(self.topics[REFERENTIEL])
        await self.producer.start()
        self.reader = asyncio.create_task(self._read(), name="demo-reader")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        for closing in (self.producer.stop(), self.consumer.stop(), self.admin.close()):
            with contextlib.suppress(Exception):
                await closing

    def _partitions(self, topic: str) -> list[TopicPartition]:
        found = self.partitions.get(topic)
        if not found:
            raise RuntimeError(f"topic {topic} has no partitions (does it exist?)")
        return [TopicPartition(topic, p) for p in found]

    async def _ends(self, topic: str) -> dict[TopicPartition, int]:
        return dict(await self.consumer.end_offsets(self._partitions(topic)))

    async def _read(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=10_000)
            for tp, records in batches.items():
                for r in records:
                    self.collector.record(tp.topic, r.key, r.value, r.headers)
            if self.collector.unmatched:
                self.collector.rematch()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    async def feed(self, phase: int, label: str) -> None:
        batch = self.scenario.phase(phase)
        sent = 0
        for start in range(0, len(batch), 1000):
            chunk = batch[start : start + 1000]
            futures = [
                await self.producer.send(self.topics[m.topic], m.value, key=m.key) for _, m in chunk
            ]
            for (index, _m), meta in zip(chunk, await asyncio.gather(*futures), strict=True):
                self.collector.produced_at((meta.topic, meta.partition, meta.offset), index)
            sent += len(chunk)
            self.progress.update(label, sent, len(batch))
        self.progress.finish(label, sent, len(batch))

    async def wait_registry(self) -> bool:
        """Until both services' groups committed the registry topic up to its end."""
        topic = self.topics[REFERENTIEL]
        ends = await self._ends(topic)
        total = sum(ends[tp] - self.registry_start.get(tp, 0) for tp in ends)
        groups = (self.settings.collection_group, self.settings.benefits_group)
        label = "registry recorded"
        done = 0
        while True:
            done = total
            for group in groups:
                committed = await self.admin.list_consumer_group_offsets(
                    group, partitions=list(ends)
                )
                seen = 0
                for tp, end in ends.items():
                    meta = committed.get(tp)
                    offset = meta.offset if meta is not None and meta.offset >= 0 else 0
                    seen += max(0, min(offset, end) - self.registry_start.get(tp, 0))
                done = min(done, seen)
            self.progress.update(label, done, total)
            if done >= total or self.left() <= 0:
                break
            await asyncio.sleep(0.2)
        self.progress.finish(label, done, total, "" if done >= total else "(timed out)")
        return done >= total

    async def wait_outcomes(self, phase: int, *, parked_counts: bool, label: str) -> bool:
        total = self.collector.tracked(phase)
        while True:
            self.collector.rematch()
            left = self.collector.outstanding(phase, parked_counts=parked_counts)
            self.progress.update(label, total - left, total)
            if left == 0 or self.left() <= 0:
                break
            await asyncio.sleep(0.1)
        self.progress.finish(label, total - left, total, "" if left == 0 else "(timed out)")
        return left == 0


class _Quiet(logging.Filter):
    """Keeps in-process services' per-message access logs and a broker's transient start-up
    complaint out of the demo's output (`mandat -v run` shows everything)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("faststream"):
            return record.levelno >= logging.WARNING
        return "GroupCoordinatorNotAvailable" not in record.getMessage()


def _quiet_services() -> None:
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    quiet = _Quiet()
    for name in ("faststream.access.kafka", "aiokafka.consumer.group_coordinator"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Quiet) for f in logger.filters):
            logger.addFilter(quiet)


async def play(
    size: int,
    seed: int,
    settings: ServiceSettings,
    *,
    start_services: bool,
    run_tag: str | None = None,
    timeout: float | None = None,
    out: TextIO | None = sys.stdout,
) -> Summary:
    """Play the scenario of (size, seed) through the services and summarise the outcome.

    `start_services`: run both services in this event loop for the time of the run (else
    they run elsewhere, on the same settings). `timeout`: seconds from the start of feeding
    to the last decision (default: `default_timeout(size)`). Progress goes to `out`.
    """
    progress = Progress(out)
    scenario = generate(size, seed, run_tag or new_run_tag())
    progress.say(
        f"run {scenario.run_tag}: {len(scenario.messages):,} messages (size {size:,}, "
        f"seed {seed}) to {settings.kafka_bootstrap_servers}"
    )
    async with contextlib.AsyncExitStack() as stack:
        if start_services:
            from services.benefits.app import build_runtime as benefits_runtime
            from services.collection.app import build_runtime as collection_runtime

            _quiet_services()
            started = time.monotonic()
            for build in (collection_runtime, benefits_runtime):
                await stack.enter_async_context(build(settings).running())
            progress.say(
                f"services collection and benefits started in-process in "
                f"{time.monotonic() - started:.1f} s"
            )
        begin = time.monotonic()
        deadline = begin + (timeout if timeout is not None else default_timeout(size))
        notes: list[str] = []
        async with _Player(scenario, settings, progress, deadline) as player:
            await player.feed(1, "feeding the registry")
            if await player.wait_registry():
                await player.feed(2, "feeding inputs")
                if not await player.wait_outcomes(2, parked_counts=True, label="deciding"):
                    notes.append("timed out before every input was decided or parked")
                await player.feed(3, "feeding late affiliations")
                await player.wait_outcomes(3, parked_counts=False, label="deciding parked ones")
            else:
                groups = f"{settings.collection_group}, {settings.benefits_group}"
                notes.append(
                    f"the registry was not recorded by the services' consumer groups "
                    f"({groups}) in time: are the services running? Contributions "
                    f"and benefits were not published"
                )
            elapsed = time.monotonic() - begin
            return summarise(scenario, player.collector, elapsed, notes)
    raise AssertionError("unreachable")  # pragma: no cover
