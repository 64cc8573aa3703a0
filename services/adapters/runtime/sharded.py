"""A batch of Kafka records over a store split into shards: each shard's records decided by
that shard's `BatchHandler`, the shards at once, each in its own transaction under its own
lock (runtime.shards says which records go where).

The batch's offsets are committed once every shard has committed its part, as with one
store; a shard that committed before a crash sees its records again as duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from contracts.parsing import ContractError
from services.adapters.runtime.handler import BatchHandler, BatchReport, Record
from services.adapters.runtime.shards import EVERY_SHARD, place_of
from services.domain.kernel.processing import Input


class ShardedHandler:
    """Decides batches of records for one service whose store has several shards."""

    def __init__(self, handlers: Sequence[BatchHandler]) -> None:
        if len(handlers) < 2:
            raise ValueError("a store in shards has at least two")
        self.handlers = tuple(handlers)  # shard k's handler at k

    def places(
        self, records: Sequence[Record], parsed: Sequence[Input | ContractError]
    ) -> list[int]:
        """The shard of each record (`EVERY_SHARD`: a fact about organisms)."""
        shards = len(self.handlers)
        return [
            place_of(r.key, r.partition, m, shards) for r, m in zip(records, parsed, strict=True)
        ]

    async def handle(self, records: Sequence[Record]) -> BatchReport:
        """Record and decide `records` in their shards; returns once each shard committed."""
        started = time.perf_counter()
        parsed = self.handlers[0].parse(records)
        places = self.places(records, parsed)
        report = BatchReport()
        everywhere = [i for i, place in enumerate(places) if place == EVERY_SHARD]
        if everywhere:  # the first shard decides them first: what it refuses, no other records
            first = await self.handlers[0].handle(
                [records[i] for i in everywhere], [parsed[i] for i in everywhere]
            )
            report.add(first)
            refused = {everywhere[j] for j in first.refused}
            report.refused = refused
            everywhere = [i for i in everywhere if i not in refused]
        parts: dict[int, list[int]] = {}
        for index, place in enumerate(places):
            if place != EVERY_SHARD:
                parts.setdefault(place, []).append(index)
        for index in everywhere:
            for shard in range(1, len(self.handlers)):
                parts.setdefault(shard, []).append(index)
        shards = sorted(parts)
        reports = await asyncio.gather(
            *(
                self.handlers[k].handle(
                    [records[i] for i in sorted(parts[k])], [parsed[i] for i in sorted(parts[k])]
                )
                for k in shards
            )
        )
        for k, part in zip(shards, reports, strict=True):
            indexes = sorted(parts[k])
            part.refused = {indexes[j] for j in part.refused}
            if k != 0:  # a fact about organisms counts once: as the first shard recorded it
                shared = {i for i in indexes if places[i] == EVERY_SHARD}
                _uncount(part, [parsed[i] for i in shared])
            report.add(part)
            report.attempts += part.attempts - 1
        report.seconds = time.perf_counter() - started
        return report


def _uncount(report: BatchReport, messages: Sequence[Input | ContractError]) -> None:
    """Take out of `report` the inputs of facts the first shard has counted already."""
    for message in messages:
        if isinstance(message, Input) and report.inputs.get(message.event_type):
            report.inputs[message.event_type] -= 1
            if not report.inputs[message.event_type]:
                del report.inputs[message.event_type]
