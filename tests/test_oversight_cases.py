"""Cases on both case databases (SQLite and PostgreSQL): sync from alerts, team isolation, the
four-eyes report path to goAML XML, reveals with reasons, lock-out, and an intact audit log after
all of it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oversight_data import PASSWORD, Setup, approve, clone_case
from sqlalchemy import func, select

from flagstone.audit import verify
from flagstone.ingest import Pseudonymiser
from flagstone.oversight import cases as ops
from flagstone.oversight.goaml import validate
from flagstone.oversight.schema import audit_entries, case_alerts, case_events, cases, vault
from flagstone.oversight.sync import sync_alerts
from flagstone.oversight.users import LoginError, authenticate, unlock
from flagstone.oversight.workflow import StaleProposal, WorkflowError
from flagstone.store import Store


def audited(s: Setup, action: str) -> list[dict[str, object]]:
    with s.ov.engine.connect() as con:
        rows = con.execute(select(audit_entries).where(audit_entries.c.action == action)).all()
    return [dict(r._mapping) for r in rows]


def first_case(s: Setup, team: str, **where: object) -> int:
    with s.ov.engine.connect() as con:
        q = select(cases.c.id).where(cases.c.team == team).order_by(cases.c.id)
        for k, v in where.items():
            q = q.where(cases.c[k] == v)
        return int(con.execute(q.limit(1)).scalar_one())


def test_sync_makes_one_case_per_alert_with_its_evidence(setup: Setup) -> None:
    s = setup
    with Store(s.store, read_only=True) as st:
        alerts = st.con.execute("SELECT alert_id, len(evidence) FROM alerts").fetchall()
        again = sync_alerts(s.ov, st)
    assert again.cases == 0 and again.evidence == 0  # a second sync adds nothing
    with s.ov.engine.connect() as con:
        n_cases = con.execute(select(func.count()).select_from(cases)).scalar_one()
        per_case = dict(
            con.execute(
                select(cases.c.alert_id, func.count())
                .join(case_events, case_events.c.case_id == cases.c.id)
                .group_by(cases.c.alert_id)
            ).all()
        )
        teams = set(con.execute(select(cases.c.team)).scalars())
        parties = set(con.execute(select(case_events.c.actor)).scalars()) - {None}
        held = set(con.execute(select(vault.c.pseudonym)).scalars())
    assert n_cases == len(alerts) > 0
    assert per_case == {a: n for a, n in alerts}
    assert teams <= {"aml", "precursors", "transit"} and "aml" in teams
    assert parties <= held  # every party's encrypted identity came along
    assert len(audited(s, "case_created")) == n_cases


def test_other_teams_cases_are_not_found_and_the_attempt_is_audited(setup: Setup) -> None:
    s = setup
    aml_case = first_case(s, "aml")
    with pytest.raises(ops.NotFound):
        ops.view_case(s.ov, s.users["pat"], aml_case)  # precursors analyst, aml case
    with pytest.raises(ops.NotFound):
        ops.act(s.ov, s.users["pia"], aml_case, "comment", "hello")
    with pytest.raises(ops.NotFound):
        ops.view_case(s.ov, s.users["ana"], 999_999)
    assert all(c.team == "precursors" for c in ops.queue(s.ov, s.users["pat"], state=""))
    assert all(c.team == "aml" for c in ops.queue(s.ov, s.users["ana"], state=""))
    assert {c.team for c in ops.queue(s.ov, s.users["aud"], state="")} >= {"aml", "precursors"}
    with pytest.raises(ops.Forbidden):
        ops.queue(s.ov, s.users["adm"])  # admins see no case data
    with pytest.raises(ops.Forbidden):
        ops.act(s.ov, s.users["aud"], aml_case, "comment", "auditors only read")
    failures = audited(s, "authorisation_failed")
    assert len(failures) == 5
    assert any("belongs to team aml" in str(f["details"]) for f in failures)


def test_four_eyes_report_reaches_goaml_xml(setup: Setup) -> None:
    s = setup
    case_id = first_case(s, "aml", rule_id="aml.structuring")
    ana, sam, sue = s.users["ana"], s.users["sam"], s.users["sue"]
    ops.act(s.ov, ana, case_id, "assign", assignee="ana")
    ops.act(s.ov, ana, case_id, "comment", "three deposits just under the threshold")
    ops.act(s.ov, ana, case_id, "escalate", "looks deliberate")
    with pytest.raises(ops.Forbidden):
        ops.act(s.ov, ana, case_id, "approve")  # nothing proposed, and ana is no supervisor
    ops.act(s.ov, sam, case_id, "propose", "structuring: deposits split to stay under 10,000")
    with pytest.raises(ops.Forbidden, match="other than the person who proposed"):
        approve(s, "sam", case_id)
    with pytest.raises(WorkflowError):
        ops.act(s.ov, sue, case_id, "file")  # not approved yet
    with pytest.raises(WorkflowError):
        ops.report_xml(s.ov, sue, case_id)
    with pytest.raises(StaleProposal):
        ops.act(s.ov, sue, case_id, "approve")  # an approval names the proposal it approves
    after = approve(s, "sue", case_id)
    assert (after.state, after.proposer, after.approver) == ("approved", "sam", "sue")
    xml = ops.report_xml(s.ov, sam, case_id)
    validate(xml)
    text = xml.decode()
    assert f"FLAGSTONE-CASE-{case_id}" in text and "<report_code>STR</report_code>" in text
    with pytest.raises(ops.Forbidden):
        ops.report_xml(s.ov, ana, case_id)  # analysts may not download reports
    ops.act(s.ov, sam, case_id, "file")
    view = ops.view_case(s.ov, sam, case_id)
    assert view.case["state"] == "filed"
    actions = [h["action"] for h in view.history]
    for expected in ("case_created", "case_assigned", "case_commented", "case_escalated", "report_proposed",
                     "report_approved", "report_filed"):  # fmt: skip
        assert expected in actions
    # The XML carries the real identifiers (decrypted after approval), not pseudonyms.
    party = view.evidence[0]["actor"]
    assert party not in text
    assert verify(s.ov.engine, s.ov.audit.signer.public).ok


def test_reveal_needs_a_supervisor_a_reason_and_a_party_of_the_case(setup: Setup) -> None:
    s = setup
    case_id = first_case(s, "aml")
    other = first_case(s, "precursors")
    party = ops.view_case(s.ov, s.users["sam"], case_id).parties[0]
    with pytest.raises(ops.Forbidden):
        ops.reveal(s.ov, s.users["ana"], case_id, party, "need to know")
    with pytest.raises(WorkflowError, match="written reason"):
        ops.reveal(s.ov, s.users["sam"], case_id, party, "   ")
    with pytest.raises(ops.NotFound):
        ops.reveal(s.ov, s.users["sam"], other, party, "wrong team")
    outsider = ops.view_case(s.ov, s.users["pia"], other).parties[0]
    with pytest.raises(WorkflowError, match="not a party"):
        ops.reveal(s.ov, s.users["sam"], case_id, outsider, "not in this case")
    value = ops.reveal(s.ov, s.users["sam"], case_id, party, "customer due diligence for the STR")
    # Independent check: the revealed value pseudonymises back to the pseudonym.
    assert Pseudonymiser.for_store(s.store).pseudonymise(value) == party
    assert ops.view_case(s.ov, s.users["sue"], case_id).revealed == {party: value}
    analyst_view = ops.view_case(s.ov, s.users["ana"], case_id)
    assert analyst_view.revealed == {} and party in analyst_view.reveal_reasons
    assert ops.view_case(s.ov, s.users["aud"], case_id).revealed == {}
    # The identity shows only inside this case: another case with the same party shows nothing.
    with s.ov.engine.connect() as con:
        elsewhere = con.execute(
            select(case_events.c.case_id).where(case_events.c.actor == party, case_events.c.case_id != case_id)
        ).first()
    if elsewhere is not None:
        assert ops.view_case(s.ov, s.users["sam"], elsewhere[0]).revealed == {}
    [entry] = audited(s, "identity_revealed")
    assert entry["actor"] == "sam" and "customer due diligence" in str(entry["details"])


def test_dismiss_needs_a_reason_and_closes_the_case(setup: Setup) -> None:
    s = setup
    case_id = first_case(s, "aml")
    with pytest.raises(WorkflowError):
        ops.act(s.ov, s.users["ana"], case_id, "dismiss", "")
    ops.act(s.ov, s.users["ana"], case_id, "dismiss", "known customer, salary split by employer")
    assert case_id not in [c.id for c in ops.queue(s.ov, s.users["ana"])]
    assert case_id in [c.id for c in ops.queue(s.ov, s.users["ana"], state="dismissed")]
    with pytest.raises(WorkflowError):
        ops.act(s.ov, s.users["abe"], case_id, "propose", "after all")


def test_brute_force_locks_the_account(setup: Setup) -> None:
    s = setup
    for _ in range(s.ov.config.security.lockout_attempts):
        with pytest.raises(LoginError, match="wrong user name or password"):
            authenticate(s.ov, "ana", "guess" * 3)
    with pytest.raises(LoginError, match="locked"):
        authenticate(s.ov, "ana", PASSWORD)  # even the right password, while locked
    unlock(s.ov, "adm", "ana")
    assert authenticate(s.ov, "ana", PASSWORD).username == "ana"
    with pytest.raises(LoginError):
        authenticate(s.ov, "nobody", PASSWORD)
    failed = audited(s, "login_failed")
    assert len(failed) == s.ov.config.security.lockout_attempts + 2
    assert "locked" in str(failed[s.ov.config.security.lockout_attempts - 1]["details"])


# Every action, the report steps more often, so that sequences reach approval and filing; "view"
# opens the case page, whose approve form then names the proposal it showed.
ACTIONS = ["comment", "assign", "escalate", "dismiss", "reject", *["view", "propose", "approve", "file"] * 2]


# Mostly the team's own people, with an outsider and an auditor now and then.
ACTORS = ["sam", "sue", "ana", "sam", "sue", "pia", "aud", "sam", "sue"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(ACTORS), st.sampled_from(ACTIONS), st.sampled_from(["because", "", "because"])),
        min_size=1,
        max_size=25,
    )
)
def test_no_sequence_of_requests_files_without_two_people(setup: Setup, steps: list[tuple[str, str, str]]) -> None:
    """The same four-eyes property as tests/test_workflow.py, through the code that writes the
    database (rights, teams, transactions): whatever random people try, a case in the database
    that is approved or filed was proposed and approved by two different people, the approver a
    supervisor of its team; and what was approved is the proposal version the approver's page
    showed (its text and identity), however often it was withdrawn and proposed again meanwhile."""
    s = setup
    case_id = clone_case(s)
    pages: dict[str, dict[str, object] | None] = {}  # the proposal each person's open page shows
    for name, action, text in steps:
        with contextlib.suppress(ops.Refusal, WorkflowError):  # refusals are part of the game
            if action == "view":
                pages[name] = ops.view_case(s.ov, s.users[name], case_id).proposal
                continue
            page = pages.get(name)
            seen = str(page["sha256"]) if page else None
            ops.act(s.ov, s.users[name], case_id, action, text, assignee="ana", seen=seen)
            if action == "approve":
                approved = ops.view_case(s.ov, s.users["aud"], case_id).proposal
                assert approved is not None and page is not None
                assert (approved["sha256"], approved["text"], approved["outcome"]) == (
                    page["sha256"], page["text"], "approved",
                )  # fmt: skip
        with s.ov.engine.connect() as con:
            row = con.execute(select(cases).where(cases.c.id == case_id)).one()
        if row.state in ("approved", "filed"):
            assert row.proposer_id is not None and row.approver_id is not None
            assert row.proposer_id != row.approver_id
            approver = next(u for u in s.users.values() if u.id == row.approver_id)
            assert approver.role == "supervisor" and approver.team == "aml"
        if row.state == "filed":
            assert row.filer_id is not None and ops.report_xml(s.ov, s.users["sam"], case_id)


def test_retention_holds_the_evidence_of_alerts_nobody_has_reviewed_yet(setup: Setup) -> None:
    from datetime import datetime

    from sqlalchemy import delete

    from flagstone.oversight.retention import run_retention

    s = setup
    # One alert without a case (as after `flagstone serve`, before the next sync), one dismissed.
    unsynced, dismissed = first_case(s, "aml"), first_case(s, "precursors")
    with s.ov.engine.begin() as con:
        alert_id = con.execute(select(cases.c.alert_id).where(cases.c.id == unsynced)).scalar_one()
        con.execute(delete(case_events).where(case_events.c.case_id == unsynced))
        con.execute(delete(case_alerts).where(case_alerts.c.case_id == unsynced))
        con.execute(delete(cases).where(cases.c.id == unsynced))
    ops.act(s.ov, s.users["pat"], dismissed, "dismiss", "false positive")
    with Store(s.store) as st:
        evidence = set(
            st.con.execute(
                "SELECT unnest(evidence_sources), unnest(evidence) FROM alerts WHERE alert_id = ?", [alert_id]
            ).fetchall()
        )
        run_retention(s.ov, st, days=1, as_of=datetime(2100, 1, 1))  # everything is old
        left = set(st.con.execute("SELECT source, event_id FROM events").fetchall())
        alerts_left = {r[0] for r in st.con.execute("SELECT alert_id FROM alerts").fetchall()}
    assert evidence and evidence <= left
    assert alert_id in alerts_left
    with s.ov.engine.connect() as con:
        assert con.execute(select(cases.c.id).where(cases.c.id == dismissed)).first() is None


def test_without_the_stores_key_nothing_is_revealed_and_no_key_is_made(setup: Setup) -> None:
    s = setup
    case_id = first_case(s, "aml")
    party = ops.view_case(s.ov, s.users["sam"], case_id).parties[0]
    ops.reveal(s.ov, s.users["sam"], case_id, party, "before the key goes")
    key = Path(f"{s.store}.key")
    key.rename(key.with_suffix(".moved"))
    with pytest.raises(WorkflowError, match="no key"):
        ops.reveal(s.ov, s.users["sam"], case_id, ops.view_case(s.ov, s.users["sam"], case_id).parties[-1], "why")
    assert not key.exists()  # a reveal never makes a key that would decrypt nothing
    assert "not shown" in ops.view_case(s.ov, s.users["sam"], case_id).revealed[party]
    key.write_text("00" * 32 + "\n")  # a different key: decryption fails loudly, not with garbage
    key.chmod(0o600)
    with pytest.raises(WorkflowError, match="not the one"):
        ops.reveal(s.ov, s.users["sam"], case_id, party, "with the wrong key")


def test_a_filed_report_holds_its_evidence_for_the_configured_time_after_filing(setup: Setup) -> None:
    from datetime import timedelta

    from flagstone.oversight.context import utcnow
    from flagstone.oversight.retention import run_retention

    s = setup
    case_id = first_case(s, "aml")
    ops.act(s.ov, s.users["sam"], case_id, "propose", "structuring")
    approve(s, "sue", case_id)
    ops.act(s.ov, s.users["sam"], case_id, "file")
    with s.ov.engine.connect() as con:
        rows = con.execute(select(case_events.c.case_id, case_events.c.source, case_events.c.event_id)).all()
    evidence = {(r.source, r.event_id) for r in rows if r.case_id == case_id}
    # Events that other (open) cases share stay held by them; the rest is this report's alone.
    alone = evidence - {(r.source, r.event_id) for r in rows if r.case_id != case_id}
    assert alone
    hold = timedelta(days=s.ov.config.retention.after_filing_days)
    with Store(s.store) as st:
        run_retention(s.ov, st, days=1, as_of=utcnow() + hold - timedelta(days=1))  # still held
        assert evidence <= set(st.con.execute("SELECT source, event_id FROM events").fetchall())
        run_retention(s.ov, st, days=1, as_of=utcnow() + hold + timedelta(days=1))  # the hold is over
        left = set(st.con.execute("SELECT source, event_id FROM events").fetchall())
    assert not alone & left and evidence - alone <= left
    with s.ov.engine.connect() as con:
        assert con.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is None


def test_an_open_case_gains_the_evidence_its_episode_adds_and_a_closed_one_does_not(setup: Setup) -> None:
    s = setup
    open_id, closed_id = first_case(s, "aml"), first_case(s, "precursors")
    ops.act(s.ov, s.users["pat"], closed_id, "dismiss", "explained")
    with s.ov.engine.connect() as con:
        alert_of = dict(
            con.execute(select(cases.c.id, cases.c.alert_id).where(cases.c.id.in_([open_id, closed_id]))).all()
        )
    with Store(s.store) as st:
        # An event no case holds yet, appended to both alerts as a growing episode would.
        extra = st.con.execute(
            "SELECT source, event_id FROM events WHERE (source, event_id) NOT IN "
            "(SELECT unnest(evidence_sources), unnest(evidence) FROM alerts) LIMIT 1"
        ).fetchone()
        assert extra is not None
        for alert_id in alert_of.values():
            st.con.execute(
                "UPDATE alerts SET evidence_sources = list_append(evidence_sources, ?), "
                "evidence = list_append(evidence, ?) WHERE alert_id = ?",
                [extra[0], extra[1], alert_id],
            )
        result = sync_alerts(s.ov, st)
        again = sync_alerts(s.ov, st)
    assert (result.cases, result.evidence) == (0, 1)
    assert (again.cases, again.evidence) == (0, 0)
    with s.ov.engine.connect() as con:
        holders = set(
            con.execute(
                select(case_events.c.case_id).where(
                    case_events.c.source == extra[0], case_events.c.event_id == extra[1]
                )
            ).scalars()
        )
    assert holders == {open_id}
