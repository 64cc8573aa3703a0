"""Signed anchors: a store's chain head and Merkle tree head, signed outside the database and
kept on a Kafka topic of their own (`rsi.audit.ancrages.v1`, kept forever, key = service).

An anchor says: "at `anchored_at`, the store of `service` in `schema` held `size` rows, the
last one's chain hash was `chain_hash`, and the RFC 6962 tree over their chain hashes had
root `root`". Its Ed25519 signature is made with a key the database never sees, so whoever
holds only the database can delete, rewrite and re-hash rows but cannot make an anchor that
agrees: `mandat audit chain --public-key` compares the store with every anchor.

The anchor also carries the frontier of the tree (the O(log n) subtree hashes it folds to
the root), checked against the root when the anchor is read, so an anchorer restarting
resumes from its last anchor instead of reading the whole store again.

On the wire an anchor is its canonical JSON (sorted keys, no spaces); the signature covers
every other field: `ANCHOR_FORMAT + "\\n" + canonical JSON without "signature"`. Anything
on the topic that is not exactly such a document is unreadable, never a crash.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.adapters.trust.merkle import Frontier
from services.adapters.trust.signing import key_id, verify
from services.domain.kernel.records import canonical_bytes

ANCHOR_FORMAT = "mandat-anchor/1"
MAX_ANCHOR_BYTES = 64 * 1024
"""An anchor is about 2 KiB; anything much larger on the topic is not one."""
_HEX32 = re.compile(r"^[0-9a-f]{64}$")
_HEX64 = re.compile(r"^[0-9a-f]{128}$")
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_FIELDS = frozenset(
    {
        "format",
        "service",
        "schema",
        "chain_head",
        "tree_head",
        "frontier",
        "anchored_at",
        "key_id",
        "signature",
    }
)


class AnchorFormatError(ValueError):
    """Bytes or a document that are not a well-formed anchor."""


@dataclass(frozen=True, slots=True)
class Anchor:
    """A signed statement of a store's head and Merkle tree head (over the same positions)."""

    service: str
    schema: str
    size: int  # the chain head's position, and the number of leaves of the tree
    chain_hash: bytes  # the chain hash of the row at position `size`
    root: bytes  # the Merkle tree head over positions 1..size
    frontier: tuple[bytes, ...]  # the tree's perfect subtrees, largest first
    anchored_at: str  # ISO 8601, UTC
    key_id: str
    signature: bytes = b""

    def body(self) -> dict[str, Any]:
        """Every field but the signature, as the JSON document has them."""
        return {
            "format": ANCHOR_FORMAT,
            "service": self.service,
            "schema": self.schema,
            "chain_head": {"position": self.size, "hash": self.chain_hash.hex()},
            "tree_head": {"size": self.size, "root": self.root.hex()},
            "frontier": [h.hex() for h in self.frontier],
            "anchored_at": self.anchored_at,
            "key_id": self.key_id,
        }

    def signed_bytes(self) -> bytes:
        """What the signature covers."""
        return ANCHOR_FORMAT.encode() + b"\n" + canonical_bytes(self.body())

    def as_dict(self) -> dict[str, Any]:
        """The whole document (what goes on the topic and into proofs)."""
        return self.body() | {"signature": self.signature.hex()}

    def to_bytes(self) -> bytes:
        return canonical_bytes(self.as_dict())

    def signed_by(self, keys: Sequence[Ed25519PublicKey]) -> bool:
        """Whether one of `keys` signed this anchor."""
        return any(
            key_id(k) == self.key_id and verify(k, self.signature, self.signed_bytes())
            for k in keys
        )

    def describe(self) -> str:
        """One line for reports (no personal data in an anchor)."""
        return (
            f"anchor of {self.anchored_at} (size {self.size}, root {self.root.hex()[:16]}…,"
            f" key {self.key_id})"
        )


def sign(
    private: Ed25519PrivateKey,
    *,
    service: str,
    schema: str,
    frontier: Frontier,
    chain_hash: bytes,
    anchored_at: datetime,
) -> Anchor:
    """The anchor of a tree (its frontier) whose last row has `chain_hash`, signed."""
    unsigned = Anchor(
        service,
        schema,
        frontier.size,
        chain_hash,
        frontier.root(),
        tuple(frontier.subtree_hashes()),
        anchored_at.isoformat(),
        key_id(private.public_key()),
    )
    return replace(unsigned, signature=private.sign(unsigned.signed_bytes()))


def parse_anchor(raw: bytes | None) -> Anchor:
    """An anchor from the bytes of a record, checked for form (not for its signature)."""
    if raw is None:
        raise AnchorFormatError("a tombstone, not an anchor")
    if len(raw) > MAX_ANCHOR_BYTES:
        raise AnchorFormatError(f"{len(raw)} bytes: too large to be an anchor")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise AnchorFormatError("not JSON") from exc
    anchor = anchor_from_dict(document)
    if anchor.to_bytes() != raw:
        raise AnchorFormatError("not in canonical form")
    return anchor


def anchor_from_dict(document: Any) -> Anchor:
    """An anchor from its JSON document, every field checked (a well-formed anchor is one
    whose frontier folds to its root)."""
    if not isinstance(document, dict) or set(document) != _FIELDS:
        raise AnchorFormatError("not an anchor document")
    if document["format"] != ANCHOR_FORMAT:
        raise AnchorFormatError("unknown anchor format")
    chain_head, tree_head = document["chain_head"], document["tree_head"]
    if not (
        isinstance(chain_head, dict)
        and set(chain_head) == {"position", "hash"}
        and isinstance(tree_head, dict)
        and set(tree_head) == {"size", "root"}
    ):
        raise AnchorFormatError("malformed chain or tree head")
    size = _count(tree_head["size"])
    if _count(chain_head["position"]) != size or size < 1:
        raise AnchorFormatError("the chain head and the tree head are not over the same rows")
    frontier = document["frontier"]
    if not isinstance(frontier, list):
        raise AnchorFormatError("malformed frontier")
    anchor = Anchor(
        service=_name(document["service"]),
        schema=_name(document["schema"]),
        size=size,
        chain_hash=_digest(chain_head["hash"], _HEX32),
        root=_digest(tree_head["root"], _HEX32),
        frontier=tuple(_digest(h, _HEX32) for h in frontier),
        anchored_at=_instant(document["anchored_at"]),
        key_id=_text(document["key_id"], _KEY_ID),
        signature=_digest(document["signature"], _HEX64),
    )
    try:
        folded = Frontier.resume(size, anchor.frontier).root()
    except ValueError as exc:
        raise AnchorFormatError("the frontier does not fit the tree size") from exc
    if folded != anchor.root:
        raise AnchorFormatError("the frontier does not fold to the root")
    return anchor


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise AnchorFormatError("a count that is not a natural number")
    return value


def _text(value: Any, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise AnchorFormatError("a malformed field")
    return value


def _name(value: Any) -> str:
    return _text(value, _NAME)


def _digest(value: Any, pattern: re.Pattern[str]) -> bytes:
    return bytes.fromhex(_text(value, pattern))


def _instant(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 40:
        raise AnchorFormatError("a malformed time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise AnchorFormatError("a malformed time") from exc
    if moment.tzinfo is None:
        raise AnchorFormatError("a time without a time zone")
    return value


# --- the topic ------------------------------------------------------------------------------


class AnchorReadError(Exception):
    """The anchors topic could not be read (wholly) in time."""


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    """A record of the anchors topic: an anchor, or why it is not one."""

    partition: int
    offset: int
    key: bytes | None
    anchor: Anchor | None = None
    problem: str | None = None

    @property
    def where(self) -> str:
        return f"partition {self.partition} offset {self.offset}"

    def about(self, service: str, schema: str) -> bool:
        """Whether this record claims to be about the store of `service` in `schema` (an
        unreadable record is about a service when its key names it)."""
        if self.anchor is not None:
            return self.anchor.service == service and self.anchor.schema == schema
        return self.key == service.encode()


def record_of(partition: int, offset: int, key: bytes | None, value: bytes | None) -> AnchorRecord:
    try:
        return AnchorRecord(partition, offset, key, parse_anchor(value))
    except AnchorFormatError as exc:
        return AnchorRecord(partition, offset, key, problem=str(exc))


@dataclass
class _Reader:
    """A consumer of the anchors topic, outside any group (it commits nothing)."""

    bootstrap_servers: str
    topic: str
    client_options: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = 60.0

    async def __aenter__(self) -> _Reader:
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **dict(self.client_options),
        )
        await self.consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.consumer.stop()

    async def partitions(self) -> list[TopicPartition]:
        """The topic's partitions (none when it does not exist). Asked of the cluster's
        metadata for every topic, which never creates one."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap_servers, **dict(self.client_options)
        )
        await admin.start()
        try:
            topics = await admin.describe_topics(None)
        finally:
            await admin.close()
        ids = {p["partition"] for t in topics if t["topic"] == self.topic for p in t["partitions"]}
        return [TopicPartition(self.topic, p) for p in sorted(ids)]

    async def read(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> list[AnchorRecord]:
        """The records at offsets [start, end) of each partition."""
        ranges = {tp: r for tp, r in ranges.items() if r[0] < r[1]}
        if not ranges:
            return []
        self.consumer.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            self.consumer.seek(tp, start)
        found: list[AnchorRecord] = []
        pending = set(ranges)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while pending:
            if loop.time() > deadline:
                raise AnchorReadError(
                    f"{self.topic}: not read to its end within {self.timeout:.0f}s"
                )
            batch = await self.consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                end = ranges[tp][1]
                for r in records:
                    if r.offset < end:
                        found.append(record_of(tp.partition, r.offset, r.key, r.value))
                if records and records[-1].offset >= end - 1:
                    pending.discard(tp)
            for tp in list(pending):  # compacted or deleted offsets: judge by position
                if await self.consumer.position(tp) >= ranges[tp][1]:
                    pending.discard(tp)
        return sorted(found, key=lambda r: (r.partition, r.offset))


async def read_anchors(
    bootstrap_servers: str,
    topic: str,
    *,
    client_options: Mapping[str, Any] | None = None,
    timeout: float = 120.0,
) -> list[AnchorRecord]:
    """Every record of the anchors topic, up to its end now (none if it does not exist)."""
    async with _Reader(bootstrap_servers, topic, client_options or {}, timeout) as reader:
        parts = await reader.partitions()
        if not parts:
            return []
        starts = await reader.consumer.beginning_offsets(parts)
        ends = await reader.consumer.end_offsets(parts)
        return await reader.read({tp: (starts[tp], ends[tp]) for tp in parts})


async def last_anchor(
    bootstrap_servers: str,
    topic: str,
    *,
    service: str,
    schema: str,
    keys: Sequence[Ed25519PublicKey],
    client_options: Mapping[str, Any] | None = None,
    window: int = 500,
    timeout: float = 60.0,
) -> Anchor | None:
    """The largest anchor of the store of `service` in `schema` signed by one of `keys`,
    looking back from the end of each partition a window at a time until one is found (an
    anchorer resumes from it without reading the whole topic)."""
    best: Anchor | None = None
    async with _Reader(bootstrap_servers, topic, client_options or {}, timeout) as reader:
        parts = await reader.partitions()
        if not parts:
            return None
        starts = await reader.consumer.beginning_offsets(parts)
        ends = await reader.consumer.end_offsets(parts)
        for tp in parts:
            end = ends[tp]
            while end > starts[tp]:
                start = max(starts[tp], end - window)
                mine = [
                    r.anchor
                    for r in await reader.read({tp: (start, end)})
                    if r.anchor is not None
                    and r.about(service, schema)
                    and r.anchor.signed_by(keys)
                ]
                if mine:
                    top = max(mine, key=lambda a: a.size)
                    best = top if best is None or top.size > best.size else best
                    break
                end = start
    return best
