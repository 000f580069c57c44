"""Quarantined records for people: anyone with the store may list, count and export them (reasons,
fields, pseudonymised values); only a supervisor may read a record's raw text, with a written
reason, and the reading is audited like a reveal of an identity (``docs/oversight.md``).

Nothing here holds more than a page of records at once: a million quarantined records are listed,
counted and exported by DuckDB's own grouping and by pages, never loaded whole.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import IO, Any

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


_COLUMNS = "batch_id, record, source, file, field, value, reason, parsed, raw_sealed IS NOT NULL"
_SELECT = f"SELECT {_COLUMNS} FROM quarantine"
# What counts may be grouped by, and the column each is.
GROUPS = {"batch": "batch_id", "file": "file", "field": "field", "reason": "reason"}
PAGE = 5_000  # records per step when exporting


@dataclass(frozen=True)
class QuarantineFilter:
    """Which quarantined records: all of them, or those of one batch, file, field or reason."""

    batch_id: int | None = None
    file: str | None = None  # as ingest was given it, or its file name alone
    field: str | None = None  # the canonical field, `record`, or the source column
    reason: str | None = None  # a part of the reason, in any case

    def where(self) -> tuple[str, list[Any]]:
        parts: list[str] = []
        params: list[Any] = []
        if self.batch_id is not None:
            parts.append("batch_id = ?")
            params.append(self.batch_id)
        if self.file is not None:
            parts.append("(file = ? OR ends_with(file, '/' || ?))")
            params += [self.file, self.file]
        if self.field is not None:
            parts.append("field = ?")
            params.append(self.field)
        if self.reason is not None:
            parts.append("contains(lower(reason), lower(?))")
            params.append(self.reason)
        return ("WHERE " + " AND ".join(parts) if parts else "WHERE true"), params


def list_quarantine(
    store: Store, where: QuarantineFilter = QuarantineFilter(), limit: int = 100
) -> list[QuarantinedRecord]:
    """The newest quarantined records (that ``where`` selects), without their raw text."""
    sql, params = where.where()
    rows = store.con.execute(f"{_SELECT} {sql} ORDER BY batch_id DESC, record LIMIT ?", [*params, limit]).fetchall()
    return [_record(r) for r in rows]


def count_quarantine(store: Store, where: QuarantineFilter = QuarantineFilter()) -> int:
    sql, params = where.where()
    return int(store.scalar(f"SELECT count(*) FROM quarantine {sql}", params))


@dataclass(frozen=True)
class GroupCount:
    """Quarantined records sharing the grouped columns (the others are None), and the first of them."""

    count: int
    batch_id: int | None
    file: str | None
    field: str | None
    reason: str | None
    first_batch: int
    first_record: int
    example: str | None  # the first record's value, as list shows it (a pseudonym for an identifier)


def count_groups(
    store: Store, by: Sequence[str], where: QuarantineFilter = QuarantineFilter(), limit: int = 50
) -> tuple[list[GroupCount], int]:
    """The ``limit`` largest groups of records by ``by`` (names in ``GROUPS``), largest first, and
    how many groups there are in all. DuckDB groups; only the groups shown reach Python."""
    unknown = [b for b in by if b not in GROUPS]
    if unknown or not by:
        raise InputError(f"cannot group by {unknown or 'nothing'}; choose from: {', '.join(GROUPS)}", field="--by")
    keys = [GROUPS[b] for b in dict.fromkeys(by)]
    shown = ", ".join(f"{c}" if c in keys else f"NULL AS {c}" for c in GROUPS.values())
    sql, params = where.where()
    first = "arg_min(struct_pack(b := batch_id, r := record, v := value), struct_pack(b := batch_id, r := record))"
    order = ", ".join(f"{c} NULLS FIRST" for c in keys)
    rows = store.con.execute(
        f"SELECT n, {shown}, first.b, first.r, first.v, count(*) OVER () FROM ("
        f"SELECT count(*) AS n, {', '.join(keys)}, {first} AS first FROM quarantine {sql} GROUP BY ALL) "
        f"ORDER BY n DESC, {order} LIMIT ?",
        [*params, limit],
    ).fetchall()
    groups = int(rows[0][-1]) if rows else 0
    return [GroupCount(*r[:-1]) for r in rows], groups


def iter_quarantine(store: Store, where: QuarantineFilter = QuarantineFilter()) -> Iterator[QuarantinedRecord]:
    """Every record ``where`` selects, in the order ingest stored them (batch by batch), streamed
    ``PAGE`` at a time. Unsorted on purpose: sorting a million records would hold them all."""
    sql, params = where.where()
    for page in store.con.sql(f"{_SELECT} {sql}", params=params).to_arrow_reader(PAGE):
        for row in zip(*(column.to_pylist() for column in page.columns), strict=True):
            yield _record(row)


def export_quarantine(records: Iterator[QuarantinedRecord], fmt: str, out: IO[str]) -> int:
    """Write ``records`` as `show` shows them (identifiers pseudonymised, no raw text), as JSON
    lines or CSV (``parsed`` as JSON text, a missing value as an empty cell); returns how many."""
    names = [f.name for f in fields(QuarantinedRecord)]
    n = 0
    if fmt == "jsonl":
        for rec in records:
            out.write(json.dumps({k: getattr(rec, k) for k in names}, ensure_ascii=False) + "\n")
            n += 1
        return n
    if fmt != "csv":
        raise InputError(f"unknown format {fmt!r} (csv or jsonl)", field="--format", value=fmt)
    writer = csv.writer(out)
    writer.writerow(names)
    for rec in records:
        row = [getattr(rec, k) for k in names]
        row[names.index("parsed")] = None if rec.parsed is None else json.dumps(rec.parsed, ensure_ascii=False)
        writer.writerow(row)
        n += 1
    return n


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
