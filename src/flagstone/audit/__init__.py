"""The tamper-evident audit log (issue 6, in progress): so far the RFC 6962 Merkle tree and its proofs."""

from flagstone.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

__all__ = ["consistency_proof", "inclusion_proof", "leaf_hash", "root", "verify_consistency", "verify_inclusion"]
