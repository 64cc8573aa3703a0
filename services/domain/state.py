"""Decision state read by key: what a batch needs, loaded before it is decided.

A service's processor reads a handful of entries per input (a contribution, a person's
affiliations, an organism and its conventions, the inputs parked on a key). Folding the whole
history into memory to answer that makes memory and start time grow with the record, so the
live service keeps this state in tables, maintained in the same transaction as the append,
and loads per batch only the entries its inputs name (`Demand`).

The views the processors read are the same classes in both modes: a replay folds the whole
history into plain dicts; a batch gets `LoadedMap`s holding what was loaded. A `LoadedMap`
knows which keys were asked for, so a read of a key nobody loaded is a loud `NotLoaded`
(a bug of the demand), never a silent "absent" that would decide wrongly. It also records
which keys may have changed, so the batch writes back only those (`changes`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

V = TypeVar("V")

Doc = dict[str, Any] | list[Any]
"""A state entry as a table keeps it: JSON."""


class NotLoaded(LookupError):
    """A batch read a state entry its demand did not load (a bug, never a record's fault
    to be silently decided on)."""

    def __init__(self, kind: str, key: str) -> None:
        super().__init__(f"state entry {kind}/{key!r} read but not loaded")
        self.kind = kind
        self.key = key


class LoadedMap(MutableMapping[str, V], Generic[V]):
    """The entries of one kind a batch loaded, and which keys it asked for.

    Reading a key asked for but absent gives "absent" (the store has none); reading a key
    never asked for raises `NotLoaded`. Every key written, deleted, or read for a change
    (`__getitem__`, `setdefault`: the caller may mutate what it gets) is marked, and
    `changed()` lists them."""

    def __init__(
        self,
        kind: str,
        loaded: Mapping[str, V],
        asked: Iterable[str],
        prefixes: Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self._data: dict[str, V] = dict(loaded)
        self._asked: set[str] = set(asked) | self._data.keys()
        self._prefixes = tuple(prefixes)  # every key under these was loaded
        self._touched: set[str] = set()

    def _check(self, key: str) -> None:
        if key not in self._asked and not (self._prefixes and key.startswith(self._prefixes)):
            raise NotLoaded(self.kind, key)

    def __getitem__(self, key: str) -> V:
        self._check(key)
        self._touched.add(key)
        return self._data[key]

    def __setitem__(self, key: str, value: V) -> None:
        self._asked.add(key)
        self._touched.add(key)
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        self._check(key)
        self._touched.add(key)
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        self._check(key)
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        self._check(key)
        return self._data.get(key, default)

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._check(key)
        self._touched.add(key)
        return self._data.setdefault(key, default)

    def __iter__(self) -> Iterator[str]:
        """The entries loaded (and added since): a partial view iterates what it holds."""
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def changed(self) -> Iterator[tuple[str, V | None]]:
        """(key, value now, or None when deleted) of every key that may have changed."""
        for key in self._touched:
            yield key, self._data.get(key)


class PairIndex:
    """Pairs (first, second) found by their first member: who was affiliated to an
    organism, which subjects a person has. Kept as one entry per pair (a big organism has a
    million people: no document holds them all), keyed `first + second`, tagged `first`.

    Folded from a whole history it holds every pair; built for a batch, it holds the pairs
    of the firsts it was asked for (`asked`), and reading another first is `NotLoaded`."""

    def __init__(
        self,
        kind: str,
        loaded: Iterable[tuple[str, str]] = (),
        asked: Iterable[str] | None = None,
        ranges: Mapping[str, Span] | None = None,
    ) -> None:
        self.kind = kind
        self._by_first: dict[str, set[str]] = {}
        for first, second in loaded:
            self._by_first.setdefault(first, set()).add(second)
        self._asked = None if asked is None else set(asked)
        self._ranges = dict(ranges or {})  # first -> the span of its seconds loaded
        self.added: list[tuple[str, str]] = []

    def add(self, first: str, second: str) -> None:
        seconds = self._by_first.setdefault(first, set())
        if second not in seconds:  # (known or not: a batch need not load what it adds to)
            seconds.add(second)
            self.added.append((first, second))

    def seconds(self, first: str) -> list[str]:
        """The second members paired with `first`, in order."""
        if self._asked is not None and first not in self._asked:
            raise NotLoaded(self.kind, first)
        return sorted(self._by_first.get(first, ()))

    def following(self, first: str, after: str, limit: int) -> list[str]:
        """The first `limit` second members paired with `first` that sort after `after`
        (code point order, as the table's "C" collation): one step through a big organism's
        people, loaded as a span (`Span`) rather than whole."""
        if self._asked is None or first in self._asked:
            return [s for s in self.seconds(first) if s > after][:limit]
        span = self._ranges.get(first)
        if span is None or span.after != after:
            raise NotLoaded(self.kind, first)
        found = self.between(first, span)
        if span.through is not None and len(found) < limit:
            raise NotLoaded(self.kind, first)  # the span loaded is shorter than asked
        return found[:limit]

    def between(self, first: str, span: Span) -> list[str]:
        """The second members paired with `first` within `span`, in order."""
        if self._asked is not None and first not in self._asked:
            known = self._ranges.get(first)
            if known is None or not known.covers(span):
                raise NotLoaded(self.kind, first)
        return [s for s in sorted(self._by_first.get(first, ())) if span.holds(s)]


@dataclass(frozen=True, slots=True)
class Span:
    """The second members of a pair index after `after`, up to `through` included (to the
    end when None), in code point order."""

    after: str
    through: str | None = None

    def holds(self, second: str) -> bool:
        return second > self.after and (self.through is None or second <= self.through)

    def covers(self, other: Span) -> bool:
        if other.after < self.after:
            return False
        if self.through is None:
            return True
        return other.through is not None and other.through <= self.through


@dataclass(frozen=True, slots=True)
class Entry:
    """One state entry as a table keeps it: its document, and the secondary key (`tag`) and
    `ordinal` it is found and ordered by, when its kind is looked up by tag."""

    doc: Doc
    tag: str | None = None
    ordinal: int = 0


@dataclass(frozen=True, slots=True)
class Kind(Generic[V]):
    """How one kind of entry is kept: to and from its table form."""

    name: str
    encode: Callable[[V], Entry]
    decode: Callable[[Entry], V]


@dataclass(slots=True)
class Demand:
    """The state entries a batch reads: by key, by tag (every entry of a kind under that
    tag), by tag prefix, and the stream versions it appends after."""

    keys: dict[str, set[str]] = field(default_factory=dict)  # kind -> keys
    tags: dict[str, set[str]] = field(default_factory=dict)  # kind -> tags
    prefixes: dict[str, set[str]] = field(default_factory=dict)  # kind -> tag prefixes
    streams: set[str] = field(default_factory=set)

    def key(self, kind: str, key: str) -> None:
        self.keys.setdefault(kind, set()).add(key)

    def tag(self, kind: str, tag: str) -> None:
        self.tags.setdefault(kind, set()).add(tag)

    def prefix(self, kind: str, prefix: str) -> None:
        self.prefixes.setdefault(kind, set()).add(prefix)

    def stream(self, stream_id: str) -> None:
        self.streams.add(stream_id)

    def minus(self, done: Demand) -> Demand:
        """What this asks that `done` did not."""
        rest = Demand(streams=self.streams - done.streams)
        for mine, theirs, out in (
            (self.keys, done.keys, rest.keys),
            (self.tags, done.tags, rest.tags),
            (self.prefixes, done.prefixes, rest.prefixes),
        ):
            for kind, items in mine.items():
                left = items - theirs.get(kind, set())
                if left:
                    out[kind] = left
        return rest

    def add(self, other: Demand) -> None:
        for mine, theirs in (
            (self.keys, other.keys),
            (self.tags, other.tags),
            (self.prefixes, other.prefixes),
        ):
            for kind, items in theirs.items():
                mine.setdefault(kind, set()).update(items)
        self.streams |= other.streams

    def __bool__(self) -> bool:
        return bool(self.keys or self.tags or self.prefixes or self.streams)


@dataclass(frozen=True, slots=True)
class Row:
    """A state entry as loaded: kind, key and table form."""

    kind: str
    key: str
    entry: Entry


@dataclass(slots=True)
class LoadedState:
    """What a batch loaded: entries by kind and key, stream versions, and all it asked."""

    rows: dict[str, dict[str, Entry]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    demand: Demand = field(default_factory=Demand)
    folding: bool = False  # for folding stored events: stream versions are not read
    spans: dict[str, dict[str, Span]] = field(default_factory=dict)
    """Pairs loaded as a span of one first rather than whole: kind -> first -> span."""

    def add(self, row: Row) -> None:
        self.rows.setdefault(row.kind, {})[row.key] = row.entry

    def pair_index(self, kind: str) -> PairIndex:
        """The pairs of `kind` loaded, as a `PairIndex` of the firsts asked."""
        pairs = []
        for entry in self.rows.get(kind, {}).values():
            first, second = entry.doc
            pairs.append((first, second))
        return PairIndex(kind, pairs, self.demand.tags.get(kind, ()), self.spans.get(kind))

    def loaded_map(self, kind: Kind[V]) -> LoadedMap[V]:
        """The entries of `kind` as a `LoadedMap` of decoded values."""
        entries = self.rows.get(kind.name, {})
        return LoadedMap(
            kind.name,
            {key: kind.decode(entry) for key, entry in entries.items()},
            self.demand.keys.get(kind.name, ()),
            self.demand.prefixes.get(kind.name, ()),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A state entry to write back: its new form, or None to delete it."""

    kind: str
    key: str
    entry: Entry | None


def pair_entry(first: str, second: str) -> Entry:
    """A pair as its table keeps it (`PairIndex`)."""
    return Entry([first, second], tag=first)


def changes_of(
    kind: Kind[V], values: LoadedMap[V], before: Mapping[str, Entry]
) -> Iterator[Change]:
    """The entries of `kind` a batch changed: encoded, and compared with what was loaded."""
    for key, value in values.changed():
        entry = None if value is None else kind.encode(value)
        if entry != before.get(key):
            yield Change(kind.name, key, entry)
