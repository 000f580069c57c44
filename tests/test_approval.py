"""An approval binds to what the approver read, and an approved report rests only encrypted (issue
13, items 5 and 8), on both case databases.

- The race: the approver opens the case page (its approve form names proposal v1); the proposer
  withdraws v1 and proposes other text (v2); the old form is refused with 409, nothing changes,
  and the case page and history show v2 replacing v1, withdrawn after the approver opened it.
- Evidence a sync adds after a proposal is kept out of that version and its report (frozen), and
  shown apart.
- After approval, no party's identity appears in the case database's bytes (SQLite file and WAL)
  or rows (PostgreSQL); the report still downloads byte for byte as approved, before and after
  filing, after a restart and a configuration change; with the wrong key it fails clearly.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
from oversight_data import CONFIG, Setup, approve
from sqlalchemy import select, text, update
from web_client import form, login

from flagstone.config import Config, ReportingEntityConfig
from flagstone.ingest import Pseudonymiser
from flagstone.oversight import cases as ops
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import audit_entries, case_events, cases, metadata, proposals, vault
from flagstone.oversight.sync import sync_alerts
from flagstone.oversight.workflow import StaleProposal, WorkflowError
from flagstone.store import Store
from flagstone.web import create_web_app

STALE = "the proposal changed since you opened it: reload and read again"


def aml_cases(s: Setup) -> list[Any]:
    """The AML cases with at least two evidence events and a counterparty."""
    with s.ov.engine.connect() as con:
        rows = con.execute(select(cases).where(cases.c.team == "aml").order_by(cases.c.id)).all()
        found = []
        for row in rows:
            ev = con.execute(select(case_events).where(case_events.c.case_id == row.id)).all()
            if len(ev) > 1 and any(e.counterparty for e in ev):
                found.append(row)
    assert len(found) > 1, "the demo has too few AML cases with counterparties"
    return found


def aml_case(s: Setup) -> Any:
    return aml_cases(s)[0]


def audited(s: Setup, action: str) -> list[dict[str, Any]]:
    with s.ov.engine.connect() as con:
        rows = con.execute(select(audit_entries).where(audit_entries.c.action == action)).all()
    return [{**r._mapping, "details": json.loads(r.details)} for r in rows]


def transaction_numbers(xml: bytes) -> set[str]:
    return {t.findtext("transactionnumber") or "" for t in ET.fromstring(xml).iter("transaction")}


# -- 5. the stale approval ------------------------------------------------------------------------


def test_an_approve_form_opened_before_a_withdraw_and_repropose_is_refused(setup: Setup) -> None:
    s = setup
    case = aml_case(s)
    cid = case.id
    app = create_web_app(s.ov)
    sue = login(app, "sue")
    ops.act(s.ov, s.users["sam"], cid, "propose", "v1: deposits split to stay under the threshold")

    opened = sue.get(f"/cases/{cid}")  # sue reads v1; her approve form is now open
    assert opened.status_code == 200 and "v1: deposits split" in opened.text
    stale_form = form(opened.text, f"/cases/{cid}/approve")
    assert stale_form.get("csrf_token")

    ops.act(s.ov, s.users["sam"], cid, "reject", "withdrawn to reword")
    ops.act(s.ov, s.users["sam"], cid, "propose", "v2: different text the approver never read")

    r = sue.post(f"/cases/{cid}/approve", data=stale_form)
    assert r.status_code == 409, r.status_code
    assert STALE in r.text and "you opened v1, withdrawn at" in r.text and "the case now holds v2" in r.text
    with s.ov.engine.connect() as con:
        state = con.execute(select(cases.c.state, cases.c.approver_id).where(cases.c.id == cid)).one()
    assert tuple(state) == ("proposed", None)  # nothing approved, so no report at all
    r = sue.get(f"/cases/{cid}/report.xml")
    assert r.status_code == 409 and "no approved report" in r.text
    [stale] = audited(s, "approval_stale")
    assert (stale["actor"], stale["target"], stale["details"]["current_version"]) == ("sue", str(cid), 2)

    # Reloading shows v2 as replacing v1, withdrawn after sue had opened it; both in the history.
    page = sue.get(f"/cases/{cid}").text
    assert re.search(r"Proposal v2 · .* · replaces v1, withdrawn by sam at [\d-]+ [\d:]+ UTC after sue had opened it",
                     page), page[page.find("proposal-version") - 100 : page.find("proposal-version") + 600]  # fmt: skip
    assert "v1: deposits split" in page and "v2: different text" in page  # both versions listed
    history = page[page.index('id="history"') :]
    assert "report_proposed v1" in history and "report_rejected v1 (withdrawn)" in history
    assert "report_proposed v2" in history
    [rejected] = audited(s, "report_rejected")
    assert rejected["details"]["outcome"] == "withdrawn" and rejected["details"]["held_by"] == ["sue"]

    # Approving what the reloaded page shows approves v2, and the report carries v2's text only.
    assert sue.post(f"/cases/{cid}/approve", data=form(page, f"/cases/{cid}/approve")).status_code == 303
    xml = sue.get(f"/cases/{cid}/report.xml").content
    assert b"v2: different text" in xml and b"v1: deposits split" not in xml
    [approved] = audited(s, "report_approved")
    assert approved["details"]["version"] == 2
    assert approved["details"]["report_sha256"] == hashlib.sha256(xml).hexdigest()


def test_an_approval_that_names_no_proposal_is_refused(setup: Setup) -> None:
    s = setup
    cid = aml_case(s).id
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring")
    client = login(create_web_app(s.ov), "sue")
    page = client.get(f"/cases/{cid}").text
    fields = form(page, f"/cases/{cid}/approve")
    for bad in ("", "0" * 64, fields["proposal"][:-1] + "x"):  # none, another's, a near miss
        r = client.post(f"/cases/{cid}/approve", data={**fields, "proposal": bad})
        assert r.status_code == 409 and STALE in r.text
    assert client.post(f"/cases/{cid}/approve", data=fields).status_code == 303


def test_the_same_text_proposed_again_is_a_new_version_to_read(setup: Setup) -> None:
    """Withdrawn and proposed again word for word: still another version (another identity)."""
    s = setup
    cid = aml_case(s).id
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring")
    v1 = ops.view_case(s.ov, s.users["sue"], cid).proposal
    ops.act(s.ov, s.users["sam"], cid, "reject", "withdrawn")
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring")
    v2 = ops.view_case(s.ov, s.users["sue"], cid).proposal
    assert v1 and v2 and (v1["text"], v1["evidence_keys"]) == (v2["text"], v2["evidence_keys"])
    with pytest.raises(StaleProposal, match="you opened v1, withdrawn at"):
        ops.act(s.ov, s.users["sue"], cid, "approve", seen=v1["sha256"])
    assert ops.act(s.ov, s.users["sue"], cid, "approve", seen=v2["sha256"]).state == "approved"


# -- 5. evidence that grows after the proposal --------------------------------------------------------


def test_evidence_added_after_a_proposal_stays_out_of_it_and_its_report(setup: Setup) -> None:
    s = setup
    case = aml_case(s)
    cid = case.id
    with s.ov.engine.connect() as con:
        before = {(r.source, r.event_id) for r in con.execute(select(case_events).where(case_events.c.case_id == cid))}
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring over three days")
    client = login(create_web_app(s.ov), "sue")
    fields = form(client.get(f"/cases/{cid}").text, f"/cases/{cid}/approve")

    with Store(s.store) as st:  # the alert's episode grows by one event, and a sync copies it
        extra = st.con.execute(
            "SELECT source, event_id FROM events WHERE (source, event_id) NOT IN "
            "(SELECT unnest(evidence_sources), unnest(evidence) FROM alerts) LIMIT 1"
        ).fetchone()
        assert extra is not None
        st.con.execute(
            "UPDATE alerts SET evidence_sources = list_append(evidence_sources, ?), "
            "evidence = list_append(evidence, ?) WHERE alert_id = ?",
            [extra[0], extra[1], case.alert_id],
        )
        assert sync_alerts(s.ov, st).evidence == 1

    page = client.get(f"/cases/{cid}").text
    later = page[page.index('id="later-evidence"') :]
    assert f"{extra[0]}/{extra[1]}" in later.split("</table>")[0]  # listed apart, as not in v1
    assert "Evidence that arrived after proposal v1 (1 events)" in page
    assert form(page, f"/cases/{cid}/approve")["proposal"] == fields["proposal"]  # v1 is unchanged

    assert client.post(f"/cases/{cid}/approve", data=fields).status_code == 303
    xml = client.get(f"/cases/{cid}/report.xml").content
    assert transaction_numbers(xml) == {e for _, e in before}  # exactly the evidence proposed
    assert extra[1] not in transaction_numbers(xml)


def test_an_evidence_row_changed_under_a_proposal_blocks_its_approval(setup: Setup) -> None:
    s = setup
    cid = aml_case(s).id
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring")
    seen = ops.view_case(s.ov, s.users["sue"], cid).proposal
    with s.ov.engine.begin() as con:  # what no Flagstone code does: an event edited in place
        row = con.execute(select(case_events).where(case_events.c.case_id == cid).limit(1)).one()
        con.execute(
            case_events.update()
            .where(case_events.c.case_id == cid, case_events.c.event_id == row.event_id)
            .values(place="somewhere else")
        )
    with pytest.raises(WorkflowError, match="evidence of proposal v1 changed"):
        ops.act(s.ov, s.users["sue"], cid, "approve", seen=seen["sha256"] if seen else None)


# -- 8. the report at rest -------------------------------------------------------------------------


def identities_of(s: Setup, case_id: int) -> list[str]:
    """The real identifiers of the case's parties (decrypted here with the store's key)."""
    p = Pseudonymiser.for_store(s.store)
    with s.ov.engine.connect() as con:
        ev = con.execute(select(case_events).where(case_events.c.case_id == case_id)).all()
        parties = {x for e in ev for x in (e.actor, e.counterparty) if x}
        rows = con.execute(select(vault).where(vault.c.pseudonym.in_(sorted(parties)))).all()
    return [p.decrypt(r.pseudonym, r.nonce, r.ciphertext) for r in rows]


def at_rest(s: Setup) -> bytes:
    """Everything the case database holds: the SQLite file with its WAL, or every PostgreSQL row."""
    url = s.ov.db_url
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        return b"".join(Path(f"{path}{x}").read_bytes() for x in ("", "-wal", "-shm") if Path(f"{path}{x}").exists())
    with s.ov.engine.connect() as con:
        rows = (con.execute(text(f"SELECT CAST(t AS text) FROM {t.name} t")).scalars() for t in metadata.sorted_tables)
        return "\n".join(row for table in rows for row in table).encode("utf-8")


def test_no_identity_of_an_approved_report_rests_in_clear(setup: Setup) -> None:
    s = setup
    cid = aml_case(s).id
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring")
    approve(s, "sue", cid)
    xml = ops.report_xml(s.ov, s.users["sam"], cid)
    names = identities_of(s, cid)
    assert names and all(n.encode() in xml for n in names)  # the report itself names them
    ops.act(s.ov, s.users["sam"], cid, "file")
    data = at_rest(s)
    for name in names:
        assert name.encode() not in data, name
        assert name.encode().hex() not in data.decode("latin-1").lower(), name  # nor as bytea hex
    assert xml not in data and b"<report>" not in data


def test_a_filed_report_downloads_the_same_bytes_later(setup: Setup, tmp_path: Path) -> None:
    s = setup
    cid = aml_case(s).id
    ops.act(s.ov, s.users["sam"], cid, "propose", "structuring")
    approve(s, "sue", cid)
    first = ops.report_xml(s.ov, s.users["sue"], cid)
    ops.act(s.ov, s.users["sam"], cid, "file")
    assert ops.report_xml(s.ov, s.users["sam"], cid) == first
    digest = hashlib.sha256(first).hexdigest()
    assert audited(s, "report_filed")[0]["details"]["sha256"] == digest
    assert audited(s, "report_approved")[0]["details"]["report_sha256"] == digest
    # Another process, with the reporting entity renamed since: still the bytes that were filed.
    renamed = Config(cases=CONFIG.cases, reporting_entity=ReportingEntityConfig(name="Renamed Bank AG"))
    later = Oversight.open(s.store, s.ov.db_url, renamed)
    try:
        assert ops.report_xml(later, s.users["sam"], cid) == first
    finally:
        later.close()
    # A sealed report moved onto another case (by someone who can write the database) does not open.
    other = next(r.id for r in aml_cases(s) if r.id != cid)
    ops.act(s.ov, s.users["sam"], other, "propose", "another")
    approve(s, "sue", other)
    with s.ov.engine.begin() as con:
        mine = con.execute(select(proposals).where(proposals.c.case_id == cid)).one()
        con.execute(
            update(proposals)
            .where(proposals.c.case_id == other)
            .values(report_nonce=mine.report_nonce, report_ciphertext=mine.report_ciphertext,
                    report_sha256=mine.report_sha256)
        )  # fmt: skip
    with pytest.raises(WorkflowError, match="altered or moved from another case"):
        ops.report_xml(s.ov, s.users["sam"], other)
    # Without the key, or with another one: a clear error, never other bytes.
    key = Path(f"{s.store}.key")
    key.rename(tmp_path / "moved.key")
    with pytest.raises(WorkflowError, match="no key"):
        ops.report_xml(s.ov, s.users["sam"], cid)
    key.write_text("11" * 32 + "\n")
    key.chmod(0o600)
    with pytest.raises(WorkflowError, match="not the one"):
        ops.report_xml(s.ov, s.users["sam"], cid)
