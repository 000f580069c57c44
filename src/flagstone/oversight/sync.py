"""Alerts from the event store become cases in the case database: one case per scheme (alerts
that show the same payments, schemes.py), which its later alerts join while it is open.

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

from flagstone.alerts import SCAN_RULES_SQL, active_scores
from flagstone.audit.events import AlertJoinedCase, CaseCreated
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import case_alerts, case_events, cases, event_key, utcnow, vault
from flagstone.oversight.workflow import CLOSED, OPEN
from flagstone.rules.ir import SEVERITIES
from flagstone.store import Store, has_table

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
    """Cases for the store's new alerts; ``store`` may be a connection (the service's absorber
    passes its own). A new alert joins the open case that holds an alert of its scheme (the
    store's ``schemes``, schemes.py); otherwise it makes a new case."""
    con_store = store.con if isinstance(store, Store) else store
    with ov.engine.connect() as con:
        known = {
            r.alert_id: (r.case_id, r.state, r.evidence_count)
            for r in con.execute(
                select(case_alerts.c.alert_id, case_alerts.c.case_id, cases.c.state, case_alerts.c.evidence_count).join(
                    cases, cases.c.id == case_alerts.c.case_id
                )
            )
        }
        have_identity = set(con.execute(select(vault.c.pseudonym)).scalars())
    alerts = [Alert(*row) for row in con_store.execute(_alerts_sql(con_store)).fetchall()]
    # New alerts, and alerts of open cases that have gained evidence since (an ongoing episode);
    # the rest are synced already, so their evidence is not read again.
    wanted = [
        a
        for a in alerts
        if a.alert_id not in known or (known[a.alert_id][1] not in CLOSED and a.n > known[a.alert_id][2])
    ]
    evidence = _evidence(con_store, [a.alert_id for a in wanted])
    # The open case of each scheme: where a new alert of that scheme goes.
    open_case: dict[str, int] = {}
    for a in alerts:
        if a.alert_id in known and known[a.alert_id][1] not in CLOSED:
            open_case.setdefault(a.scheme_id, known[a.alert_id][0])
    now = utcnow()
    new_cases = new_evidence = 0
    new_parties: set[str] = set()
    with ov.engine.begin() as con:
        # The evidence each touched case holds already (an alert may join a case, or grow).
        touched = {known[a.alert_id][0] for a in wanted if a.alert_id in known}
        touched |= {open_case[a.scheme_id] for a in wanted if a.scheme_id in open_case}
        have_evidence = {
            (r.case_id, r.event_key)
            for r in con.execute(
                select(case_events.c.case_id, case_events.c.event_key).where(case_events.c.case_id.in_(touched))
            )
        }
        for a in wanted:
            if a.alert_id in known:
                case_id = known[a.alert_id][0]
                con.execute(
                    update(case_alerts)
                    .where(case_alerts.c.alert_id == a.alert_id)
                    .values(evidence_count=a.n, last_ts=a.last_ts)
                )
            elif a.scheme_id in open_case:
                case_id = open_case[a.scheme_id]
                _join_case(con, case_id, a, now)
                ov.audit.record(SYSTEM, AlertJoinedCase(case_id, a.alert_id, a.rule_id), con)
            else:
                team = ov.config.cases.team_for(a.rule_id)
                detected = now if a.live or a.scanned is None else a.scanned
                case_id = _insert_case(ov, con, a, detected, team, now)
                ov.audit.record(SYSTEM, CaseCreated(case_id, a.alert_id, a.rule_id, team), con)
                open_case[a.scheme_id] = case_id
                new_cases += 1
            rows = [r for r in evidence.get(a.alert_id, []) if (case_id, r["event_key"]) not in have_evidence]
            if rows:
                con.execute(insert(case_events), [{"case_id": case_id, **r} for r in rows])
                have_evidence.update((case_id, r["event_key"]) for r in rows)
                new_evidence += len(rows)
                new_parties.update(p for r in rows for p in (r["actor"], r["counterparty"]) if p)
        identities = _identities(con_store, sorted(new_parties - have_identity))
        if identities:
            con.execute(insert(vault), identities)
        _copy_scores(con, active_scores(con_store))
    return SyncResult(new_cases, new_evidence, len(identities))


@dataclass(frozen=True)
class Alert:
    """A stored alert as sync reads it (``_alerts_sql``)."""

    alert_id: str
    rule_id: str
    rule_version: int
    severity: str
    group_key: str
    first_ts: datetime
    last_ts: datetime
    values: Any
    reason: str
    scanned: datetime | None  # when its scan finished (or started, while it runs)
    live: bool  # its scan is still running: the real-time service's
    n: int  # evidence events
    scheme_id: str
    typologies: str  # the rule's declared typologies as its scan recorded them, ", "-joined


def _alerts_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The store's alerts as ``Alert`` reads them; a store opened read-only before schemes existed
    links no alerts (each is its own scheme)."""
    schemes = "schemes" if has_table(con, "schemes") else "(SELECT NULL AS alert_id, NULL AS scheme_id WHERE false)"
    return f"""
SELECT a.alert_id, a.rule_id, a.rule_version, a.severity, a.group_key, a.first_ts, a.last_ts, a."values", a.reason,
       coalesce(s.finished_at, s.started_at) AS scanned_at, s.finished_at IS NULL, len(a.evidence),
       coalesce(sc.scheme_id, a.alert_id), array_to_string(coalesce(r.typologies, []), ', ')
FROM alerts a LEFT JOIN scans s USING (scan_id) LEFT JOIN {schemes} sc USING (alert_id)
LEFT JOIN ({SCAN_RULES_SQL}) r ON r.scan_id = a.scan_id AND r.rule_id = a.rule_id
ORDER BY a.first_ts, a.alert_id"""


def _join_case(con: Any, case_id: int, a: Alert, now: datetime) -> None:
    """``a`` joins case ``case_id``: listed with it; the case spans its period and takes its
    severity when that is higher."""
    con.execute(insert(case_alerts).values(**_alert_row(a, case_id, now)))
    c = cases.c
    case = con.execute(select(c.first_ts, c.last_ts, c.severity_rank).where(c.id == case_id)).one()
    rank = _rank(a.severity)
    changes: dict[str, Any] = {"first_ts": min(case.first_ts, a.first_ts), "last_ts": max(case.last_ts, a.last_ts)}
    if rank > case.severity_rank:
        changes.update(severity=a.severity, severity_rank=rank)
    con.execute(update(cases).where(c.id == case_id).values(**changes))


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def _alert_row(a: Alert, case_id: int, now: datetime) -> dict[str, Any]:
    return {
        "alert_id": a.alert_id,
        "case_id": case_id,
        "rule_id": a.rule_id,
        "rule_version": a.rule_version,
        "severity": a.severity,
        "group_key": a.group_key,
        "reason": a.reason,
        "values_json": a.values if isinstance(a.values, str) else json.dumps(a.values),
        "typologies": a.typologies,
        "first_ts": a.first_ts,
        "last_ts": a.last_ts,
        "evidence_count": a.n,
        "added_at": now,
    }


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
    store.replace_rows("case_outcomes", table)
    return len(rows)


def _copy_scores(con: Any, scores: dict[str, tuple[float, str, str, bool]]) -> None:
    """Each case gets the score of its highest-priority alert by the active triage model (in the
    review sample when any of its alerts is), or none. Only the four score columns are written: a
    score orders the queue and never changes a case's state."""
    c = cases.c
    best: dict[int, tuple[float, str, str, bool]] = {}
    for case_id, alert_id in con.execute(select(case_alerts.c.case_id, case_alerts.c.alert_id)):
        if alert_id in scores:
            mine, had = scores[alert_id], best.get(case_id)
            if had is None or mine[0] > had[0]:
                best[case_id] = (*mine[:3], mine[3] or (had is not None and had[3]))
            elif mine[3] and not had[3]:
                best[case_id] = (*had[:3], True)
    changes = []
    for r in con.execute(select(c.id, c.priority, c.explanation, c.triage_model, c.review_sample)):
        want = best.get(r.id, (None, None, None, None))
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


def _insert_case(ov: Oversight, con: Any, a: Alert, detected: datetime, team: str, now: datetime) -> int:
    row = _alert_row(a, 0, now)
    result = con.execute(
        insert(cases).values(
            alert_id=a.alert_id,
            team=team,
            rule_id=a.rule_id,
            rule_version=a.rule_version,
            severity=a.severity,
            severity_rank=_rank(a.severity),
            group_key=a.group_key,
            reason=a.reason,
            values_json=row["values_json"],
            first_ts=a.first_ts,
            last_ts=a.last_ts,
            detected_at=detected,
            deadline=detected + timedelta(days=ov.config.cases.filing_deadline_days),
            state=OPEN,
            updated_at=now,
        )
    )
    case_id = int(result.inserted_primary_key[0])
    con.execute(insert(case_alerts).values(**{**row, "case_id": case_id}))
    return case_id


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
