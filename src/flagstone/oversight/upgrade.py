"""Bringing a case database to this Flagstone's tables when it opens, with Alembic.

The revisions live in :mod:`flagstone.oversight.migrations`. A database keeps its revision in
``alembic_version``; one made before migrations has none and is recognised by its columns
(:data:`UNVERSIONED`): stamped with the revision it matches, then upgraded like any other. A new,
empty database gets the tables at the head revision directly. Everything runs in the caller's
transaction, so a database is upgraded wholly or not at all.

Refused, with what is wrong named: a revision this Flagstone does not know (a newer Flagstone made
it), and tables that match no revision (a column missing).
"""

from __future__ import annotations

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, inspect, text

from flagstone.errors import StoreError
from flagstone.oversight.migrations import alembic_config
from flagstone.oversight.schema import metadata

# The columns of the revisions a database could have before migrations existed, newest first.
# Frozen: a later revision never changes these (tests/old_case_schema.py and
# tests/case_schema_issue13.py are the schemas they describe).
_AUDIT = {
    "audit_entries": {"seq", "ts", "actor", "action", "target", "details", "entry_hash"},
    "audit_checkpoints": {"size", "root", "ts", "key_id", "signature"},
    "audit_head": {"id", "size", "frontier"},
}
_SHARED = {
    "sessions": {"token_hash", "user_id", "csrf_token", "created_at", "last_seen", "expires_at"},
    "vault": {"pseudonym", "nonce", "ciphertext"},
    "reveals": {"id", "case_id", "pseudonym", "user_id", "reason", "revealed_at"},
    "comments": {"id", "case_id", "user_id", "body", "created_at"},
    **_AUDIT,
}
_USERS = {"id", "username", "display_name", "role", "team", "password_hash", "active", "created_at"}
_CASES = {
    "id", "alert_id", "team", "rule_id", "rule_version", "severity", "severity_rank", "group_key", "reason",
    "values_json", "first_ts", "last_ts", "detected_at", "deadline", "state", "assignee_id", "proposer_id",
    "approver_id", "filer_id", "proposal", "closing_reason", "filed_at", "updated_at",
}  # fmt: skip
_EVIDENCE = {
    "case_id", "source", "event_id", "ts", "kind", "actor", "counterparty", "amount", "currency", "item",
    "category", "quantity", "place", "channel",
}  # fmt: skip
UNVERSIONED: dict[str, dict[str, set[str]]] = {
    "0002": {
        **_SHARED,
        "users": _USERS,
        "cases": _CASES,  # and report_xml, while its clear reports wait for the store's key
        "case_events": _EVIDENCE | {"event_key"},
        "login_limits": {"key", "failures", "window_start", "locked_until", "refused", "expires_at"},
        "proposals": {
            "id", "case_id", "version", "text", "proposer_id", "proposed_at", "audit_seq", "evidence", "sha256",
            "outcome", "ended_by", "ended_at", "end_reason", "held_by", "report_sha256", "report_nonce",
            "report_ciphertext",
        },
        "role_grants": {
            "id", "username", "role", "team", "change", "display_name", "password_hash", "requested_by",
            "requested_at", "state", "decided_by", "decided_at", "mode",
        },
    },
    "0001": {
        **_SHARED,
        "users": _USERS | {"failed_logins", "locked_until"},
        "cases": _CASES | {"report_xml"},
        "case_events": _EVIDENCE,
    },
}  # fmt: skip
_KNOWN_TABLES = {name for revision in UNVERSIONED.values() for name in revision} | set(metadata.tables)
_LOCK = 0x666C6167  # PostgreSQL advisory lock: one process upgrades at a time ("flag")


def upgrade(con: Connection, *, allowed: bool = True) -> list[str]:
    """Bring the database on ``con`` (inside its transaction) to the head revision; what was done,
    one line a revision applied (nothing for a new database or one already at the head).

    Without ``allowed`` an older database is refused instead: callers that cannot audit the
    upgrade (the audit commands, which may hold only the public key) leave it to one that can."""
    if con.dialect.name == "postgresql":
        con.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
    cfg = alembic_config(connection=con)
    script = ScriptDirectory.from_config(cfg)
    context = MigrationContext.configure(con)
    current = context.get_current_heads()
    head = script.get_current_head()
    notes: list[str] = []
    if not current:
        tables = set(inspect(con).get_table_names())
        if not tables & _KNOWN_TABLES:
            metadata.create_all(con)
            context.stamp(script, "head")
            return []
        found = identify(con)
        _refuse_unless(allowed, found, head)
        context.stamp(script, found)
        notes.append(f"made before migrations: recognised as revision {found} and stamped")
        current = (found,)
    for revision in current:
        if revision not in {r.revision for r in script.walk_revisions()}:
            raise StoreError(
                f"its revision {revision} is unknown to this Flagstone (whose newest is {head}): a newer Flagstone "
                "upgraded it; use that version, or a copy of the database made before the upgrade"
            )
    if current != (head,):
        _refuse_unless(allowed, ", ".join(current), head)
        command.upgrade(cfg, "head")
        notes += cfg.attributes["notes"]
    gap = _lacking(con, {t.name: {c.name for c in t.columns} for t in metadata.sorted_tables})
    if gap:  # its revision says otherwise: changed by hand, or half restored
        raise StoreError(f"{_said(gap)}, which its revision {head} has; restore it or start a new case database")
    return notes


def _refuse_unless(allowed: bool, found: str | None, head: str | None) -> None:
    if not allowed:
        raise StoreError(
            f"it was made by an older Flagstone (revision {found}; this one's is {head}): open it once with "
            "`flagstone cases sync` or `flagstone web`, which upgrade it and audit that, then run this again"
        )


def identify(con: Connection) -> str:
    """The revision whose columns an unversioned database has (extra columns are let be); refused,
    naming what the closest revision has and the database lacks, when it has none's."""
    gaps = {revision: _lacking(con, tables) for revision, tables in UNVERSIONED.items()}
    for revision, gap in gaps.items():
        if not gap:
            return revision
    closest = min(gaps.values(), key=lambda gap: sum(len(cols) or 1 for cols in gap.values()))
    raise StoreError(
        f"its tables match no revision this Flagstone knows ({_said(closest)}: made by a much older Flagstone, or "
        "not by Flagstone); migrate it or start a new case database"
    )


def _lacking(con: Connection, tables: dict[str, set[str]]) -> dict[str, list[str]]:
    """What the database lacks of ``tables``: table -> missing columns (empty: the whole table)."""
    found = inspect(con)
    have = set(found.get_table_names())
    gap: dict[str, list[str]] = {}
    for table, cols in tables.items():
        missing = sorted(cols - {c["name"] for c in found.get_columns(table)}) if table in have else []
        if table not in have or missing:
            gap[table] = missing
    return gap


def _said(gap: dict[str, list[str]]) -> str:
    return "; ".join(f"table {t} lacks {', '.join(c)}" if c else f"table {t} is missing" for t, c in gap.items())
