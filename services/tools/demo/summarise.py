"""From what the collector matched to the figures of a `Summary`."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Final

from contracts.topics import REVISIONS
from services.tools.demo.collector import Collector
from services.tools.demo.model import FACT, INPUT, REJECTED_KINDS, SERVICES, Message, Scenario
from services.tools.demo.summary import Move, Summary, Tally

AMOUNT_FIELDS: Final = ("montant_cents", "restant_du_cents")
_NIR_KEY: Final = re.compile(r"(NIR key is) \d+, expected \d+")
_WHERE: Final = re.compile(r" at line \d+ column \d+| \(got [^)]*\)")
"""Details that vary from message to message (NIR keys and positions vary with the run tag):
left out of summaries, so that rejections group by reason."""


def _amount(payload: dict[str, Any]) -> int | None:
    for name in AMOUNT_FIELDS:
        if isinstance(payload.get(name), int):
            return int(payload[name])
    return None


def _tally() -> defaultdict[Any, Tally]:
    return defaultdict(lambda: [0, 0])


@dataclass
class _Tallies:
    """Decisions by service, type and motif, and money by organism and caisse de base."""

    scenario: Scenario
    decisions: dict[str, dict[tuple[str, str], Tally]] = field(
        default_factory=lambda: {s: {} for s in SERVICES}
    )
    delegated: defaultdict[str, Tally] = field(default_factory=_tally)
    reversements: defaultdict[tuple[str, str], Tally] = field(default_factory=_tally)
    contentieux: defaultdict[str, Tally] = field(default_factory=_tally)
    delegues: defaultdict[tuple[str, str], Tally] = field(default_factory=_tally)
    directs: defaultdict[str, Tally] = field(default_factory=_tally)

    def add(self, service: str, document: dict[str, Any]) -> None:
        """Count one decision of `service` (a revision's amount: what the organism leaving
        had collected for the caisse, `deja_encaisse_cents`)."""
        payload = document.get("payload") or {}
        event_type = str(document.get("event_type"))
        if event_type in REVISIONS:
            amount = int(payload.get("deja_encaisse_cents") or 0)
        else:
            amount = _amount(payload) or 0
        key = (event_type, str(payload.get("motif") or ""))
        rows = [self.decisions[service].setdefault(key, [0, 0])]
        money = self._money(event_type, payload)
        if money is not None:
            rows.append(money)
        for row in rows:
            row[0] += 1
            row[1] += amount

    def _money(self, event_type: str, payload: dict[str, Any]) -> Tally | None:
        organism = self.scenario.local(str(payload.get("organisme_id") or ""))
        caisse = str(payload.get("caisse_de_base") or "")
        if event_type == "EncaissementDelegue":
            return self.delegated[organism]
        if event_type == "PaiementEncaissePourCompte":
            return self.reversements[(organism, caisse)]
        if event_type == "ContentieuxDelegue":
            return self.contentieux[organism]
        if event_type == "VersementDelegue":
            return self.delegues[(organism, caisse)]
        if event_type == "VersementDirect":
            return self.directs[caisse]
        return None


def summarise(
    scenario: Scenario, collector: Collector, elapsed: float, notes: list[str] | None = None
) -> Summary:
    """The figures of a run from what the collector matched."""
    tallies = _Tallies(scenario)
    unexpected: list[str] = []
    parked = _parked(collector, tallies)
    decided = _decided(scenario, collector, tallies, unexpected)
    revisions = _revised(scenario, collector, tallies, unexpected)
    rejected = _rejected(scenario, collector, unexpected)
    still = Counter(
        s
        for (s, _i) in collector.pending
        if (s, _i) not in collector.final and (s, _i) not in collector.rejected
    )
    return Summary(
        size=scenario.size,
        seed=scenario.seed,
        run_tag=scenario.run_tag,
        published=scenario.counts(),
        expected=scenario.expected(),
        decisions=tallies.decisions,
        delegated=dict(tallies.delegated),
        reversements=dict(tallies.reversements),
        contentieux=dict(tallies.contentieux),
        versements_delegues=dict(tallies.delegues),
        versements_directs=dict(tallies.directs),
        decided=dict(decided),
        revisions=revisions.by_service,
        moves=dict(sorted(revisions.moves.items())),
        owed=dict(sorted(revisions.owed.items())),
        parked={s: dict(sorted(c.items())) for s, c in parked.items()},
        still_parked=dict(still),
        rejected={s: dict(sorted(c.items())) for s, c in rejected.items()},
        missing=_missing(scenario, collector),
        unexpected=unexpected,
        organisms={o.organisme_id: o.nom for o in scenario.organisms},
        elapsed_s=elapsed,
        messages_out=collector.received,
        notes=list(notes or ()),
    )


def _parked(collector: Collector, tallies: _Tallies) -> dict[str, Counter[str]]:
    """Inputs parked on their way, by service and motif (their DecisionEnAttente tallied)."""
    parked: dict[str, Counter[str]] = {s: Counter() for s in SERVICES}
    for (service, _index), documents in sorted(collector.pending.items()):
        for document in documents:
            tallies.add(service, document)
        parked[service][str(documents[0]["payload"].get("motif"))] += 1
    return parked


def _decided(
    scenario: Scenario, collector: Collector, tallies: _Tallies, unexpected: list[str]
) -> Counter[str]:
    """Inputs finally decided, by service; decisions of anything else are unexpected."""
    decided: Counter[str] = Counter()
    for (service, index), documents in sorted(collector.final.items()):
        message = scenario.messages[index]
        for document in documents:
            tallies.add(service, document)
        if message.kind == INPUT:
            decided[service] += 1
        else:
            unexpected.append(
                f"{service} decided {_describe(message)} "
                f"({message.kind}): {documents[0].get('event_type')}"
            )
        if len(documents) > 1:
            unexpected.append(f"{service} decided {_describe(message)} {len(documents)} times")
    return decided


@dataclass
class _Revisions:
    """Revisions by service ([count, cents moved]), moves (service, from, to; "" = not
    delegated), and what each organism leaving owes its caisse ([revisions, cents])."""

    by_service: dict[str, Tally] = field(default_factory=lambda: {s: [0, 0] for s in SERVICES})
    moves: Counter[Move] = field(default_factory=Counter)
    owed: defaultdict[str, Tally] = field(default_factory=_tally)


def _revised(
    scenario: Scenario, collector: Collector, tallies: _Tallies, unexpected: list[str]
) -> _Revisions:
    """Revisions counted apart from the inputs decided: each must be caused by a registry
    fact of this run and supersede a decision (or revision) of this run."""
    found = _Revisions()
    seen: set[str] = set()
    for (service, index), document in collector.revisions:
        message, payload = scenario.messages[index], document.get("payload") or {}
        event_id = str(document.get("event_id"))
        if event_id in seen:
            unexpected.append(f"{service} published revision {event_id} twice")
            continue
        seen.add(event_id)
        if message.kind != FACT:
            unexpected.append(f"{service} revised on {_describe(message)} ({message.kind})")
        if str(payload.get("decision_revisee_id")) not in collector.decision_ids:
            unexpected.append(f"{service} revised a decision not seen: {_describe(message)}")
        tallies.add(service, document)
        held = int(payload.get("deja_encaisse_cents") or 0)
        tally = found.by_service[service]
        tally[0], tally[1] = tally[0] + 1, tally[1] + held
        before, after = (
            scenario.local(str((payload.get(side) or {}).get("organisme_id") or ""))
            for side in ("avant", "apres")
        )
        found.moves[(service, before, after)] += 1
        if held or payload.get("contentieux_transfere"):
            owed = found.owed[before]
            owed[0], owed[1] = owed[0] + 1, owed[1] + held
    return found


def _rejected(
    scenario: Scenario, collector: Collector, unexpected: list[str]
) -> dict[str, Counter[str]]:
    """Rejections by service and reason; rejections of anything else are unexpected."""
    rejected: dict[str, Counter[str]] = {s: Counter() for s in SERVICES}
    for (service, index), headers in sorted(collector.rejected.items()):
        message = scenario.messages[index]
        text = scenario.untag(headers.get("reject_reason", "?"))
        text = _WHERE.sub("", _NIR_KEY.sub(r"\1 wrong", text))
        rejected[service][text[:120]] += 1
        if message.kind not in REJECTED_KINDS:
            unexpected.append(f"{service} rejected {_describe(message)}: {text}")
    return rejected


def _missing(scenario: Scenario, collector: Collector) -> list[str]:
    """What each service still owes: a decision or a rejection, and how far it got."""
    missing = []
    for (service, index), _phase in sorted(collector.waiting.items()):
        message = scenario.messages[index]
        state = (
            "parked " + str(collector.pending[(service, index)][0]["payload"].get("motif"))
            if (service, index) in collector.pending
            else "nothing received"
        )
        wanted = "rejection" if message.kind in REJECTED_KINDS else "decision"
        missing.append(f"{service}: no {wanted} for {_describe(message)} ({state})")
    return missing


def _describe(message: Message) -> str:
    what = message.event_type or "message"
    subject = message.subject or ""
    return f"{what} {subject}".strip() + (f" [{message.note}]" if message.note else "")
