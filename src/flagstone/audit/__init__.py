"""The tamper-evident audit log: typed events (``events``), the RFC 6962 Merkle tree (``merkle``),
the Ed25519 checkpoint key (``signing``) and when one is made (``keys``), the head file beside it
(``head``), entries of bounded size (``bounded``), and the log itself with its verifier (``log``)."""

from flagstone.audit.keys import create_audit_key, open_audit_log
from flagstone.audit.log import AuditLog, Checkpoint, Verification, latest_checkpoint, verify
from flagstone.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from flagstone.audit.signing import Signer, audit_key_path, head_path, load_public_key, public_key_path

__all__ = [
    "AuditLog",
    "Checkpoint",
    "Signer",
    "Verification",
    "audit_key_path",
    "consistency_proof",
    "create_audit_key",
    "head_path",
    "inclusion_proof",
    "latest_checkpoint",
    "leaf_hash",
    "load_public_key",
    "open_audit_log",
    "public_key_path",
    "root",
    "verify",
    "verify_consistency",
    "verify_inclusion",
]
