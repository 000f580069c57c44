"""The case database's tables as Flagstone made them before issue 13 (a copy of that
version's ``flagstone.oversight.schema``), to test the upgrade of an older database."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("team", String(64), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime, nullable=True),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

# One case per alert: the alert's facts are copied in when it is synced from the event store, so
# the review works while the store is busy (DuckDB allows one process) and after retention.
cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(64), nullable=False, unique=True),
    Column("team", String(64), nullable=False),
    Column("rule_id", String(200), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("severity_rank", Integer, nullable=False),
    Column("group_key", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("values_json", Text, nullable=False),
    Column("first_ts", DateTime, nullable=False),
    Column("last_ts", DateTime, nullable=False),
    Column("detected_at", DateTime, nullable=False),
    Column("deadline", DateTime, nullable=False),
    Column("state", String(16), nullable=False),
    Column("assignee_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("proposer_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("approver_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("filer_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("proposal", Text, nullable=True),
    Column("closing_reason", Text, nullable=True),
    Column("report_xml", Text, nullable=True),
    Column("filed_at", DateTime, nullable=True),
    Column("updated_at", DateTime, nullable=False),
)

case_events = Table(
    "case_events",
    metadata,
    Column("case_id", Integer, ForeignKey("cases.id"), primary_key=True),
    Column("source", String(200), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("ts", DateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("actor", String(200), nullable=True),
    Column("counterparty", String(200), nullable=True),
    Column("amount", Numeric(18, 4), nullable=True),
    Column("currency", String(8), nullable=True),
    Column("item", String(200), nullable=True),
    Column("category", String(200), nullable=True),
    Column("quantity", Numeric(18, 4), nullable=True),
    Column("place", String(200), nullable=True),
    Column("channel", String(64), nullable=True),
)

# Encrypted identities of the parties in cases, copied from the store; only a reveal decrypts one.
vault = Table(
    "vault",
    metadata,
    Column("pseudonym", String(64), primary_key=True),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
)

reveals = Table(
    "reveals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("pseudonym", String(64), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("revealed_at", DateTime, nullable=False),
    UniqueConstraint("case_id", "pseudonym"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(32), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(400), nullable=False),
    Column("details", Text, nullable=False),
    Column("entry_hash", String(64), nullable=False),
)

# Every append signs a checkpoint of the new size, so the newest checkpoint covers the whole log.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column("root", String(64), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("signature", String(128), nullable=False),
)

# The one row holding the tree's right edge (roots of its perfect subtrees), so an append costs
# O(log n) instead of rehashing the log. Locking this row serialises appends.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("frontier", Text, nullable=False),
)
