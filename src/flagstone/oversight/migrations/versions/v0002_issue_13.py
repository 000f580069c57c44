"""the case database takes any data (issue 13)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Text from the event store (unbounded there) becomes unbounded here; evidence is keyed by a hash
of (source, event id); lock-outs move from the users table to login_limits, which treats every
name typed alike; proposal versions and role grants get their tables; amounts are exact text on
SQLite. No value is lost: columns are only widened, evidence is copied, current locks are moved.

cases.report_xml (goAML reports kept in clear) goes here when it holds none; otherwise it waits
until flagstone.oversight.legacy has sealed them with the store's key, which only it has.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from flagstone.oversight.migrations import note

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 5000
_PLACES = Decimal("0.0001")
# PostgreSQL keeps text with NUL written as ESC "0" and ESC as ESC ESC (schema.Str), ESC = U+FFFF.
_ESC = "\uffff"

# Columns made unbounded, with the length they had.
WIDENED = {
    "users": {"display_name": 200, "team": 64},
    "cases": {"alert_id": 64, "team": 64, "rule_id": 200, "severity": 16, "group_key": 200},
    "vault": {"pseudonym": 64},
    "reveals": {"pseudonym": 64},
    "audit_entries": {"actor": 200, "target": 400},
}
# Text columns made before schema.Str, whose ESC characters PostgreSQL must now double.
OLD_TEXT = {
    "users": ("username", "display_name", "role", "team", "password_hash"),
    "sessions": ("token_hash", "csrf_token"),
    "cases": (
        "alert_id", "team", "rule_id", "severity", "group_key", "reason", "values_json", "state", "proposal",
        "closing_reason",  # not report_xml: flagstone.oversight.legacy reads it as it is
    ),
    "vault": ("pseudonym",),
    "reveals": ("pseudonym", "reason"),
    "comments": ("body",),
    "audit_entries": ("ts", "actor", "action", "target", "details", "entry_hash"),
    "audit_checkpoints": ("root", "ts", "key_id", "signature"),
    "audit_head": ("frontier",),
}  # fmt: skip
EVIDENCE_TEXT = (
    "source", "event_id", "kind", "actor", "counterparty", "currency", "item", "category", "place", "channel",
)  # fmt: skip


def _amount() -> sa.types.TypeEngine[Any]:
    return sa.Numeric(18, 4).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    con = op.get_bind()
    postgresql = con.dialect.name == "postgresql"
    if postgresql:
        _escape_old_text(con)
    _new_tables(con)
    note(_move_locks(con))
    changed = []
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for column, length in columns.items():
                batch.alter_column(column, type_=sa.Text(), existing_type=sa.String(length))
                changed.append(f"{table}.{column} VARCHAR({length}) -> TEXT")
            if table == "users":
                batch.drop_column("failed_logins")
                batch.drop_column("locked_until")
            if table == "cases" and _clear_reports(con) == 0:
                batch.drop_column("report_xml")
    note(f"widened {len(changed)} columns: {'; '.join(changed)}")
    note(_key_evidence_by_hash(con, postgresql))
    clear = _clear_reports(con)
    if clear:
        note(f"cases.report_xml keeps {clear} goAML reports in clear until the store's key seals them")


def _escape_old_text(con: sa.Connection) -> None:
    """Old text holding U+FFFF would read back changed once Str unescapes it: double it."""
    for table, columns in OLD_TEXT.items():
        for column in columns:
            con.execute(
                sa.text(f"UPDATE {table} SET {column} = replace({column}, :e, :ee) WHERE strpos({column}, :e) > 0"),
                {"e": _ESC, "ee": _ESC + _ESC},
            )


def _new_tables(con: sa.Connection) -> None:
    have = set(sa.inspect(con).get_table_names())  # an older Flagstone's failed upgrade may have made them
    if "login_limits" not in have:
        op.create_table(
            "login_limits",
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("failures", sa.Integer, nullable=False),
            sa.Column("window_start", sa.DateTime, nullable=False),
            sa.Column("locked_until", sa.DateTime, nullable=True),
            sa.Column("refused", sa.Integer, nullable=False),
            sa.Column("expires_at", sa.DateTime, nullable=False),
        )
    if "proposals" not in have:
        op.create_table(
            "proposals",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.Column("text", sa.Text, nullable=False),
            sa.Column("proposer_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
            sa.Column("proposed_at", sa.DateTime, nullable=False),
            sa.Column("audit_seq", sa.Integer, nullable=False),
            sa.Column("evidence", sa.Text, nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("outcome", sa.String(16), nullable=True),
            sa.Column("ended_by", sa.Integer, sa.ForeignKey("users.id"), nullable=True),
            sa.Column("ended_at", sa.DateTime, nullable=True),
            sa.Column("end_reason", sa.Text, nullable=True),
            sa.Column("held_by", sa.Text, nullable=True),
            sa.Column("report_sha256", sa.String(64), nullable=True),
            sa.Column("report_nonce", sa.LargeBinary, nullable=True),
            sa.Column("report_ciphertext", sa.LargeBinary, nullable=True),
            sa.UniqueConstraint("case_id", "version"),
        )
    if "role_grants" not in have:
        op.create_table(
            "role_grants",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("username", sa.String(64), nullable=False),
            sa.Column("role", sa.String(16), nullable=False),
            sa.Column("team", sa.Text, nullable=False),
            sa.Column("change", sa.Text, nullable=False),
            sa.Column("display_name", sa.Text, nullable=True),
            sa.Column("password_hash", sa.Text, nullable=True),
            sa.Column("requested_by", sa.Text, nullable=False),
            sa.Column("requested_at", sa.DateTime, nullable=False),
            sa.Column("state", sa.String(16), nullable=False),
            sa.Column("decided_by", sa.Text, nullable=True),
            sa.Column("decided_at", sa.DateTime, nullable=True),
            sa.Column("mode", sa.String(32), nullable=True),
        )


def _move_locks(con: sa.Connection) -> str:
    """Lock-outs still running move to login_limits, keyed as flagstone.oversight.schema.limit_key."""
    now = datetime.now(UTC).replace(tzinfo=None)
    users = sa.table("users", sa.column("username", sa.Text()), sa.column("locked_until", sa.DateTime()))
    limits = sa.table(
        "login_limits",
        *(sa.column(c) for c in ("key", "failures", "window_start", "locked_until", "refused", "expires_at")),
    )
    moved = 0
    for name, until in con.execute(sa.select(users.c.username, users.c.locked_until)).all():
        if until is not None and until > now:
            key = hashlib.sha256(f"name\x1f{name}".encode("utf-8", "surrogatepass")).hexdigest()
            values = {"key": key, "failures": 0, "window_start": now, "locked_until": until, "refused": 0}
            con.execute(sa.insert(limits).values(**values, expires_at=until))
            moved += 1
    return f"users.failed_logins and users.locked_until dropped; {moved} current locks moved to login_limits"


def _clear_reports(con: sa.Connection) -> int:
    if "report_xml" not in {c["name"] for c in sa.inspect(con).get_columns("cases")}:
        return 0
    return int(con.execute(sa.text("SELECT count(*) FROM cases WHERE report_xml IS NOT NULL")).scalar_one())


def _key_evidence_by_hash(con: sa.Connection, postgresql: bool) -> str:
    """Evidence was keyed by (case, source, event id), which PostgreSQL cannot index once a
    source's ids pass about 2.7 kB; the table is copied into one keyed by their hash."""
    old_name = "case_events_before_upgrade"
    pk = sa.inspect(con).get_pk_constraint("case_events").get("name")
    op.rename_table("case_events", old_name)
    if postgresql and pk:  # its name would clash with the new table's key
        op.drop_constraint(pk, old_name, type_="primary")
    op.create_table(
        "case_events",
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), primary_key=True),
        sa.Column("event_key", sa.String(64), primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("ts", sa.DateTime, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=True),
        sa.Column("counterparty", sa.Text, nullable=True),
        sa.Column("amount", _amount(), nullable=True),
        sa.Column("currency", sa.Text, nullable=True),
        sa.Column("item", sa.Text, nullable=True),
        sa.Column("category", sa.Text, nullable=True),
        sa.Column("quantity", _amount(), nullable=True),
        sa.Column("place", sa.Text, nullable=True),
        sa.Column("channel", sa.Text, nullable=True),
    )
    old = sa.table(
        old_name,
        sa.column("case_id", sa.Integer()),
        sa.column("ts", sa.DateTime()),
        sa.column("amount", sa.Numeric(18, 4)),
        sa.column("quantity", sa.Numeric(18, 4)),
        *(sa.column(c, sa.Text()) for c in EVIDENCE_TEXT),
    )
    new = sa.table("case_events", sa.column("event_key"), *(sa.column(c.name) for c in old.columns))
    rows = con.execute(sa.select(old).execution_options(yield_per=_BATCH))
    copied = 0
    for part in rows.partitions():
        batch = [_evidence(r._mapping, postgresql) for r in part]
        con.execute(sa.insert(new), batch)
        copied += len(batch)
    rows.close()
    op.drop_table(old_name)
    return f"case_events keyed by event_key, the hash of (source, event_id): {copied} rows"


def _evidence(row: Any, postgresql: bool) -> dict[str, Any]:
    out = dict(row)
    text = json.dumps([out["source"], out["event_id"]], ensure_ascii=False)
    out["event_key"] = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    for c in EVIDENCE_TEXT:
        if postgresql and out[c] is not None and _ESC in out[c]:  # as schema.Str writes it
            out[c] = out[c].replace(_ESC, _ESC + _ESC)
    for c in ("amount", "quantity"):  # SQLite's REAL becomes exact text, as schema.Amount writes it
        if not postgresql and out[c] is not None:
            out[c] = str(Decimal(out[c]).quantize(_PLACES))
    return out


def downgrade() -> None:
    raise NotImplementedError("the case database is never downgraded: restore a copy made before the upgrade")
