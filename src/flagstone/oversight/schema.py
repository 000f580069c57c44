"""Tables of the case database: users, sessions, cases with their evidence, and the audit log.

One SQLAlchemy ``MetaData`` for everything, in Core rather than ORM form: the code reads and writes
rows explicitly, which keeps the SQL that SQLite and PostgreSQL both run easy to see.
Timestamps are naive UTC. The audit log keeps its times as text, so that the bytes hashed into the
Merkle tree are the bytes stored, whatever a database does to timestamps.

Text copied from the event store (whose VARCHAR is unbounded) or typed by people is unbounded
here too (:class:`Str` without a length), so no value the store holds can fail a sync on one
back end and pass on the other. Bounded columns hold only what Flagstone itself makes (hashes,
tokens, roles, states). Every string column is a :class:`Str`, which also stores NUL characters
on PostgreSQL (whose text type refuses them).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

# PostgreSQL's text cannot hold U+0000. On PostgreSQL only, NUL is stored as ESC "0" and ESC itself
# as ESC ESC, ESC being U+FFFF: a noncharacter, which Unicode reserves for a program's internal use.
_ESC = "\uffff"
_ESCAPED = re.compile("\uffff([\uffff0])")


def _escape(value: str) -> str:
    if "\x00" not in value and _ESC not in value:
        return value
    return value.replace(_ESC, _ESC + _ESC).replace("\x00", _ESC + "0")


def _unescape(value: str) -> str:
    if _ESC not in value:
        return value
    return _ESCAPED.sub(lambda m: _ESC if m[1] == _ESC else "\x00", value)


class Str(TypeDecorator[str]):
    """A string column: ``Str()`` unbounded (TEXT), ``Str(n)`` at most ``n`` characters. Any
    Python string round-trips on both back ends, NUL characters included, and a comparison with
    one (a NUL in a query parameter) is simply false instead of an error."""

    impl = Text
    cache_ok = True

    def __init__(self, length: int | None = None) -> None:
        super().__init__()
        self.length = length

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(String(self.length) if self.length else Text())

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "postgresql":
            return value
        return _escape(str(value))

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None or dialect.name != "postgresql":
            return value
        return _unescape(value)


class Amount(TypeDecorator[Decimal]):
    """An exact decimal, as the store's DECIMAL(18,4). PostgreSQL's NUMERIC is one; SQLite has none
    and keeps a float, 15 significant digits (12345678901234.5678 came back as ...5684), so on
    SQLite it is text, always with the store's four places."""

    impl = Numeric(18, 4)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(Text() if dialect.name == "sqlite" else Numeric(18, 4))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return str(Decimal(value).quantize(_PLACES))

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        # str() first: a database made before kept floats, and Decimal(float) shows their binary noise.
        return value if value is None or isinstance(value, Decimal) else Decimal(str(value))


_PLACES = Decimal("0.0001")


def event_key(source: str, event_id: str) -> str:
    """The key of an evidence event within its case. A hash, because ``source`` and ``event_id``
    are as long as a source makes them and an index entry cannot be (PostgreSQL's B-tree takes
    about 2.7 kB)."""
    text = json.dumps([source, event_id], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def limit_key(kind: str, value: str) -> str:
    """The key of a log-in limit: ``kind`` is "name" or "address"; the value is hashed, so that
    names typed at the log-in (passwords, sometimes) are not kept in clear."""
    return hashlib.sha256(f"{kind}\x1f{value}".encode("utf-8", "surrogatepass")).hexdigest()


metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", Str(64), nullable=False, unique=True),  # checked when a user is made
    Column("display_name", Str(), nullable=False),
    Column("role", Str(16), nullable=False),
    Column("team", Str(), nullable=False),
    Column("password_hash", Str(200), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("token_hash", Str(64), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("csrf_token", Str(64), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

# Failed log-ins, per user name typed (known or not, so that a lock tells nothing about which
# names exist) and per client address; the key is a hash of the kind and the value. A row goes
# once its window and its lock are over.
login_limits = Table(
    "login_limits",
    metadata,
    Column("key", Str(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("locked_until", DateTime, nullable=True),
    Column("refused", Integer, nullable=False),
    Column("expires_at", DateTime, nullable=False),
)

# One case per scheme: its first alert's facts are copied in when it is synced from the event store
# (so the review works while the store is busy, DuckDB allowing one process, and after retention);
# the alerts of the same scheme that follow join it (case_alerts).
cases = Table(
    "cases",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Str(), nullable=False, unique=True),  # Flagstone's own 24 hex digits
    Column("team", Str(), nullable=False),
    Column("rule_id", Str(), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("severity", Str(), nullable=False),
    Column("severity_rank", Integer, nullable=False),
    Column("group_key", Str(), nullable=False),
    Column("reason", Str(), nullable=False),
    Column("values_json", Str(), nullable=False),
    Column("first_ts", DateTime, nullable=False),
    Column("last_ts", DateTime, nullable=False),
    Column("detected_at", DateTime, nullable=False),
    Column("deadline", DateTime, nullable=False),
    Column("state", Str(16), nullable=False),
    Column("assignee_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("proposer_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("approver_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("filer_id", Integer, ForeignKey("users.id"), nullable=True),
    Column("proposal", Str(), nullable=True),
    Column("closing_reason", Str(), nullable=True),
    Column("filed_at", DateTime, nullable=True),
    Column("updated_at", DateTime, nullable=False),
    # The active triage model's score of the alert (docs/triage.md): it orders the queue, nothing else.
    Column("priority", Float, nullable=True),
    Column("explanation", Str(), nullable=True),
    Column("triage_model", Str(), nullable=True),
    # Marked by the draw of the active model's review sample: read whatever its priority (triage).
    Column("review_sample", Boolean, nullable=True),
)

# Every alert of a case: the first (cases.alert_id) and those of the same scheme that joined it
# later (schemes.py). ``evidence_count``: the alert's evidence length when last synced, so that an
# ongoing episode's new evidence is copied in.
case_alerts = Table(
    "case_alerts",
    metadata,
    Column("alert_id", Str(), primary_key=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False, index=True),
    Column("rule_id", Str(), nullable=False),
    Column("rule_version", Integer, nullable=False),
    Column("severity", Str(), nullable=False),
    Column("group_key", Str(), nullable=False),
    Column("reason", Str(), nullable=False),
    Column("values_json", Str(), nullable=False),
    Column("typologies", Str(), nullable=False),  # the rule's typology declarations, ", "-joined
    Column("first_ts", DateTime, nullable=False),
    Column("last_ts", DateTime, nullable=False),
    Column("evidence_count", Integer, nullable=False),
    Column("added_at", DateTime, nullable=False),
)

case_events = Table(
    "case_events",
    metadata,
    Column("case_id", Integer, ForeignKey("cases.id"), primary_key=True),
    Column("event_key", Str(64), primary_key=True),  # event_key(source, event_id)
    Column("source", Str(), nullable=False),
    Column("event_id", Str(), nullable=False),
    Column("ts", DateTime, nullable=False),
    Column("kind", Str(), nullable=False),
    Column("actor", Str(), nullable=True),
    Column("counterparty", Str(), nullable=True),
    Column("amount", Amount, nullable=True),
    Column("currency", Str(), nullable=True),
    Column("item", Str(), nullable=True),
    Column("category", Str(), nullable=True),
    Column("quantity", Amount, nullable=True),
    Column("place", Str(), nullable=True),
    Column("channel", Str(), nullable=True),
)

# Encrypted identities of the parties in cases, copied from the store; only a reveal decrypts one.
vault = Table(
    "vault",
    metadata,
    Column("pseudonym", Str(), primary_key=True),
    Column("nonce", LargeBinary, nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
)

reveals = Table(
    "reveals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("pseudonym", Str(), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("reason", Str(), nullable=False),
    Column("revealed_at", DateTime, nullable=False),
    UniqueConstraint("case_id", "pseudonym"),
)

comments = Table(
    "comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("body", Str(), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", Str(32), nullable=False),
    Column("actor", Str(), nullable=False),
    Column("action", Str(64), nullable=False),
    Column("target", Str(), nullable=False),
    Column("details", Str(), nullable=False),
    Column("entry_hash", Str(64), nullable=False),
)

# Every append signs a checkpoint of the new size, so the newest checkpoint covers the whole log.
audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column("root", Str(64), nullable=False),
    Column("ts", Str(32), nullable=False),
    Column("key_id", Str(16), nullable=False),
    Column("signature", Str(128), nullable=False),
)

# The one row holding the tree's right edge (roots of its perfect subtrees), so an append costs
# O(log n) instead of rehashing the log. Locking this row serialises appends.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("size", Integer, nullable=False),
    Column("frontier", Str(), nullable=False),
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
    Column("text", Str(), nullable=False),
    Column("proposer_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("proposed_at", DateTime, nullable=False),
    Column("audit_seq", Integer, nullable=False),  # its report_proposed entry: later views saw this version
    Column("evidence", Str(), nullable=False),  # JSON [[source, event_id], ...] as proposed
    Column("sha256", Str(64), nullable=False),  # the version's identity: case, text, evidence, parties
    Column("outcome", Str(16), nullable=True),  # None while current; withdrawn, sent back, approved
    Column("ended_by", Integer, ForeignKey("users.id"), nullable=True),
    Column("ended_at", DateTime, nullable=True),
    Column("end_reason", Str(), nullable=True),
    Column("held_by", Str(), nullable=True),  # JSON: supervisors who had opened it before it ended
    Column("report_sha256", Str(64), nullable=True),
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
    Column("username", Str(64), nullable=False),
    Column("role", Str(16), nullable=False),
    Column("team", Str(), nullable=False),
    Column("change", Str(), nullable=False),  # "new user", or "role change from <role>"
    Column("display_name", Str(), nullable=True),
    Column("password_hash", Str(), nullable=True),  # a new account's, until it is decided
    Column("requested_by", Str(), nullable=False),
    Column("requested_at", DateTime, nullable=False),
    Column("state", Str(16), nullable=False),  # pending, granted, refused
    Column("decided_by", Str(), nullable=True),
    Column("decided_at", DateTime, nullable=True),
    Column("mode", Str(32), nullable=True),  # how it was granted: second admin, bootstrap, single-admin
)


def utcnow() -> datetime:
    """Naive UTC, as the case database stores times."""
    return datetime.now(UTC).replace(tzinfo=None)
