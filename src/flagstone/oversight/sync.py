"""Alerts from the event store become cases in the case database.

Each new alert is copied with its evidence events and the encrypted identities of the parties in
them, so reviewers never need the store itself (DuckDB admits one process at a time), and a case's
evidence outlives the store's retention while the case is held. Alerts already synced are left
alone, except that an open case gains the evidence an ongoing episode added since.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import bindparam, func, insert, select, update

from flagstone.alerts import active_scores
from flagstone.audit.events import CaseCreated
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import case_events, cases, event_key, utcnow, vault
from flagstone.oversight.workflow import CLOSED, OPEN
from flagstone.rules.ir import SEVERITIES
from flagstone.store import Store

SYSTEM = "system"
EVIDENCE_COLUMNS = (
    "source",
    "event_id",
    "ts",
    "kind",
    "actor",
    "counterparty",
    "amount",
    "currency",
    "item",
    "category",
    "quantity",
    "place",
    "channel",
)


@dataclass(frozen=True)
class SyncResult:
    cases: int
    evidence: int
    identities: int


def sync_alerts(ov: Oversight, store: Store | duckdb.DuckDBPyConnection) -> SyncResult:
    """Cases for the store's new alerts; ``store`` may be a connection (the service's absorber passes its own)."""
    con_store = store.con if isinstance(store, Store) else store
    n_evidence = select(func.count()).where(case_events.c.case_id == cases.c.id).scalar_subquery()
    with ov.engine.connect() as con:
        known = {
            r.alert_id: (r.id, r.state, r.n)
            for r in con.execute(select(cases.c.alert_id, cases.c.id, cases.c.state, n_evidence.label("n")))
        }
        have_identity = set(con.execute(select(vault.c.pseudonym)).scalars())
    alerts = con_store.execute(
        """SELECT a.alert_id, a.rule_id, a.rule_version, a.severity, a.group_key, a.first_ts, a.last_ts,
                  a."values", a.reason, coalesce(s.finished_at, s.started_at) AS scanned_at, s.finished_at IS NULL,
                  len(a.evidence)
           FROM alerts a LEFT JOIN scans s USING (scan_id) ORDER BY a.first_ts, a.alert_id"""
    ).fetchall()
    # New alerts, and open cases whose alert has gained evidence since (an ongoing episode); the
    # rest are synced already, so their evidence is not read again.
    wanted = [a[:-1] for a in alerts if a[0] not in known or (known[a[0]][1] not in CLOSED and a[-1] > known[a[0]][2])]
    evidence = _evidence(con_store, [a[0] for a in wanted])
    growing = [known[a[0]][0] for a in wanted if a[0] in known]
    now = utcnow()
    new_cases = new_evidence = 0
    new_parties: set[str] = set()
    with ov.engine.begin() as con:
        have_evidence = {
            (r.case_id, r.event_key)
            for r in con.execute(
                select(case_events.c.case_id, case_events.c.event_key).where(case_events.c.case_id.in_(growing))
            )
        }
        for alert_id, rule_id, version, severity, group_key, first_ts, last_ts, values, reason, scanned, live in wanted:
            if alert_id in known:
                case_id = known[alert_id][0]
            else:
                detected = now if live or scanned is None else scanned
                team = ov.config.cases.team_for(rule_id)
                case_id = _insert_case(
                    ov,
                    con,
                    alert_id,
                    rule_id,
                    version,
                    severity,
                    group_key,
                    first_ts,
                    last_ts,
                    values,
                    reason,
                    detected,
                    team,
                    now,
                )
                ov.audit.record(SYSTEM, CaseCreated(case_id, alert_id, rule_id, team), con)
                new_cases += 1
            rows = [r for r in evidence.get(alert_id, []) if (case_id, r["event_key"]) not in have_evidence]
            if rows:
                con.execute(insert(case_events), [{"case_id": case_id, **r} for r in rows])
                new_evidence += len(rows)
                new_parties.update(p for r in rows for p in (r["actor"], r["counterparty"]) if p)
        identities = _identities(con_store, sorted(new_parties - have_identity))
        if identities:
            con.execute(insert(vault), identities)
        _copy_scores(con, active_scores(con_store))
    return SyncResult(new_cases, new_evidence, len(identities))


OUTCOME_STATES = ("approved", "filed", "dismissed")  # decided; the triage features count them
ACCOUNT_FIELDS = ("actor", "counterparty", "account")


def copy_outcomes(ov: Oversight, store: Store) -> int:
    """Copy the decided cases into the store's ``case_outcomes`` (replacing what was there), one
    row per account of the case's group and the time it was decided (filed, else last changed), so
    that triage features can count earlier outcomes of an alert's accounts without the case
    database. The store must be open for writing. Returns the rows written."""
    c = cases.c
    with ov.engine.connect() as con:
        found = con.execute(
            select(c.group_key, c.state, func.coalesce(c.filed_at, c.updated_at)).where(c.state.in_(OUTCOME_STATES))
        ).all()
    rows = [
        (value, state, when)
        for group_key, state, when in found
        for field, _, value in (part.partition("=") for part in str(group_key).split(", "))
        if field in ACCOUNT_FIELDS and value
    ]
    table = pa.table(
        {
            "account": pa.array([r[0] for r in rows], pa.string()),
            "outcome": pa.array([r[1] for r in rows], pa.string()),
            "ts": pa.array([r[2] for r in rows], pa.timestamp("us")),
        }
    )
    with store.transaction() as con_store:
        con_store.execute("DELETE FROM case_outcomes")
        con_store.register("new_case_outcomes", table)
        try:
            con_store.execute("INSERT INTO case_outcomes SELECT account, outcome, ts FROM new_case_outcomes")
        finally:
            con_store.unregister("new_case_outcomes")
    return len(rows)


def _copy_scores(con: Any, scores: dict[str, tuple[float, str, str, bool]]) -> None:
    """Each case gets its alert's score by the active triage model, or none. Only the four score
    columns are written: a score orders the queue and never changes a case's state."""
    c = cases.c
    found = con.execute(select(c.id, c.alert_id, c.priority, c.explanation, c.triage_model, c.review_sample))
    changes = []
    for r in found:
        want = scores.get(r.alert_id, (None, None, None, None))
        if (r.priority, r.explanation, r.triage_model, r.review_sample) != want:
            changes.append({"case": r.id, "p": want[0], "e": want[1], "m": want[2], "r": want[3]})
    if changes:
        stmt = update(cases).where(c.id == bindparam("case"))
        stmt = stmt.values(
            priority=bindparam("p"),
            explanation=bindparam("e"),
            triage_model=bindparam("m"),
            review_sample=bindparam("r"),
        )
        con.execute(stmt, changes)


def _insert_case(
    ov: Oversight, con: Any, alert_id: str, rule_id: str, version: int, severity: str, group_key: str,
    first_ts: datetime, last_ts: datetime, values: Any, reason: str, detected: datetime, team: str, now: datetime,
) -> int:  # fmt: skip
    values_text = values if isinstance(values, str) else json.dumps(values)
    result = con.execute(
        insert(cases).values(
            alert_id=alert_id,
            team=team,
            rule_id=rule_id,
            rule_version=version,
            severity=severity,
            severity_rank=SEVERITIES.index(severity) if severity in SEVERITIES else 0,
            group_key=group_key,
            reason=reason,
            values_json=values_text,
            first_ts=first_ts,
            last_ts=last_ts,
            detected_at=detected,
            deadline=detected + timedelta(days=ov.config.cases.filing_deadline_days),
            state=OPEN,
            updated_at=now,
        )
    )
    return int(result.inserted_primary_key[0])


def _evidence(store: duckdb.DuckDBPyConnection, alert_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not alert_ids:
        return {}
    cols = ", ".join(f"e.{c}" for c in EVIDENCE_COLUMNS)
    rows = store.execute(
        f"""WITH wanted AS (SELECT unnest(?) AS alert_id),
                 ev AS (SELECT a.alert_id, unnest(a.evidence_sources) AS source, unnest(a.evidence) AS event_id
                        FROM alerts a SEMI JOIN wanted USING (alert_id))
            SELECT ev.alert_id, {cols} FROM ev JOIN events e USING (source, event_id)
            ORDER BY ev.alert_id, e.ts, e.source, e.event_id""",
        [alert_ids],
    ).fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for alert_id, *values in rows:
        row = dict(zip(EVIDENCE_COLUMNS, values, strict=True))
        out.setdefault(alert_id, []).append({"event_key": event_key(row["source"], row["event_id"]), **row})
    return out


def _identities(store: duckdb.DuckDBPyConnection, pseudonyms: list[str]) -> list[dict[str, Any]]:
    if not pseudonyms:
        return []
    rows = store.execute(
        "SELECT pseudonym, nonce, ciphertext FROM identities WHERE pseudonym IN (SELECT unnest(?))", [pseudonyms]
    ).fetchall()
    return [{"pseudonym": p, "nonce": bytes(n), "ciphertext": bytes(c)} for p, n, c in rows]
