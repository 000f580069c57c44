"""The audit log's Merkle tree (RFC 6962/9162): proofs verify for every size and position, and any
change to a proof, a root, a position or a size is caught."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from flagstone.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

entries = st.lists(st.binary(max_size=8), min_size=1, max_size=40)


def stack_root(leaves: list[bytes]) -> bytes:
    """An independent construction: merge equal-height subtrees as leaves arrive (left to right)."""
    stack: list[tuple[int, bytes]] = []
    for leaf in leaves:
        height, h = 0, leaf
        while stack and stack[-1][0] == height:
            _, left = stack.pop()
            h = node_hash(left, h)
            height += 1
        stack.append((height, h))
    h = stack.pop()[1]
    while stack:
        h = node_hash(stack.pop()[1], h)
    return h


def _flip(proof: list[bytes], i: int) -> list[bytes]:
    out = list(proof)
    out[i] = bytes([out[i][0] ^ 1]) + out[i][1:]
    return out


def test_known_roots() -> None:
    assert root([]) == hashlib.sha256(b"").digest()
    a, b, c = (leaf_hash(x) for x in (b"a", b"b", b"c"))
    assert a == hashlib.sha256(b"\x00a").digest()
    assert root([a, b, c]) == node_hash(node_hash(a, b), c)


@settings(max_examples=150, deadline=None)
@given(data=entries)
def test_root_equals_an_independent_construction(data: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in data]
    assert root(leaves) == stack_root(leaves)


@settings(max_examples=120, deadline=None)
@given(data=entries, pick=st.integers(min_value=0))
def test_inclusion_proofs_verify_and_mutations_fail(data: list[bytes], pick: int) -> None:
    leaves = [leaf_hash(d) for d in data]
    n, top = len(leaves), root(leaves)
    for i in range(n):
        proof = inclusion_proof(leaves, i)
        assert verify_inclusion(leaves[i], i, n, proof, top)
    i = pick % n
    proof = inclusion_proof(leaves, i)
    assert not verify_inclusion(leaf_hash(data[i] + b"x"), i, n, proof, top)  # a changed entry
    assert not verify_inclusion(leaves[i], i, n, proof, node_hash(top, top))  # another root
    for j in range(len(proof)):
        assert not verify_inclusion(leaves[i], i, n, _flip(proof, j), top)
    if proof:
        assert not verify_inclusion(leaves[i], i, n, proof[:-1], top)  # truncated
        assert not verify_inclusion(leaves[i], i, n, [*proof, proof[0]], top)  # padded
    if n > 1:
        other = (i + 1) % n
        assert leaves[other] == leaves[i] or not verify_inclusion(leaves[i], other, n, proof, top)
    # (A size alone is not bound by the path: checkpoints sign the size together with the root.)
    assert not verify_inclusion(leaves[i], i, i, proof, top)  # the position outside the tree


@settings(max_examples=120, deadline=None)
@given(data=entries)
def test_consistency_proofs_verify_and_mutations_fail(data: list[bytes]) -> None:
    leaves = [leaf_hash(d) for d in data]
    n, top = len(leaves), root(leaves)
    for m in range(1, n + 1):
        old = root(leaves[:m])
        proof = consistency_proof(leaves, m)
        assert verify_consistency(m, n, old, top, proof)
        if m == n:
            continue
        assert not verify_consistency(m, n, node_hash(old, old), top, proof)
        assert not verify_consistency(m, n, old, node_hash(top, top), proof)
        assert not verify_consistency(m, n, old, top, [])
        for j in range(len(proof)):
            assert not verify_consistency(m, n, old, top, _flip(proof, j))
        # A rewritten history: the old tree's last entry changed, the new tree built on the change.
        changed = [*leaves[: m - 1], leaf_hash(data[m - 1] + b"!"), *leaves[m:]]
        assert not verify_consistency(m, n, old, root(changed), consistency_proof(changed, m))
