"""Quarantined records for people: anyone with the store may list them (reasons, fields,
pseudonymised values); only a supervisor may read a record's raw text, with a written reason, and
the reading is audited like a reveal of an identity (``docs/oversight.md``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag

from flagstone.audit.events import AuthorisationFailed, QuarantineRevealed
from flagstone.errors import InputError
from flagstone.ingest import Pseudonymiser
from flagstone.ingest._quarantine import open_raw
from flagstone.oversight.context import Oversight
from flagstone.oversight.roles import allowed
from flagstone.oversight.users import User
from flagstone.oversight.workflow import NotPermitted, WorkflowError
from flagstone.store import Store

MAX_REASON = 2000  # characters; a reason is a sentence or two, and it goes into the audit log


@dataclass(frozen=True)
class QuarantinedRecord:
    batch_id: int
    record: int
    source: str
    file: str
    field: str | None
    value: str | None  # pseudonymised when the field is an identifier
    reason: str
    parsed: dict[str, Any] | None  # the record as converted, identifiers pseudonymised
    sealed: bool  # whether its raw text is kept (encrypted)


_SELECT = "SELECT batch_id, record, source, file, field, value, reason, parsed, raw_sealed IS NOT NULL FROM quarantine"


def list_quarantine(store: Store, batch_id: int | None = None, limit: int = 100) -> list[QuarantinedRecord]:
    """The newest quarantined records (of one batch), without their raw text."""
    where, params = ("WHERE batch_id = ?", [batch_id]) if batch_id is not None else ("", [])
    rows = store.con.execute(f"{_SELECT} {where} ORDER BY batch_id DESC, record LIMIT ?", [*params, limit]).fetchall()
    return [_record(r) for r in rows]


def find(store: Store, batch_id: int, record: int) -> QuarantinedRecord:
    rows = store.con.execute(f"{_SELECT} WHERE batch_id = ? AND record = ?", [batch_id, record]).fetchall()
    if not rows:
        raise InputError(f"no quarantined record {record} in batch {batch_id} (see `flagstone quarantine list`)")
    return _record(rows[0])


def reveal_raw(ov: Oversight, user: User, store: Store, batch_id: int, record: int, reason: str) -> str:
    """The decrypted raw text of one quarantined record, for a supervisor with a reason; audited
    (and a refusal is audited too)."""
    target = f"quarantine/{batch_id}/{record}"
    if not allowed(user.role, "reveal"):
        why = f"a {user.role} may not read quarantined records; only a supervisor may"
        ov.audit.record(user.username, AuthorisationFailed(target, "reveal", why))
        raise NotPermitted(why)
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise WorkflowError(f"give the reason for reading this record in 1 to {MAX_REASON} characters")
    found = find(store, batch_id, record)
    row = store.con.execute(
        "SELECT raw_nonce, raw_sealed FROM quarantine WHERE batch_id = ? AND record = ?", [batch_id, record]
    ).fetchone()
    if row is None or row[1] is None:
        raise WorkflowError(f"record {record} of batch {batch_id} has no raw text kept")
    try:
        raw = open_raw(Pseudonymiser.for_store(ov.store_path, create=False), batch_id, record, row[0], row[1])
    except InputError as exc:
        raise WorkflowError(f"quarantined records cannot be decrypted here: {exc}") from exc
    except InvalidTag as exc:
        raise WorkflowError("the record cannot be decrypted: the key is not the one it was stored with") from exc
    ov.audit.record(user.username, QuarantineRevealed(f"{batch_id}/{record}", found.source, reason))
    return raw


def _record(row: tuple[Any, ...]) -> QuarantinedRecord:
    batch_id, record, source, file, field, value, reason, parsed, sealed = row
    return QuarantinedRecord(
        batch_id, record, source, file, field, value, reason, json.loads(parsed) if parsed else None, bool(sealed)
    )
