"""A case database an older Flagstone made: its clear goAML reports are sealed when it opens, and
its proposed and approved cases get a proposal version, so that they go on as new cases do."""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import Path

import old_case_schema as old
import pytest
from case_db import db_url  # noqa: F401 - fixture
from sqlalchemy import create_engine, inspect, select

from flagstone.ingest import Pseudonymiser
from flagstone.oversight import cases as case_ops
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import proposals, users
from flagstone.oversight.users import User

T0 = datetime(2026, 3, 1, 9, 0)
IBAN = "DE89370400440532013000"  # the party's identity, in the clear report
XML = f"<report><t_person><iban>{IBAN}</iban></t_person></report>"


def _old_database(url: str) -> None:
    from sqlalchemy import insert

    engine = create_engine(url)
    old.metadata.create_all(engine)
    with engine.begin() as con:
        con.execute(insert(old.audit_head).values(id=1, size=0, frontier="[]"))
        ids = {}
        for name in ("sam", "sue"):
            ids[name] = con.execute(
                insert(old.users).values(
                    username=name, display_name=name, role="supervisor", team="aml", password_hash="x",
                    failed_logins=0, active=True, created_at=T0,
                )
            ).inserted_primary_key[0]  # fmt: skip
        for alert, state, report in (("a" * 24, "approved", XML), ("b" * 24, "proposed", None)):
            case_id = con.execute(
                insert(old.cases).values(
                    alert_id=alert, team="aml", rule_id="aml.x", rule_version=1, severity="high",
                    severity_rank=2, group_key="actor=p1", reason="r", values_json="{}", first_ts=T0,
                    last_ts=T0, detected_at=T0, deadline=T0, state=state, proposer_id=ids["sam"],
                    approver_id=ids["sue"] if report else None, proposal=f"report text of {state}",
                    report_xml=report, updated_at=T0,
                )
            ).inserted_primary_key[0]  # fmt: skip
            con.execute(
                insert(old.case_events).values(
                    case_id=case_id, source="bank", event_id=f"e{case_id}", ts=T0, kind="payment", actor="p1"
                )
            )
    engine.dispose()


def _file_bytes(url: str) -> bytes:
    path = Path(url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_clear_reports_are_sealed_and_older_cases_get_a_version(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = tmp_path / "s.duckdb"
    Pseudonymiser.for_store(store)  # the store's key, as the old deployment had it
    _old_database(db_url)

    ov = Oversight.open(store, db_url)
    try:
        with ov.engine.connect() as con:
            assert "report_xml" not in {c["name"] for c in inspect(con).get_columns("cases")}
            rows = {r.case_id: r for r in con.execute(select(proposals)).all()}
            sue = con.execute(select(users).where(users.c.username == "sue")).one()
        assert sorted(r.version for r in rows.values()) == [1, 1]
        approved, proposed = rows[1], rows[2]
        assert approved.outcome == "approved" and approved.report_sha256 == hashlib.sha256(XML.encode()).hexdigest()
        assert proposed.outcome is None and proposed.text == "report text of proposed"
        supervisor = User(sue.id, "sue", "sue", "supervisor", "aml")
        assert case_ops.report_xml(ov, supervisor, 1) == XML.encode()
    finally:
        ov.close()
    if db_url.startswith("sqlite"):
        assert IBAN.encode() not in _file_bytes(db_url)

    again = Oversight.open(store, db_url)  # nothing left to do: no second version, no second entry
    try:
        with again.engine.connect() as con:
            assert len(con.execute(select(proposals)).all()) == 2
    finally:
        again.close()


def test_without_the_key_the_clear_reports_wait_and_say_so(
    db_url: str,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = tmp_path / "s.duckdb"
    _old_database(db_url)
    ov = Oversight.open(store, db_url)
    try:
        with ov.engine.connect() as con:
            assert "report_xml" in {c["name"] for c in inspect(con).get_columns("cases")}
            assert con.execute(select(proposals)).all() == []
    finally:
        ov.close()
    assert "1 goAML reports in clear" in capsys.readouterr().err

    Pseudonymiser.for_store(store)  # this key did not seal them: the report does not open with it
    ov = Oversight.open(store, db_url)
    try:
        with ov.engine.connect() as con:
            assert "report_xml" not in {c["name"] for c in inspect(con).get_columns("cases")}
    finally:
        ov.close()


def test_an_upgraded_proposed_case_is_approved_by_its_version(db_url: str, tmp_path: Path) -> None:  # noqa: F811
    store = tmp_path / "s.duckdb"
    Pseudonymiser.for_store(store)
    _old_database(db_url)
    ov = Oversight.open(store, db_url)
    try:
        sue = User(2, "sue", "sue", "supervisor", "aml")
        shown = case_ops.view_case(ov, sue, 2).proposal
        assert shown is not None and shown["version"] == 1
        state = case_ops.act(ov, sue, 2, "approve", seen=shown["sha256"])
        assert state.state == "approved"
    finally:
        ov.close()
