"""The Merkle tree of a store, read from PostgreSQL: its leaves are the rows' chain hashes,
in position order, read in batches (32 bytes a row; the rows' content is not decoded)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

from services.adapters.eventstore import EventStore
from services.adapters.trust.merkle import Frontier, Range


async def chain_hashes(
    store: EventStore, after: int = 0, until: int | None = None, *, batch: int = 50_000
) -> AsyncIterator[tuple[int, bytes]]:
    """(position, chain hash) of every row after `after` up to `until` (inclusive), in
    order. Positions are yielded as stored: a caller checks they have no gap."""
    last = until if until is not None else 2**63 - 1
    while after < last:
        rows = await store.chain_hashes(after, last, batch)
        for row in rows:
            yield row
        if len(rows) < batch:
            return
        after = rows[-1][0]


class GapError(Exception):
    """A position is missing from the store: no tree over it can be computed."""

    def __init__(self, position: int) -> None:
        super().__init__(f"position #{position} is missing from the store")
        self.position = position


async def tree_of(store: EventStore, size: int, wanted: Iterable[Range] = ()) -> Frontier:
    """The tree over positions 1..size, with the hashes of the `wanted` subtrees (one pass
    over the chain hashes, O(log n + wanted) memory). Raises `GapError` when a position is
    missing, and when the store ends before `size`."""
    frontier = Frontier(wanted)
    async for position, digest in chain_hashes(store, 0, size):
        if position != frontier.size + 1:
            raise GapError(frontier.size + 1)
        frontier.push_data(digest)
    if frontier.size != size:
        raise GapError(frontier.size + 1)
    return frontier
