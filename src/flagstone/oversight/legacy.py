"""Cases an older Flagstone left behind, brought under proposal versions and sealed reports.

Before proposal versions, a proposed case held its text in ``cases.proposal`` alone, and approval
kept the goAML report in clear in ``cases.report_xml``, with the parties' real identifiers. When
such a database opens here, every proposed, approved or filed case without a version gets one (v1,
its current evidence frozen, as if proposed now), so that it can be approved or downloaded the way
new cases are; and every clear report is encrypted with the store's key beside its SHA-256, and the
clear column dropped (on SQLite the file is vacuumed, so the freed pages keep no copy).

The tables are brought forward before this, by the migrations (:mod:`flagstone.oversight.migrations`,
revision 0002), which keep ``cases.report_xml`` only while it holds a report. These steps are no
migration because sealing needs the store's key, which only :class:`Oversight` has. Where it is
missing, the clear reports stay as they are, and this is said on stderr each time the database
opens, until it is opened where the key is.
"""

from __future__ import annotations

import hashlib
import json
import sys
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, inspect, select, text

from flagstone.errors import InputError
from flagstone.ingest import Pseudonymiser
from flagstone.oversight import proposals
from flagstone.oversight.schema import cases, users
from flagstone.oversight.schema import proposals as proposal_table
from flagstone.oversight.workflow import APPROVED, FILED, PROPOSED

if TYPE_CHECKING:  # context opens the database and calls this module: only a type here
    from flagstone.oversight.context import Oversight

_CLEAR = "report_xml"
_ENDED = "approved before proposal versions (an older Flagstone); its report sealed on upgrade"


def bring_forward(ov: Oversight) -> list[str]:
    """Give older cases their version and seal clear reports; what was done, one line a change
    (the caller audits it with the rest of the database's upgrade)."""
    with ov.engine.begin() as con:
        clear = _CLEAR in {c["name"] for c in inspect(con).get_columns("cases")}
        reports = _clear_reports(con) if clear else {}
        cipher = _key(ov) if reports else None
        if reports and cipher is None:
            print(
                f"flagstone: the case database keeps {len(reports)} goAML reports in clear (made by an older "
                f"Flagstone); they are sealed when it is opened where the store's key is ({ov.store_path}.key)",
                file=sys.stderr,
            )
            return []
        versioned = _version_older_cases(con, reports, cipher)
        if clear:
            con.execute(text(f"ALTER TABLE cases DROP COLUMN {_CLEAR}"))
    notes = []
    if versioned:
        notes.append(f"gave {versioned} proposed, approved or filed cases their proposal version (v1)")
    if clear:
        sealed = f"sealed {len(reports)} goAML reports kept in clear by an older Flagstone; " if reports else ""
        notes.append(f"{sealed}dropped cases.{_CLEAR}")
        if ov.engine.dialect.name == "sqlite":
            _vacuum(ov)
    return notes


def _clear_reports(con: Connection) -> dict[int, str]:
    rows = con.execute(text(f"SELECT id, {_CLEAR} FROM cases WHERE {_CLEAR} IS NOT NULL")).all()
    return {int(r[0]): str(r[1]) for r in rows}


def _key(ov: Oversight) -> Pseudonymiser | None:
    try:
        return Pseudonymiser.for_store(ov.store_path, create=False)
    except InputError:
        return None


def _version_older_cases(con: Connection, reports: dict[int, str], cipher: Pseudonymiser | None) -> int:
    have = set(con.execute(select(proposal_table.c.case_id).distinct()).scalars())
    older = con.execute(
        select(cases).where(cases.c.state.in_((PROPOSED, APPROVED, FILED)), cases.c.proposer_id.is_not(None))
    ).all()
    names = {r.id: r.username for r in con.execute(select(users.c.id, users.c.username))}
    done = 0
    for case in older:
        if case.id in have:
            continue
        rows = proposals.evidence(con, case.id)
        text_ = case.proposal or ""
        values: dict[str, Any] = {
            "case_id": case.id,
            "version": 1,
            "text": text_,
            "proposer_id": case.proposer_id,
            "proposed_at": case.updated_at,
            "audit_seq": 0,
            "evidence": json.dumps([[r["source"], r["event_id"]] for r in rows]),
            "sha256": proposals.digest(case, 1, names.get(case.proposer_id, ""), text_, rows),
        }
        if case.state in (APPROVED, FILED):
            values.update(outcome=proposals.APPROVED, ended_by=case.approver_id, ended_at=case.updated_at)
            values.update(end_reason=_ENDED, held_by="[]")
            xml = reports.get(case.id)
            if xml is not None and cipher is not None:
                nonce, sealed = cipher.encrypt(proposals.bound(case.id, 1), xml)
                values.update(report_nonce=nonce, report_ciphertext=sealed)
                values.update(report_sha256=hashlib.sha256(xml.encode("utf-8")).hexdigest())
        con.execute(insert(proposal_table).values(**values))
        done += 1
    return done


def _vacuum(ov: Oversight) -> None:
    """Rewrite the SQLite file, so that pages the dropped column freed keep no clear report."""
    raw = ov.engine.raw_connection()
    try:
        raw.execute("VACUUM")  # type: ignore[attr-defined]
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[attr-defined]
    finally:
        raw.close()
