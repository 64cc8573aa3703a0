"""What came out of the services: decisions and rejections, matched to the scenario's
messages by causation id (decisions) or by source topic, partition and offset (rejections).

A revision (`EncaissementRevise`, `VersementRevise`) is caused by a registry fact, not by an
input: it settles nothing and is kept apart (:attr:`Collector.revisions`), with the index of
the message that caused it, to be checked and counted by the summary."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from contracts.topics import REVISIONS
from services.tools.demo.model import DUPLICATE, Message, Scenario

PENDING: Final = "DecisionEnAttente"

Slot = tuple[str, int]  # (service, index of the message in the scenario)
Origin = tuple[str, int, int]  # (topic, partition, offset) a message was produced at


def tracked_slots(scenario: Scenario) -> Iterator[tuple[Slot, Message]]:
    """Every (service, message) that must get a decision or a rejection."""
    for index, message in enumerate(scenario.messages):
        if message.tracked:
            for service in message.services:
                yield (service, index), message


@dataclass
class Collector:
    """Reads the decision and rejection topics and matches them to the scenario."""

    scenario: Scenario
    outputs: dict[str, tuple[str, str]]  # topic -> (service, "decision" | "rejection")
    by_event_id: dict[str, int] = field(default_factory=dict)  # input event id -> index
    produced: dict[Origin, int] = field(default_factory=dict)  # -> index
    final: dict[Slot, list[dict[str, Any]]] = field(default_factory=dict)
    pending: dict[Slot, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: dict[Slot, dict[str, str]] = field(default_factory=dict)
    revisions: list[tuple[Slot, dict[str, Any]]] = field(default_factory=list)  # by its cause
    decision_ids: set[str] = field(default_factory=set)  # event ids of this run's outputs
    unmatched: list[tuple[str, Origin, dict[str, str]]] = field(default_factory=list)
    foreign: int = 0  # outputs of other runs or other producers (ignored)
    received: int = 0  # outputs of this run
    waiting: dict[Slot, int] = field(default_factory=dict)  # tracked -> phase
    untouched: set[Slot] = field(default_factory=set)  # no outcome at all yet

    def __post_init__(self) -> None:
        for index, message in enumerate(self.scenario.messages):
            # a duplicate carries its original's event id: decisions are matched to the original
            if message.event_id and message.kind != DUPLICATE:
                self.by_event_id.setdefault(message.event_id, index)
        for slot, message in tracked_slots(self.scenario):
            self.waiting[slot] = message.phase
            self.untouched.add(slot)

    # -- intake ------------------------------------------------------------------------
    def record(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]],
    ) -> None:
        """One record read from output `topic`."""
        service, what = self.outputs[topic]
        if what == "rejection":
            self._rejected(service, headers)
        else:
            self._decided(service, value)

    def _rejected(self, service: str, headers: Iterable[tuple[str, bytes]]) -> None:
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

    def _decided(self, service: str, value: bytes | None) -> None:
        try:
            document = json.loads(value or b"")
            index = self.by_event_id.get(str(document.get("causation_id")))
        except (ValueError, AttributeError):
            index = None
        if index is None:
            self.foreign += 1
            return
        self.received += 1
        self.decision_ids.add(str(document.get("event_id")))
        slot = (service, index)
        if document.get("event_type") in REVISIONS:
            self.revisions.append((slot, document))  # settles no input
        elif document.get("event_type") == PENDING:
            self.pending.setdefault(slot, []).append(document)
            self.untouched.discard(slot)
        else:
            self.final.setdefault(slot, []).append(document)
            self._settled(slot)

    def _rejection(self, service: str, origin: Origin, headers: dict[str, str]) -> None:
        index = self.produced.get(origin)
        if index is None:  # not (yet) known as ours: matched again once produced
            self.unmatched.append((service, origin, headers))
            return
        self.received += 1
        self.rejected[(service, index)] = headers
        self._settled((service, index))

    def _settled(self, slot: Slot) -> None:
        self.waiting.pop(slot, None)
        self.untouched.discard(slot)

    def produced_at(self, origin: Origin, index: int) -> None:
        """Message `index` was acknowledged at `origin`."""
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
        """How many outcomes the messages of phases <= `up_to_phase` must get."""
        return sum(1 for _, m in tracked_slots(self.scenario) if m.phase <= up_to_phase)

    def outstanding(self, up_to_phase: int, *, parked_counts: bool) -> int:
        """Tracked messages of phases <= `up_to_phase` still without an outcome (a final
        decision or a rejection; or, when `parked_counts`, a DecisionEnAttente)."""
        source: Iterable[Slot] = self.untouched if parked_counts else self.waiting
        return sum(1 for slot in source if self.scenario.messages[slot[1]].phase <= up_to_phase)
