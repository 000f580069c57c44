"""Tables of the case database: users, sessions, cases with their evidence, and the audit log.

One SQLAlchemy ``MetaData`` for everything, in Core rather than ORM form: the code reads and writes
rows explicitly, which keeps the SQL that SQLite and PostgreSQL both run easy to see.
Timestamps are naive UTC. The audit log keeps its times as text, so that the bytes hashed into the
Merkle tree are the bytes stored, whatever a database does to timestamps.
"""

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

# Every version of a case's proposed report, kept for good (the case page lists them all). The
# evidence is frozen when a version is proposed: what the approver reads is what the report holds.
# The approved version keeps its goAML report encrypted with the store's key, never in clear, and
# the report's SHA-256, so what was approved and filed stays provable.
proposals = Table(
    "proposals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("proposer_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("proposed_at", DateTime, nullable=False),
    Column("audit_seq", Integer, nullable=False),  # its report_proposed entry: later views saw this version
    Column("evidence", Text, nullable=False),  # JSON [[source, event_id], ...] as proposed
    Column("sha256", String(64), nullable=False),  # the version's identity: case, text, evidence, parties
    Column("outcome", String(16), nullable=True),  # None while current; withdrawn, sent back, approved
    Column("ended_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("ended_at", DateTime, nullable=True),
    Column("end_reason", Text, nullable=True),
    Column("held_by", Text, nullable=True),  # JSON: supervisors who had opened it before it ended
    Column("report_sha256", String(64), nullable=True),
    Column("report_nonce", LargeBinary, nullable=True),
    Column("report_ciphertext", LargeBinary, nullable=True),
    UniqueConstraint("case_id", "version"),
)

# Requests to give someone the supervisor or admin role, and who decided them: such a role needs a
# second admin (docs/oversight.md, "Granting roles"). A new user's password hash waits here until
# the grant is approved; no account exists before.
role_grants = Table(
    "role_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("team", String(64), nullable=False),
    Column("change", Text, nullable=False),  # "new user", or "role change from <role>"
    Column("display_name", Text, nullable=True),
    Column("password_hash", Text, nullable=True),  # a new account's, until it is decided
    Column("requested_by", Text, nullable=False),
    Column("requested_at", DateTime, nullable=False),
    Column("state", String(16), nullable=False),  # pending, granted, refused
    Column("decided_by", Text, nullable=True),
    Column("decided_at", DateTime, nullable=True),
    Column("mode", String(32), nullable=True),  # how it was granted: second admin, bootstrap, single-admin
)
