"""Case database migrations (Alembic), on SQLite and on a real PostgreSQL: the head revision is
exactly schema.py, so a schema change without its migration fails here; a database made before
migrations (the schema of issue 13, the last one landed before them, or the one before) is
recognised, stamped, upgraded in place with nothing lost and the upgrade audited; a database of a
newer Flagstone, or one whose tables match no revision, is refused with what is wrong named."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import case_schema_issue13 as issue13
import old_case_schema as old
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from case_db import db_url  # noqa: F401 - fixture
from conftest import REPO
from sqlalchemy import Engine, MetaData, create_engine, insert, select, text

from flagstone.audit import AuditLog, Signer, audit_key_path, verify
from flagstone.audit.events import LoggedIn
from flagstone.config import Config
from flagstone.errors import StoreError
from flagstone.ingest import Pseudonymiser
from flagstone.oversight.context import Oversight
from flagstone.oversight.database import open_database
from flagstone.oversight.migrations import alembic_config, compare_type
from flagstone.oversight.schema import audit_entries, event_key, limit_key, metadata
from flagstone.oversight.upgrade import UNVERSIONED

T0 = datetime(2026, 3, 1, 9, 0)
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
# Text an older database may hold that the new one stores differently: U+FFFF is PostgreSQL's escape
# character now (schema.Str), and long text passed the old VARCHAR sizes only on SQLite.
ODD = "r\uffff0 \uffff\uffff ü ✓"


def schema_diff(engine: Engine) -> list[Any]:
    with engine.connect() as con:
        context = MigrationContext.configure(con, opts={"compare_type": compare_type})
        return list(compare_metadata(context, metadata))


def revision_of(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as con:
        return MigrationContext.configure(con).get_current_heads()


def snapshot(engine: Engine, tables: MetaData, skip: tuple[str, ...] = ()) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, read with ``tables``' types, without the ``skip`` columns."""
    out = {}
    with engine.connect() as con:
        for table in tables.sorted_tables:
            cols = [c for c in table.columns if f"{table.name}.{c.name}" not in skip]
            rows = con.execute(select(*cols).order_by(*table.primary_key.columns)).all()
            out[table.name] = [dict(r._mapping) for r in rows]
    return out


def assert_kept(before: dict[str, list[dict[str, Any]]], after: dict[str, list[dict[str, Any]]]) -> None:
    """Every row of ``before`` in ``after``; the audit log's only grew (the upgrade's entry)."""
    assert set(after) >= set(before)
    for name, rows in before.items():
        if name == "audit_head":
            continue
        got = after[name][: len(rows)] if name in ("audit_entries", "audit_checkpoints") else after[name]
        # Columns a later revision added are empty on the rows it found.
        assert [{k: r[k] for k in r if k in rows[0]} for r in got] == rows, name
        assert all(r[k] is None for r in got for k in r if rows and k not in rows[0]), name


def upgrade_entries(engine: Engine) -> list[str]:
    with engine.connect() as con:
        query = select(audit_entries.c.details).where(audit_entries.c.action == "case_database_upgraded")
        return list(con.execute(query).scalars())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "s.duckdb"
    Pseudonymiser.for_store(path)  # the store's key, as the deployment had it
    yield path


# -- the head revision is schema.py ---------------------------------------------------------------


def test_the_migrations_from_an_empty_database_make_exactly_schema_py(db_url: str) -> None:  # noqa: F811
    """Every revision run in turn (not create_all) gives schema.py's tables: a change to schema.py
    without a revision, or a revision that makes something else, fails here."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as con:
            command.upgrade(alembic_config(connection=con), "head")
        assert revision_of(engine) == (HEAD,)
        assert schema_diff(engine) == []
    finally:
        engine.dispose()


def test_a_new_database_is_made_at_the_head_revision(db_url: str) -> None:  # noqa: F811
    notes: list[str] = []
    engine = open_database(db_url, notes)
    try:
        assert notes == []  # nothing upgraded, nothing to audit
        assert revision_of(engine) == (HEAD,)
        assert schema_diff(engine) == []
    finally:
        engine.dispose()
    again: list[str] = []
    open_database(db_url, again).dispose()
    assert again == []


def test_the_frozen_columns_that_recognise_an_older_database_are_those_schemas() -> None:
    for revision, tables in (("0001", old.metadata), ("0002", issue13.metadata)):
        assert UNVERSIONED[revision] == {t.name: {c.name for c in t.columns} for t in tables.sorted_tables}


def test_the_migrations_command_line_finds_no_change_to_make() -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLAGSTONE_DB"}
    run = subprocess.run(
        [sys.executable, "-m", "flagstone.oversight.migrations", "check"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "No new upgrade operations detected" in run.stdout + run.stderr


# -- a database made before migrations ------------------------------------------------------------


def _issue13_database(url: str, store: Path) -> Signer:
    """A database as the last Flagstone before migrations made and filled it."""
    engine = create_engine(url)
    issue13.metadata.create_all(engine)
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as con:
        con.execute(insert(issue13.audit_head).values(id=1, size=0, frontier="[]"))
        for name in ("ana", "sue"):
            con.execute(
                insert(issue13.users).values(
                    username=name, display_name=f"{name} {ODD}", role="supervisor", team="aml", password_hash="x",
                    active=True, created_at=T0,
                )
            )  # fmt: skip
        case_id = con.execute(
            insert(issue13.cases).values(
                alert_id="a" * 24, team="aml", rule_id="aml." + "x" * 300, rule_version=1, severity="high",
                severity_rank=2, group_key="actor=p1", reason=ODD + "\x00", values_json="{}", first_ts=T0,
                last_ts=T0, detected_at=T0, deadline=T0, state="proposed", proposer_id=1,
                proposal="report text", updated_at=T0,
            )
        ).inserted_primary_key[0]  # fmt: skip
        con.execute(
            insert(issue13.case_events),
            [
                {
                    "case_id": case_id, "event_key": event_key("bank", f"e{i}"), "source": "bank",
                    "event_id": f"e{i}", "ts": T0, "kind": "payment", "actor": "p1", "amount": Decimal(amount),
                }
                for i, amount in enumerate(["1234.5000", "99999999999999.9999"])
            ],
        )  # fmt: skip
        con.execute(
            insert(issue13.proposals).values(
                case_id=case_id, version=1, text="report text", proposer_id=1, proposed_at=T0, audit_seq=0,
                evidence='[["bank", "e0"]]', sha256="0" * 64,
            )
        )  # fmt: skip
        con.execute(insert(issue13.comments).values(case_id=case_id, user_id=2, body=ODD, created_at=T0))
        con.execute(
            insert(issue13.login_limits).values(
                key=limit_key("name", "bob"), failures=3, window_start=now, locked_until=now + timedelta(minutes=5),
                refused=1, expires_at=now + timedelta(minutes=5),
            )
        )  # fmt: skip
        con.execute(
            insert(issue13.role_grants).values(
                username="sue", role="supervisor", team="aml", change="new user", requested_by="ana",
                requested_at=T0, state="granted", decided_by="bootstrap", decided_at=T0, mode="bootstrap",
            )
        )  # fmt: skip
    signer = Signer.create(audit_key_path(store))
    AuditLog(engine, signer).record("ana", LoggedIn("ana"))
    engine.dispose()
    return signer


def test_a_database_of_the_last_schema_before_migrations_is_stamped_and_keeps_everything(
    db_url: str,  # noqa: F811
    store: Path,
) -> None:
    signer = _issue13_database(db_url, store)
    engine = create_engine(db_url)
    before = snapshot(engine, issue13.metadata)
    engine.dispose()

    ov = Oversight.open(store, db_url, Config())
    try:
        assert revision_of(ov.engine) == (HEAD,)
        assert schema_diff(ov.engine) == []
        after = snapshot(ov.engine, metadata)
        assert_kept(before, after)
        [entry] = upgrade_entries(ov.engine)
        assert "recognised as revision 0002" in entry
        assert verify(ov.engine, signer.public).ok
    finally:
        ov.close()
    again = Oversight.open(store, db_url, Config())  # nothing left to do: no second entry
    try:
        assert len(upgrade_entries(again.engine)) == 1
    finally:
        again.close()


def _pre13_database(url: str, *, report: str | None) -> None:
    engine = create_engine(url)
    old.metadata.create_all(engine)
    with engine.begin() as con:
        con.execute(insert(old.audit_head).values(id=1, size=0, frontier="[]"))
        con.execute(
            insert(old.users).values(
                username="ana", display_name="ana", role="supervisor", team="aml", password_hash="x",
                failed_logins=2, active=True, created_at=T0,
            )
        )  # fmt: skip
        case_id = con.execute(
            insert(old.cases).values(
                alert_id="a" * 24, team="aml", rule_id="aml.x", rule_version=1, severity="high", severity_rank=2,
                group_key="actor=p1", reason=ODD, values_json="{}", first_ts=T0, last_ts=T0, detected_at=T0,
                deadline=T0, state="approved" if report else "open", proposer_id=1, approver_id=1,
                proposal="text", report_xml=report, updated_at=T0,
            )
        ).inserted_primary_key[0]  # fmt: skip
        con.execute(
            insert(old.case_events).values(
                case_id=case_id, source="bank", event_id="e\uffff1", ts=T0, kind="payment", actor="p1",
                amount=Decimal("99999999999.9999"), quantity=Decimal("0.0001"),
            )
        )  # fmt: skip
        con.execute(insert(old.comments).values(case_id=case_id, user_id=1, body=ODD, created_at=T0))
    engine.dispose()


def test_a_database_made_before_issue_13_is_upgraded_through_every_revision(
    db_url: str,  # noqa: F811
    store: Path,
) -> None:
    _pre13_database(db_url, report=None)
    engine = create_engine(db_url)
    dropped = ("users.failed_logins", "users.locked_until", "cases.report_xml")
    before = snapshot(engine, old.metadata, skip=dropped)
    engine.dispose()

    ov = Oversight.open(store, db_url, Config())
    try:
        assert revision_of(ov.engine) == (HEAD,)
        assert schema_diff(ov.engine) == []
        kept = MetaData()
        for table in old.metadata.sorted_tables:  # the old columns, read with today's types
            metadata.tables[table.name].to_metadata(kept)
        after = snapshot(ov.engine, kept, skip=tuple(f"case_events.{c}" for c in ("event_key",)))
        assert_kept(before, after)
        [row] = after["case_events"]
        expected = ("e\uffff1", Decimal("99999999999.9999"), Decimal("0.0001"))
        assert (row["event_id"], row["amount"], row["quantity"]) == expected
        [entry] = upgrade_entries(ov.engine)
        assert "recognised as revision 0001" in entry and "0001 -> 0002" in entry
        assert "case_events keyed by event_key" in entry and "dropped" in entry
    finally:
        ov.close()


def test_a_clear_report_keeps_its_column_until_the_key_seals_it(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    """Only the store's key can seal a clear report, and only Oversight has it: the migration leaves
    cases.report_xml while it holds one, and the head is reached once it is sealed."""
    _pre13_database(db_url, report="<report/>")
    store = tmp_path / "s.duckdb"  # no key yet
    Oversight.open(store, db_url, Config()).close()
    engine = create_engine(db_url)
    try:
        assert revision_of(engine) == (HEAD,)
        assert [d[0] for d in schema_diff(engine)] == ["remove_column"]  # report_xml, waiting
    finally:
        engine.dispose()
    Pseudonymiser.for_store(store)
    ov = Oversight.open(store, db_url, Config())
    try:
        assert schema_diff(ov.engine) == []
        assert "sealed 1 goAML reports" in upgrade_entries(ov.engine)[-1]
    finally:
        ov.close()


# -- refused --------------------------------------------------------------------------------------


def test_a_database_of_a_newer_flagstone_is_refused(db_url: str) -> None:  # noqa: F811
    open_database(db_url).dispose()
    engine = create_engine(db_url)
    with engine.begin() as con:
        con.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"revision 9999 is unknown to this Flagstone .*a newer Flagstone"):
        open_database(db_url)


def test_tables_that_match_no_revision_are_refused_with_what_they_lack(db_url: str) -> None:  # noqa: F811
    _pre13_database(db_url, report=None)
    engine = create_engine(db_url)
    with engine.begin() as con:
        con.execute(text("ALTER TABLE cases DROP COLUMN filed_at"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"match no revision .*\(table cases lacks filed_at:"):
        open_database(db_url)


def test_a_failed_upgrade_leaves_the_database_as_it_was(tmp_path: Path) -> None:
    """Evidence whose case is gone (SQLite kept it: its foreign keys were off then): the upgrade
    stops before it commits, and the database is still the older one."""
    url = f"sqlite:///{tmp_path / 'c.sqlite'}"
    _pre13_database(url, report=None)
    engine = create_engine(url)
    with engine.begin() as con:
        con.execute(insert(old.case_events).values(case_id=99, source="bank", event_id="x", ts=T0, kind="payment"))
    before = snapshot(engine, old.metadata)
    engine.dispose()
    with pytest.raises(StoreError, match="without their parent"):
        open_database(url)
    engine = create_engine(url)
    try:
        assert snapshot(engine, old.metadata) == before
        assert revision_of(engine) == ()
    finally:
        engine.dispose()


def test_an_older_database_is_not_upgraded_where_the_upgrade_cannot_be_audited(
    db_url: str,  # noqa: F811
    store: Path,
) -> None:
    # The audit commands open the database without the signing key: they refuse an older one,
    # naming the commands that upgrade it with an audit entry, and leave it as it was.
    _pre13_database(db_url, report=None)
    with pytest.raises(StoreError, match="flagstone cases sync"):
        open_database(db_url, upgrade_allowed=False)
    engine = create_engine(db_url)
    assert revision_of(engine) == ()
    engine.dispose()
    ov = Oversight.open(store, db_url, Config())  # where it can be audited, it is upgraded
    try:
        assert revision_of(ov.engine) == (HEAD,)
        assert len(upgrade_entries(ov.engine)) == 1
    finally:
        ov.close()
    open_database(db_url, upgrade_allowed=False).dispose()  # at the head: nothing to refuse
