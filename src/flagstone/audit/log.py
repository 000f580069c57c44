"""The audit log: one way in (:meth:`AuditLog.record`), and :func:`verify` to prove it unchanged.

An entry is the canonical JSON of its sequence number, time, actor, action, target and details,
each bounded in size (``flagstone.audit.bounded``). Its hash is a leaf of an RFC 6962 Merkle tree,
and every append signs a checkpoint (tree size, root, time) with the Ed25519 key kept outside the
database. Changing, removing or reordering any entry changes the roots that the checkpoints
signed, and nobody without the key can sign new ones. A rewrite that drops the newest entries
together with their checkpoints is caught by the head file beside the key (``flagstone.audit.head``)
and by checkpoints kept elsewhere (``audit checkpoint``, then ``audit verify --witness``); a rewrite
by someone who holds the key, its head file and the database only by the latter.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, RootTransaction, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from flagstone.audit.bounded import bounded_entry
from flagstone.audit.checkpoint import STATEMENT, Checkpoint, checkpoint_bytes
from flagstone.audit.events import AuditEvent
from flagstone.audit.head import HeadUnreadable, advance, read_head, write_head
from flagstone.audit.merkle import Frontier, leaf_hash
from flagstone.audit.signing import Signer, head_path, key_id, signature_ok
from flagstone.oversight.schema import audit_checkpoints, audit_entries, audit_head

logger = logging.getLogger(__name__)

__all__ = ["STATEMENT", "AuditLog", "Checkpoint", "Verification", "checkpoint_bytes", "entry_bytes", "verify"]


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_bytes(seq: int, ts: str, actor: str, action: str, target: str, details: str) -> bytes:
    """The bytes hashed for an entry: every stored column but the hash itself."""
    obj = {"seq": seq, "ts": ts, "actor": actor, "action": action, "target": target, "details": details}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class AuditLog:
    """Appends typed events to the log in the case database, each with a signed checkpoint, and
    keeps the head file beside the signer's key (none for a key that came from no file)."""

    def __init__(self, engine: Engine, signer: Signer, clock: Callable[[], str] = now_text) -> None:
        self.engine = engine
        self.signer = signer
        self.clock = clock
        self.head_file = head_path(signer.path) if signer.path is not None else None
        # Callers' transactions this log appended in: their head row is no longer the committed one.
        self._dirty: weakref.WeakSet[RootTransaction] = weakref.WeakSet()

    def record(self, actor: str, event: AuditEvent, con: Connection | None = None) -> int:
        """Append ``event`` done by ``actor``; inside ``con``'s transaction when given, so the
        action and its entry commit together. Returns the entry's sequence number."""
        if con is None:
            with self.engine.begin() as own:
                seq, committed = self._append(own, actor, event, fresh=True, own=True)
            if committed is not None and self.head_file is not None:
                write_head(self.head_file, committed)  # committed now: the head may move on to it
            return seq
        tx = con.get_transaction()
        seq, _ = self._append(con, actor, event, fresh=tx not in self._dirty, own=False)
        if tx is not None:
            self._dirty.add(tx)
        return seq

    def sync_head(self) -> None:
        """Move the head file on to the newest committed checkpoint (after appends inside a
        caller's transaction, which the head file otherwise learns of at the next append)."""
        if self.head_file is None:
            return
        try:
            with self.engine.connect() as con:
                size = con.execute(select(audit_head.c.size).where(audit_head.c.id == 1)).scalar_one()
                advance(con, self.head_file, size)
        except SQLAlchemyError as exc:  # the next append catches up; closing must not fail on it
            logger.warning("audit head file not moved on: %s", exc)

    def verify(self, witness: Checkpoint | None = None) -> Verification:
        """:func:`verify` with this log's public key and head file."""
        return verify(self.engine, self.signer.public, witness=witness, head_file=self.head_file)

    def _append(
        self, con: Connection, actor: str, event: AuditEvent, *, fresh: bool, own: bool
    ) -> tuple[int, Checkpoint | None]:
        """Append the entry; also return its checkpoint when the head file may move on to it once
        this transaction commits."""
        # FOR UPDATE serialises appends on PostgreSQL; SQLite's BEGIN IMMEDIATE already has.
        head = con.execute(
            select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1).with_for_update()
        ).one()
        # In a fresh transaction the head row is what committed: check the head file against it
        # (and, for a caller's transaction, whose commit we do not see, move the file on to it).
        extends = fresh and self.head_file is not None and advance(con, self.head_file, head.size, write=not own)
        frontier = Frontier([(n, bytes.fromhex(h)) for n, h in json.loads(head.frontier)])
        seq, ts = head.size + 1, self.clock()
        actor, target, details = bounded_entry(actor, event.target, event.details())
        digest = leaf_hash(entry_bytes(seq, ts, actor, event.action, target, details))
        frontier.append(digest)
        root_hex = frontier.root().hex()
        signature = self.signer.sign(checkpoint_bytes(seq, root_hex, ts)).hex()
        con.execute(
            insert(audit_entries).values(
                seq=seq,
                ts=ts,
                actor=actor,
                action=event.action,
                target=target,
                details=details,
                entry_hash=digest.hex(),
            )
        )
        con.execute(
            insert(audit_checkpoints).values(
                size=seq, root=root_hex, ts=ts, key_id=self.signer.key_id, signature=signature
            )
        )
        con.execute(
            update(audit_head)
            .where(audit_head.c.id == 1)
            .values(size=seq, frontier=json.dumps([[n, h.hex()] for n, h in frontier.nodes]))
        )
        return seq, Checkpoint(seq, root_hex, ts, self.signer.key_id, signature) if extends else None


def latest_checkpoint(engine: Engine) -> Checkpoint | None:
    with engine.connect() as con:
        row = con.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc()).limit(1)).first()
    return Checkpoint(row.size, row.root, row.ts, row.key_id, row.signature) if row else None


@dataclass
class Verification:
    """What :func:`verify` found: ``ok`` only when ``problems`` is empty; ``notes`` say what could
    not be compared (e.g. no head file), without failing."""

    entries: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _entries(engine: Engine) -> Iterator[Any]:
    with engine.connect() as con:
        result = con.execution_options(stream_results=True, yield_per=2000).execute(
            select(audit_entries).order_by(audit_entries.c.seq)
        )
        yield from result


def verify(
    engine: Engine, public: Ed25519PublicKey, witness: Checkpoint | None = None, head_file: Path | None = None
) -> Verification:
    """Check every entry against its hash and the tree, and every checkpoint against its signature.

    Stops at the first entry that breaks the chain of evidence and describes it in ``first_bad``.
    The ``witness`` (a checkpoint kept elsewhere) and the checkpoint in ``head_file`` (beside the
    key) must each be signed by the key and name a prefix of the log: a log shorter than either, or
    different up to its size, fails.
    """
    out = Verification()
    outside = [(w, "the witness checkpoint") for w in [witness] if w is not None]
    if head_file is not None:
        try:
            head_cp = read_head(head_file)
        except HeadUnreadable as exc:
            out.problems.append(f"the audit head file {head_file} cannot be read ({exc})")
            head_cp = None
        if head_cp is not None:
            outside.append((head_cp, f"the last checkpoint in {head_file}"))
        elif not out.problems:
            out.notes.append(
                f"no head file ({head_file}): a log cut short with its checkpoints shows only against a witness"
            )
    expected_key = key_id(public)
    with engine.connect() as con:
        cps = {r.size: r for r in con.execute(select(audit_checkpoints))}
        head = con.execute(select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1)).first()
    out.checkpoints = len(cps)
    for size, cp in sorted(cps.items()):
        if cp.key_id != expected_key or not _signed(public, cp.signature, checkpoint_bytes(size, cp.root, cp.ts)):
            out.problems.append(f"checkpoint at size {size}: signature does not verify with key {expected_key}")
            break
    roots: dict[int, str] = {}
    frontier = Frontier()
    last_good = 0
    for row in _entries(engine):
        seq = frontier.size + 1
        if row.seq != seq:
            out.problems.append(f"entry {seq} is missing or out of place (found sequence number {row.seq} there)")
            out.first_bad = _describe(row, seq)
            break
        digest = leaf_hash(entry_bytes(row.seq, row.ts, row.actor, row.action, row.target, row.details))
        if digest.hex() != row.entry_hash:
            out.problems.append(f"entry {seq} was changed: its content does not match its hash")
            out.first_bad = _describe(row, seq)
            break
        frontier.append(digest)
        if any(seq == w.size for w, _ in outside):
            roots[seq] = frontier.root().hex()
        checkpoint = cps.get(seq)
        if checkpoint is not None:
            if frontier.root().hex() != checkpoint.root:
                since = f"entry {seq}" if last_good == seq - 1 else f"one of entries {last_good + 1}..{seq}"
                out.problems.append(f"checkpoint at size {seq} does not match the log: {since} was changed or replaced")
                out.first_bad = _describe(row, seq) if last_good == seq - 1 else None
                break
            last_good = seq
    else:
        _check_end(out, frontier, cps, head, last_good)
    out.entries = frontier.size
    for w, name in outside:
        if not out.problems:
            _check_witness(out, public, w, name, roots, frontier.size)
    if frontier.size == 0 and not out.problems:
        # A key's first entry records its making (audit_key_created): a keyed log is never empty.
        out.problems.append("the log is empty, yet it has a signing key, whose first entry it would hold: it was wiped")
    return out


def _check_end(out: Verification, frontier: Frontier, cps: dict[int, Any], head: Any, last_good: int) -> None:
    n = frontier.size
    top = max(cps, default=0)
    if top > n:
        out.problems.append(f"log truncated: a checkpoint was signed for {top} entries, only {n} are present")
    elif last_good < n:
        out.problems.append(f"entries {last_good + 1}..{n} are not covered by any signed checkpoint")
        out.first_bad = {"seq": last_good + 1}
    elif head is None or head.size != n:
        out.problems.append(f"the log's head records {head.size if head else 'no'} entries, the log has {n}")


def _check_witness(
    out: Verification, public: Ed25519PublicKey, w: Checkpoint, name: str, roots: dict[int, str], n: int
) -> None:
    if w.key_id != key_id(public) or not _signed(public, w.signature, checkpoint_bytes(w.size, w.root, w.ts)):
        out.problems.append(f"{name.removeprefix('the ')} (size {w.size}): signature does not verify")
    elif w.size > n:
        out.problems.append(f"log truncated: {name} covers {w.size} entries, only {n} are present")
    elif roots.get(w.size) != w.root:
        out.problems.append(f"the first {w.size} entries differ from those {name} signed")


def _signed(public: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        return signature_ok(public, bytes.fromhex(signature_hex), message)
    except ValueError:  # not hex: a damaged or forged checkpoint
        return False


def _describe(row: Any, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "stored_seq": row.seq,
        "ts": row.ts,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
    }
