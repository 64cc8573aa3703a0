"""The event store as its users see it: the batch handler writes through a `Transaction`,
the audit and replay readers read through the `Store`. The PostgreSQL store
(`store.EventStore`) and the in-memory one (`memory.MemoryEventStore`) both satisfy these
protocols, and one behavioural suite (tests/integration/test_store_behaviour.py) holds them
to the same promises:

- an event id is stored once, forever (a second one is `DuplicateEventError` at commit);
- a stream's versions are taken once each (`ConcurrencyError` at commit);
- positions are 1, 2, 3 ... with no gap, in commit order; each row's chain hash is
  `chain_hash` of the row before and its content;
- a transaction is all or nothing: an error inside it, or a refusal at commit, leaves the
  store as it was -- its decision state included;
- the decision state is a set of entries by (kind, key), found also by tag and tag prefix,
  with the position it is the fold of.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Protocol
from uuid import UUID

from services.domain.kernel.records import NewEvent, StoredEvent
from services.domain.kernel.tasks import Starts
from services.domain.state import Change, Demand, Row

if TYPE_CHECKING:
    from services.adapters.eventstore.store import ChainReport


class Transaction(Protocol):
    """One serialised write transaction: what is committed, then appends after it."""

    @property
    def head_position(self) -> int:
        """The last position taken, counting this transaction's own appends."""
        ...

    async def read_since(self, position: int, limit: int | None = None) -> list[StoredEvent]:
        """The committed events after `position` (at most `limit`), in store order."""
        ...

    def appended(self) -> list[tuple[UUID, str]]:
        """(event id, event type) of what this transaction appends, in order."""
        ...

    async def holders(self, keys: Sequence[str]) -> dict[str, int]:
        """For one shard of a store split in shards: the shard holding each of `keys` (ids
        unique across the shards) that one holds. A store in one piece: none."""
        ...

    async def claim(self, keys: Sequence[str]) -> dict[str, int]:
        """Take `keys` for this shard with this transaction; those another shard took first
        (the caller must decide again). A store in one piece: nothing to take."""
        ...

    async def stored_events(self, event_ids: Iterable[UUID]) -> dict[UUID, StoredEvent]:
        """The events the store already holds under these ids."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The stream's version (0 when it has no event), this transaction included."""
        ...

    async def stream_versions(self, stream_ids: Iterable[str]) -> dict[str, int]:
        """The versions of those of these streams that have events, this transaction
        included."""
        ...

    def append_at(self, stream_id: str, stream_version: int, event: NewEvent) -> int:
        """Append one event as version `stream_version` of `stream_id`; its position."""
        ...

    async def state_position(self) -> int:
        """The position the decision state is the fold of (0: none folded yet)."""
        ...

    async def state_anchor(self) -> tuple[int, bool, int]:
        """The position the decision state is the fold of, whether the store still holds
        the event it was folded up to (not cut or rewritten since), and the version of the
        fold that wrote it."""
        ...

    async def set_state_version(self, version: int) -> None:
        """Record the version of the fold the state now is."""
        ...

    async def load_state(self, demand: Demand) -> list[Row]:
        """The decision state entries `demand` names (by key, by tag, by tag prefix)."""
        ...

    async def load(self, demand: Demand) -> tuple[list[Row], dict[str, int]]:
        """`load_state(demand)` and `stream_versions(demand.streams)` at once (one round
        trip to a database): what a batch reads, a round of its demand at a time."""
        ...

    async def state_span(self, kind: str, tag: str, after: str, limit: int) -> list[Row]:
        """The first `limit` entries of `kind` under `tag` whose key sorts after `tag +
        after`, in key order (code points): a span of a pair index (`PairIndex.following`)."""
        ...

    async def state_firsts(self, kind: str, tags: Sequence[str]) -> list[Row]:
        """The first entry of `kind` under each of `tags` (in key order), if any: whether
        an organism has anyone, for many organisms at once."""
        ...

    async def save_state(self, changes: Sequence[Change], position: int) -> None:
        """Write `changes` back; the state is now the fold up to `position`. Committed with
        the transaction's appends, or not at all."""
        ...

    async def reset_state(self) -> None:
        """Forget the decision state (to fold it again from position 0)."""
        ...

    async def start_revisions(self) -> Starts:
        """The positions from which registry facts revise decisions, and in steps, recorded
        at the next position the first time it is asked."""
        ...


class Store(Protocol):
    """An append-only, hash-chained event store."""

    @property
    def schema(self) -> str: ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """A serialised write transaction, committed when its block exits without error."""
        ...

    async def ping(self, timeout: float = 5.0) -> bool:
        """Whether the store answers now (a dependency check)."""
        ...

    async def head(self) -> int:
        """The last committed position (0 for an empty store)."""
        ...

    async def revisions_from(self) -> Starts:
        """The positions from which registry facts revise earlier decisions, and in steps."""
        ...

    async def tagged_summary(self, kind: str) -> tuple[int, str | None]:
        """How many decision state entries of `kind` have a tag (parked inputs, open
        revision tasks), and the key of the one with the smallest ordinal (the oldest)."""
        ...

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        """A stream's events after `after_version`, in order."""
        ...

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[StoredEvent]:
        """Up to `limit` events after position `after`, in store order."""
        ...

    async def read_types(
        self, after: int, event_types: Iterable[str], limit: int = 1000
    ) -> tuple[list[StoredEvent], int]:
        """Up to `limit` events of `event_types` after `after`, and the position up to which
        that answer is complete."""
        ...

    def iter_all(
        self, after: int = 0, *, batch: int = 5000, until: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Every event after `after` (up to `until`, inclusive)."""
        ...

    async def verify_chain(self, *, batch: int = 5000) -> ChainReport:
        """Recompute every row's hash; the first position where the chain does not hold."""
        ...

    async def hash_at(self, position: int) -> bytes | None:
        """The chain hash of the row at `position`, if any."""
        ...

    async def hashes_at(self, positions: Iterable[int]) -> dict[int, bytes]:
        """The chain hashes of the rows at `positions` the store holds."""
        ...

    async def chain_hashes(self, after: int, until: int, limit: int) -> list[tuple[int, bytes]]:
        """(position, chain hash) of up to `limit` rows in (after, until], in order."""
        ...
