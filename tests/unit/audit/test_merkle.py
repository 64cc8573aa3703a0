"""The RFC 6962 tree: small trees computed by hand, then every proof of generated trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.adapters.trust.merkle import (
    EMPTY_ROOT,
    Frontier,
    consistency_nodes,
    consistency_path,
    frontier_sizes,
    inclusion_nodes,
    inclusion_path,
    leaf_hash,
    mth,
    node_hash,
    root_from_path,
    root_of,
    split,
    verify_consistency,
    verify_inclusion,
)

pytestmark = pytest.mark.unit


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def leaves(n: int, tag: bytes = b"") -> list[bytes]:
    return [leaf_hash(tag + i.to_bytes(4, "big")) for i in range(n)]


def flip(data: bytes, at: int, mask: int = 1) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]


# --- by hand --------------------------------------------------------------------------------


def test_leaves_and_nodes_are_hashed_with_distinct_prefixes() -> None:
    assert sha(b"") == EMPTY_ROOT
    assert leaf_hash(b"abc") == sha(b"\x00abc")
    assert node_hash(b"L" * 32, b"R" * 32) == sha(b"\x01" + b"L" * 32 + b"R" * 32)
    # a leaf whose data is two hashes is not the node over them
    assert leaf_hash(b"L" * 32 + b"R" * 32) != node_hash(b"L" * 32, b"R" * 32)


def test_a_tree_splits_at_the_largest_power_of_two_below_its_size() -> None:
    assert [split(n) for n in (2, 3, 4, 5, 7, 8, 9, 16, 17)] == [1, 2, 2, 4, 4, 4, 8, 8, 16]
    with pytest.raises(ValueError):
        split(1)
    assert frontier_sizes(13) == [8, 4, 1]
    assert frontier_sizes(0) == []


def test_small_trees_computed_by_hand() -> None:
    a, b, c, d, e = (leaf_hash(x) for x in (b"a", b"b", b"c", b"d", b"e"))
    ab, cd = sha(b"\x01" + a + b), sha(b"\x01" + c + d)
    abcd = sha(b"\x01" + ab + cd)
    assert mth([]) == root_of([]) == EMPTY_ROOT
    assert mth([a]) == root_of([a]) == a == sha(b"\x00a")
    assert mth([a, b]) == root_of([a, b]) == ab
    assert mth([a, b, c]) == root_of([a, b, c]) == sha(b"\x01" + ab + c)
    assert mth([a, b, c, d]) == root_of([a, b, c, d]) == abcd
    assert mth([a, b, c, d, e]) == root_of([a, b, c, d, e]) == sha(b"\x01" + abcd + e)

    # RFC 6962 §2.1.3's example shape, on 5 leaves: the path of c is [d, ab, e]
    assert inclusion_path([a, b, c, d, e], 2) == [d, ab, e]
    assert inclusion_nodes(2, 5) == [(3, 4), (0, 2), (4, 5)]
    assert inclusion_path([a, b, c, d, e], 4) == [abcd]
    assert inclusion_path([a, b, c], 2) == [ab]
    assert inclusion_path([a, b, c], 0) == [b, c]
    assert verify_inclusion(2, 5, c, [d, ab, e], mth([a, b, c, d, e]))
    assert not verify_inclusion(3, 5, c, [d, ab, e], mth([a, b, c, d, e]))

    # consistency of 3 in 5: prove c, d, ab, e give both roots
    assert consistency_path([a, b, c, d, e], 3) == [c, d, ab, e]
    assert consistency_nodes(3, 5) == [(2, 3), (3, 4), (0, 2), (4, 5)]
    assert consistency_path([a, b, c, d, e], 4) == [e]  # the old tree is the left subtree
    assert consistency_path([a, b, c, d], 2) == [cd]
    assert verify_consistency(3, 5, mth([a, b, c]), mth([a, b, c, d, e]), [c, d, ab, e])
    assert verify_consistency(4, 5, abcd, mth([a, b, c, d, e]), [e])
    assert not verify_consistency(4, 5, ab, mth([a, b, c, d, e]), [e])


def test_the_degenerate_cases() -> None:
    root = mth(leaves(3))
    assert verify_consistency(0, 3, EMPTY_ROOT, root, [])
    assert verify_consistency(3, 3, root, root, [])
    assert not verify_consistency(3, 3, root, EMPTY_ROOT, [])
    assert not verify_consistency(3, 3, root, root, [root])
    assert not verify_consistency(4, 3, root, root, [])
    assert root_from_path(3, 3, leaves(3)[0], []) is None
    assert root_from_path(-1, 3, leaves(3)[0], []) is None
    assert not verify_inclusion(0, 3, leaves(3)[0], inclusion_path(leaves(3), 0)[:1], root)
    with pytest.raises(ValueError):
        inclusion_nodes(3, 3)
    with pytest.raises(ValueError):
        consistency_nodes(4, 3)


# --- generated ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 70), st.data())
def test_every_inclusion_proof_verifies_and_any_altered_byte_fails(
    n: int, data: st.DataObject
) -> None:
    tree = leaves(n)
    root = mth(tree)
    for index in range(n):
        path = inclusion_path(tree, index)
        assert verify_inclusion(index, n, tree[index], path, root)
    index = data.draw(st.integers(0, n - 1))
    path = inclusion_path(tree, index)
    mask = data.draw(st.integers(1, 255))
    at = data.draw(st.integers(0, 31))
    assert not verify_inclusion(index, n, flip(tree[index], at, mask), path, root)
    assert not verify_inclusion(index, n, tree[index], path, flip(root, at, mask))
    if path:
        which = data.draw(st.integers(0, len(path) - 1))
        altered = [*path[:which], flip(path[which], at, mask), *path[which + 1 :]]
        assert not verify_inclusion(index, n, tree[index], altered, root)
        assert not verify_inclusion(index, n, tree[index], path[:-1], root)
    assert not verify_inclusion(index, n, tree[index], [*path, root], root)
    if n > 1:  # the same leaf claimed at another index
        other = (index + data.draw(st.integers(1, n - 1))) % n
        assert not verify_inclusion(other, n, tree[index], path, root)


def test_consistency_between_every_pair_of_sizes_up_to_24() -> None:
    tree = leaves(24, b"c")
    roots = [mth(tree[:n]) for n in range(25)]
    for n in range(25):
        for m in range(n + 1):
            proof = consistency_path(tree[:n], m)
            assert verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if 0 < m < n:
                for which in range(len(proof)):
                    altered = [*proof[:which], flip(proof[which], which % 32), *proof[which + 1 :]]
                    assert not verify_consistency(m, n, roots[m], roots[n], altered), (m, n)
                assert not verify_consistency(m, n, flip(roots[m], 0), roots[n], proof)
                assert not verify_consistency(m, n, roots[m], flip(roots[n], 31), proof)
                assert not verify_consistency(m, n, roots[m], roots[n], proof[:-1])
                assert not verify_consistency(m, n, roots[m], roots[n], [*proof, roots[0]])
                if m + 1 < n:  # a proof for one size is not one for another
                    assert not verify_consistency(m + 1, n, roots[m + 1], roots[n], proof)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 300), st.data())
def test_a_tree_that_differs_in_one_leaf_is_not_consistent(n: int, data: st.DataObject) -> None:
    """A rewritten prefix: the new tree does not extend the old one, whatever the proof."""
    tree = leaves(n, b"x")
    m = data.draw(st.integers(1, n - 1))
    changed = data.draw(st.integers(0, m - 1))
    forked = [*tree[:changed], leaf_hash(b"forged"), *tree[changed + 1 :]]
    for proof in (consistency_path(tree, m), consistency_path(forked, m)):
        assert not verify_consistency(m, n, mth(tree[:m]), mth(forked), proof)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.data())
def test_the_streaming_frontier_gives_the_nodes_the_definitions_give(
    n: int, data: st.DataObject
) -> None:
    tree = leaves(n, b"s")
    indices = data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=5)) if n else []
    m = data.draw(st.integers(0, n))
    wanted = {r for i in indices for r in inclusion_nodes(i, n)} | set(consistency_nodes(m, n))
    frontier = Frontier(wanted)
    for leaf in tree:
        frontier.push(leaf)
    assert frontier.size == n and frontier.root() == mth(tree)
    found = frontier.hashes()
    assert set(found) == wanted
    for i in indices:
        assert [found[r] for r in inclusion_nodes(i, n)] == inclusion_path(tree, i)
    assert [found[r] for r in consistency_nodes(m, n)] == consistency_path(tree, m)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 150), st.integers(0, 150))
def test_a_frontier_resumed_from_its_hashes_folds_on_identically(m: int, more: int) -> None:
    tree = leaves(m + more, b"r")
    first = Frontier()
    for leaf in tree[:m]:
        first.push(leaf)
    resumed = Frontier.resume(m, first.subtree_hashes())
    assert resumed.root() == first.root() == mth(tree[:m])
    for leaf in tree[m:]:
        resumed.push(leaf)
    assert resumed.size == m + more and resumed.root() == mth(tree)
    with pytest.raises(ValueError):
        Frontier.resume(
            m + 1 if bin(m + 1).count("1") != bin(m).count("1") else m + 2, first.subtree_hashes()
        )


def test_the_roots_of_the_certificate_transparency_reference_leaves() -> None:
    """Interoperability: the eight leaves of the CT reference test data, and the root each
    prefix of them has there."""
    data = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    expected = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
    frontier = Frontier()
    for hex_data, root in zip(data, expected, strict=True):
        frontier.push_data(bytes.fromhex(hex_data))
        assert frontier.root().hex() == root
