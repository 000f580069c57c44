"""Bringing a case database made by an older Flagstone up to this one's tables, when it opens.

Each step looks at the database, changes what an older version made differently, and says what
it did (or returns None). Every step only widens or re-keys: no value is lost. They all run in
one transaction, so a database is upgraded wholly or not at all. What no step knows how to
upgrade (a column missing) is refused by :func:`flagstone.oversight.database.open_database`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, DateTime, MetaData, Table, insert, inspect, select
from sqlalchemy.engine import Inspector

from flagstone.oversight.schema import Str, case_events, event_key, limit_key, login_limits, metadata

Step = Callable[[Connection, Inspector], str | None]
_BATCH = 5000


def upgrade(con: Connection) -> list[str]:
    """Run every step on ``con`` (inside its transaction); what was changed, one line a change."""
    done = []
    for step in STEPS:
        note = step(con, inspect(con))  # a fresh look each time: an earlier step may have changed tables
        if note:
            done.append(note)
    return done


def _quote(con: Connection, name: str) -> str:
    return con.dialect.identifier_preparer.quote(name)


def widen_text(con: Connection, found: Inspector) -> str | None:
    """PostgreSQL enforces VARCHAR(n), which older versions gave text from the store (unbounded
    there): such columns become TEXT. Cheap: PostgreSQL rewrites neither the table nor its
    indexes for it. SQLite ignores declared lengths, so its files need nothing."""
    if con.dialect.name != "postgresql":
        return None
    changed = []
    for table in metadata.sorted_tables:
        if not found.has_table(table.name):
            continue
        had = {c["name"]: c["type"] for c in found.get_columns(table.name)}
        for col in table.columns:
            length = getattr(had.get(col.name), "length", None)
            if not isinstance(col.type, Str) or length is None or (col.type.length or 0) >= length:
                continue
            new = f"VARCHAR({col.type.length})" if col.type.length else "TEXT"
            con.exec_driver_sql(
                f"ALTER TABLE {_quote(con, table.name)} ALTER COLUMN {_quote(con, col.name)} TYPE {new}"
            )
            changed.append(f"{table.name}.{col.name} VARCHAR({length}) -> {new}")
    return f"widened {len(changed)} columns: {'; '.join(changed)}" if changed else None


def key_evidence_by_hash(con: Connection, found: Inspector) -> str | None:
    """Older versions keyed evidence by (case, source, event id), which PostgreSQL cannot index
    once a source's ids pass about 2.7 kB; the table is rebuilt keyed by their hash."""
    if not found.has_table("case_events"):
        return None
    had = [c["name"] for c in found.get_columns("case_events")]
    if "event_key" in had:
        return None
    old_name = "case_events_before_upgrade"
    pk = found.get_pk_constraint("case_events").get("name")
    con.exec_driver_sql(f"ALTER TABLE case_events RENAME TO {old_name}")
    if con.dialect.name == "postgresql" and pk:  # its name would clash with the new table's key
        con.exec_driver_sql(f"ALTER TABLE {old_name} DROP CONSTRAINT {_quote(con, pk)}")
    old = Table(old_name, MetaData(), *(Column(c.name, c.type) for c in case_events.columns if c.name in had))
    case_events.create(con)
    rows = con.execute(select(old).execution_options(yield_per=_BATCH))
    copied = 0
    for part in rows.partitions():
        batch = [{**r._mapping, "event_key": event_key(r.source, r.event_id)} for r in part]
        con.execute(insert(case_events), batch)
        copied += len(batch)
    rows.close()
    con.exec_driver_sql(f"DROP TABLE {old_name}")
    return f"case_events keyed by event_key, the hash of (source, event_id): {copied} rows"


def lock_by_name(con: Connection, found: Inspector) -> str | None:
    """Older versions kept lock-outs in users.failed_logins and users.locked_until, for known names
    only; they move to login_limits, which treats every name typed alike."""
    if not found.has_table("users"):
        return None
    had = {c["name"] for c in found.get_columns("users")}
    gone = [c for c in ("failed_logins", "locked_until") if c in had]
    if not gone:
        return None
    now = datetime.now(UTC).replace(tzinfo=None)
    moved = 0
    if "locked_until" in had:
        old = Table("users", MetaData(), Column("username", Str()), Column("locked_until", DateTime))
        for name, until in con.execute(select(old.c.username, old.c.locked_until)):
            if until is not None and until > now:
                con.execute(
                    insert(login_limits).values(
                        key=limit_key("name", name), failures=0, window_start=now, locked_until=until,
                        refused=0, expires_at=until,
                    )
                )  # fmt: skip
                moved += 1
    for col in gone:
        con.exec_driver_sql(f"ALTER TABLE users DROP COLUMN {col}")
    return f"users.{' and users.'.join(gone)} dropped; {moved} current locks moved to login_limits"


STEPS: tuple[Step, ...] = (widen_text, key_evidence_by_hash, lock_by_name)
