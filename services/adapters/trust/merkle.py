"""RFC 6962 (§2.1) Merkle trees over a store's rows, in position order.

Hashing, with domain separation so that no leaf can pass for an inner node:

    leaf      SHA-256(0x00 || data)          data: the row's chain hash (32 bytes)
    node      SHA-256(0x01 || left || right)
    empty     SHA-256("")

The tree over n leaves splits at k, the largest power of two below n: its left subtree holds
leaves [0, k), its right subtree [k, n). Leaf i is the row at position i + 1.

Why the chain hash as leaf data: it commits to the row's content and to every row before it,
and it is what the store already keeps, so a tree over a million rows is a million 32-byte
reads and two million SHA-256 calls, never a million JSON decodings. A proof carries the
row and the hash of the row before it; the verifier recomputes the chain hash, then the leaf.

Everything here is pure. `Frontier` folds leaves one at a time with O(log n) memory (the
perfect subtrees the tree is made of so far, largest first): the anchorer keeps one across
anchors, `audit chain` streams the store through one, and with `wanted` it also keeps the
subtree hashes inclusion and consistency proofs need, so that any number of proofs costs one
pass over the leaves. The recursive `mth`, `inclusion_path` and `consistency_path` are the
RFC's definitions, written for lists, used as the reference the streaming code is tested on.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The hash of the tree with no leaf."""

Range = tuple[int, int]
"""A subtree as the leaves it covers: [start, end)."""


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf holding `data`."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an inner node over two subtrees."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split(n: int) -> int:
    """The largest power of two strictly below `n` (n >= 2): where a tree of n leaves splits."""
    if n < 2:
        raise ValueError(f"a tree of {n} leaves does not split")
    return 1 << ((n - 1).bit_length() - 1)


# --- the definitions, over lists (reference) ------------------------------------------------


def mth(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over leaf hashes (recursive, as the RFC defines it)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]): the audit path of a leaf, deepest sibling first."""
    if len(leaves) <= 1:
        return []
    k = split(len(leaves))
    if index < k:
        return [*inclusion_path(leaves[:k], index), mth(leaves[k:])]
    return [*inclusion_path(leaves[k:], index - k), mth(leaves[:k])]


def consistency_path(leaves: Sequence[bytes], m: int) -> list[bytes]:
    """PROOF(m, D[n]): the nodes showing the first m leaves' tree is a prefix of this one."""

    def sub(m: int, d: Sequence[bytes], whole: bool) -> list[bytes]:
        if m == len(d):
            return [] if whole else [mth(d)]
        k = split(len(d))
        if m <= k:
            return [*sub(m, d[:k], whole), mth(d[k:])]
        return [*sub(m - k, d[k:], False), mth(d[:k])]

    if m <= 0 or m >= len(leaves):
        return []
    return sub(m, leaves, True)


# --- which subtrees a proof needs -----------------------------------------------------------


def inclusion_nodes(index: int, size: int) -> list[Range]:
    """The subtrees whose hashes make the audit path of leaf `index` in a tree of `size`
    leaves, deepest first (the order of `inclusion_path`)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size} leaves")
    siblings: list[Range] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        if index < lo + k:
            siblings.append((lo + k, hi))
            hi = lo + k
        else:
            siblings.append((lo, lo + k))
            lo += k
    return siblings[::-1]


def consistency_nodes(m: int, size: int) -> list[Range]:
    """The subtrees whose hashes make the consistency proof from m leaves to `size`, in the
    order of `consistency_path` (empty when m is 0 or `size`: nothing to prove)."""
    if not 0 <= m <= size:
        raise ValueError(f"a tree of {m} leaves cannot be a prefix of one of {size}")
    if m in (0, size):
        return []
    found: list[Range] = []

    def sub(m: int, lo: int, hi: int, whole: bool) -> None:
        if m == hi - lo:
            if not whole:
                found.append((lo, hi))
            return
        k = split(hi - lo)
        if m <= k:
            sub(m, lo, lo + k, whole)
            found.append((lo + k, hi))
        else:
            sub(m - k, lo + k, hi, False)
            found.append((lo, lo + k))

    sub(m, 0, size, True)
    return found


# --- streaming ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subtree:
    """A perfect subtree: the leaves [start, start + size) and its hash."""

    start: int
    size: int
    hash: bytes


class Frontier:
    """The tree folded so far, as the perfect subtrees it is made of (largest first): a
    compact range of O(log n) hashes from which the root of the leaves pushed so far, and
    after them any number more, follows.

    With `wanted` subtrees (ranges of the tree that the leaves pushed will form), it also
    keeps their hashes as it forms them: `hashes()` then gives them all, right-edge subtrees
    (ending at the last leaf pushed) included.
    """

    def __init__(self, wanted: Iterable[Range] = ()) -> None:
        self._stack: list[Subtree] = []
        self._size = 0
        self._wanted = set(wanted)
        self._found: dict[Range, bytes] = {}

    @classmethod
    def resume(cls, size: int, hashes: Sequence[bytes]) -> Frontier:
        """The frontier of a tree of `size` leaves from its subtree hashes, largest first
        (what `subtree_hashes` gives, what an anchor carries)."""
        sizes = frontier_sizes(size)
        if len(sizes) != len(hashes):
            raise ValueError(
                f"a tree of {size} leaves has {len(sizes)} frontier subtrees, not {len(hashes)}"
            )
        frontier = cls()
        start = 0
        for width, digest in zip(sizes, hashes, strict=True):
            frontier._stack.append(Subtree(start, width, bytes(digest)))
            start += width
        frontier._size = size
        return frontier

    @property
    def size(self) -> int:
        """How many leaves were pushed."""
        return self._size

    def subtree_hashes(self) -> list[bytes]:
        """The hashes of the frontier's subtrees, largest first."""
        return [s.hash for s in self._stack]

    def push(self, leaf: bytes) -> None:
        """Add the next leaf (its leaf hash)."""
        node = Subtree(self._size, 1, leaf)
        self._size += 1
        self._keep(node)
        stack = self._stack
        while stack and stack[-1].size == node.size:
            left = stack.pop()
            node = Subtree(left.start, left.size * 2, node_hash(left.hash, node.hash))
            self._keep(node)
        stack.append(node)

    def push_data(self, data: bytes) -> None:
        """Add the next leaf from its data (a row's chain hash)."""
        self.push(leaf_hash(data))

    def _keep(self, node: Subtree) -> None:
        if self._wanted:
            at = (node.start, node.start + node.size)
            if at in self._wanted:
                self._found[at] = node.hash

    def root(self) -> bytes:
        """The root of the tree of the leaves pushed so far."""
        if not self._stack:
            return EMPTY_ROOT
        digest = self._stack[-1].hash
        for node in reversed(self._stack[:-1]):
            digest = node_hash(node.hash, digest)
        return digest

    def hashes(self) -> dict[Range, bytes]:
        """The hashes of the wanted subtrees, as the tree of the leaves pushed so far has
        them. A wanted subtree neither formed nor ending at the last leaf is missing."""
        found = dict(self._found)
        digest: bytes | None = None
        for node in reversed(self._stack):  # the right-edge subtrees, smallest first
            digest = node.hash if digest is None else node_hash(node.hash, digest)
            at = (node.start, self._size)
            if at in self._wanted:
                found[at] = digest
        return found


def frontier_sizes(size: int) -> list[int]:
    """The sizes of the perfect subtrees a tree of `size` leaves is folded into, largest
    first (its binary digits)."""
    if size < 0:
        raise ValueError("a tree cannot have a negative size")
    return [1 << bit for bit in range(size.bit_length() - 1, -1, -1) if size >> bit & 1]


def root_of(leaves: Iterable[bytes]) -> bytes:
    """The root over leaf hashes, streamed (O(log n) memory)."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.push(leaf)
    return frontier.root()


# --- verification ---------------------------------------------------------------------------


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an audit path leads to from a leaf, or None when the path cannot be one
    (wrong length, index outside the tree)."""
    if not 0 <= index < size:
        return None
    sides: list[bool] = []  # top down: is the sibling on the right?
    lo, hi = 0, size
    while hi - lo > 1:
        k = split(hi - lo)
        sides.append(index < lo + k)
        if index < lo + k:
            hi = lo + k
        else:
            lo += k
    if len(sides) != len(path):
        return None
    digest = leaf
    for sibling_on_right, sibling in zip(reversed(sides), path, strict=True):
        digest = node_hash(digest, sibling) if sibling_on_right else node_hash(sibling, digest)
    return digest


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> bool:
    """Whether `leaf` is leaf `index` of the tree of `size` leaves whose root is `root`."""
    return root_from_path(index, size, leaf, path) == root


def verify_consistency(
    m: int, n: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """Whether the tree of m leaves with `old_root` is a prefix of the tree of n leaves with
    `new_root`, given PROOF(m, D[n]).

    The proof is walked along the same splits that produced it: each step yields the hash
    of the old tree's part and of the new tree's part of one subtree; both roots must come
    out, and every node of the proof must be used."""
    if not 0 <= m <= n:
        return False
    if m == 0:
        return not path  # every tree extends the empty one
    if m == n:
        return not path and old_root == new_root
    nodes = iter(path)

    def walk(m: int, n: int, whole: bool) -> tuple[bytes, bytes]:
        if m == n:
            if whole:  # the old tree itself: the verifier knows its hash
                return old_root, old_root
            given = next(nodes)
            return given, given
        k = split(n)
        if m <= k:
            old, new = walk(m, k, whole)
            return old, node_hash(new, next(nodes))
        old, new = walk(m - k, n - k, False)
        left = next(nodes)
        return node_hash(left, old), node_hash(left, new)

    try:
        old, new = walk(m, n, True)
    except StopIteration:  # the proof is too short
        return False
    if next(nodes, None) is not None:  # too long
        return False
    return old == old_root and new == new_root
