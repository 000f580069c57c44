"""The audit log: one way in (:meth:`AuditLog.record`), and :func:`verify` to prove it unchanged.

An entry is the canonical JSON of its sequence number, time, actor, action, target and details.
Its hash is a leaf of an RFC 6962 Merkle tree, and every append signs a checkpoint (tree size,
root, time) with the Ed25519 key kept outside the database. Changing, removing or reordering any
entry changes the roots that the checkpoints signed, and nobody without the key can sign new ones.
What the log alone cannot show is a rewrite that drops the newest entries together with their
checkpoints; a checkpoint kept elsewhere (``audit checkpoint``, then ``audit verify --witness``)
closes that gap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, insert, select, update

from flagstone.audit.events import AuditEvent
from flagstone.audit.merkle import Frontier, leaf_hash
from flagstone.audit.signing import Signer, key_id, signature_ok
from flagstone.oversight.schema import audit_checkpoints, audit_entries, audit_head

STATEMENT = "flagstone-audit-checkpoint/v1"


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_bytes(seq: int, ts: str, actor: str, action: str, target: str, details: str) -> bytes:
    """The bytes hashed for an entry: every stored column but the hash itself."""
    obj = {"seq": seq, "ts": ts, "actor": actor, "action": action, "target": target, "details": details}
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def checkpoint_bytes(size: int, root_hex: str, ts: str) -> bytes:
    return f"{STATEMENT}\n{size}\n{root_hex}\n{ts}\n".encode("ascii")


def _details_text(event: AuditEvent) -> str:
    return json.dumps(event.details(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: str
    ts: str
    key_id: str
    signature: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        obj = json.loads(text)
        return cls(int(obj["size"]), str(obj["root"]), str(obj["ts"]), str(obj["key_id"]), str(obj["signature"]))


class AuditLog:
    """Appends typed events to the log in the case database, each with a signed checkpoint."""

    def __init__(self, engine: Engine, signer: Signer, clock: Callable[[], str] = now_text) -> None:
        self.engine = engine
        self.signer = signer
        self.clock = clock

    def record(self, actor: str, event: AuditEvent, con: Connection | None = None) -> int:
        """Append ``event`` done by ``actor``; inside ``con``'s transaction when given, so the
        action and its entry commit together. Returns the entry's sequence number."""
        if con is None:
            with self.engine.begin() as own:
                return self._append(own, actor, event)
        return self._append(con, actor, event)

    def _append(self, con: Connection, actor: str, event: AuditEvent) -> int:
        # FOR UPDATE serialises appends on PostgreSQL; SQLite's BEGIN IMMEDIATE already has.
        head = con.execute(
            select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1).with_for_update()
        ).one()
        frontier = Frontier([(n, bytes.fromhex(h)) for n, h in json.loads(head.frontier)])
        seq, ts, details = head.size + 1, self.clock(), _details_text(event)
        target = event.target
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
        return seq


def latest_checkpoint(engine: Engine) -> Checkpoint | None:
    with engine.connect() as con:
        row = con.execute(select(audit_checkpoints).order_by(audit_checkpoints.c.size.desc()).limit(1)).first()
    return Checkpoint(row.size, row.root, row.ts, row.key_id, row.signature) if row else None


@dataclass
class Verification:
    """What :func:`verify` found: ``ok`` only when ``problems`` is empty."""

    entries: int = 0
    checkpoints: int = 0
    problems: list[str] = field(default_factory=list)
    first_bad: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def _entries(engine: Engine) -> Iterator[Any]:
    with engine.connect() as con:
        result = con.execution_options(stream_results=True, yield_per=2000).execute(
            select(audit_entries).order_by(audit_entries.c.seq)
        )
        yield from result


def verify(engine: Engine, public: Ed25519PublicKey, witness: Checkpoint | None = None) -> Verification:
    """Check every entry against its hash and the tree, and every checkpoint against its signature.

    Stops at the first entry that breaks the chain of evidence and describes it in ``first_bad``.
    """
    out = Verification()
    expected_key = key_id(public)
    with engine.connect() as con:
        cps = {r.size: r for r in con.execute(select(audit_checkpoints))}
        head = con.execute(select(audit_head.c.size, audit_head.c.frontier).where(audit_head.c.id == 1)).first()
    out.checkpoints = len(cps)
    for size, cp in sorted(cps.items()):
        if cp.key_id != expected_key or not signature_ok(
            public, bytes.fromhex(cp.signature), checkpoint_bytes(size, cp.root, cp.ts)
        ):
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
        if witness is not None and seq == witness.size:
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
    if witness is not None and not out.problems:
        _check_witness(out, public, witness, roots, frontier.size)
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


def _check_witness(out: Verification, public: Ed25519PublicKey, w: Checkpoint, roots: dict[int, str], n: int) -> None:
    if w.key_id != key_id(public) or not signature_ok(
        public, bytes.fromhex(w.signature), checkpoint_bytes(w.size, w.root, w.ts)
    ):
        out.problems.append(f"witness checkpoint (size {w.size}): signature does not verify")
    elif w.size > n:
        out.problems.append(f"log truncated: the witness checkpoint covers {w.size} entries, only {n} are present")
    elif roots.get(w.size) != w.root:
        out.problems.append(f"the first {w.size} entries differ from those the witness checkpoint signed")


def _describe(row: Any, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "stored_seq": row.seq,
        "ts": row.ts,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
    }
