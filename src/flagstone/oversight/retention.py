"""Retention: events older than the configured period are deleted, unless a case holds them.

Legal hold: the evidence of a case that is still open (open, escalated, proposed, approved), or
whose report was filed less than ``retention.after_filing_days`` ago, is kept, in the store and in
the case database; so is the evidence of an alert that has no case yet (nobody has reviewed it).
Everything else past the cut-off goes: events, quarantined raw records of old batches, released
alerts and service decisions about unheld events, identities no remaining event refers to, and
released cases (dismissed, or filed and past their hold) with their evidence, comments, reveals and
proposals (and the sealed report). The audit log is kept: it is the proof of what was done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import delete, func, select
from sqlalchemy.sql.elements import ColumnElement

from flagstone.audit.events import RetentionPurged
from flagstone.ingest._pseudonym import HEX_DIGITS, PREFIX
from flagstone.oversight.context import Oversight, cli_actor
from flagstone.oversight.schema import case_alerts, case_events, cases, comments, proposals, reveals, utcnow, vault
from flagstone.oversight.workflow import DISMISSED, FILED
from flagstone.store import Store

_PSEUDONYM_RE = f"{PREFIX}[0-9a-f]{{{HEX_DIGITS}}}"


@dataclass
class RetentionResult:
    cutoff: datetime
    dry_run: bool
    events_by_source: dict[str, int] = field(default_factory=dict)
    held: int = 0
    quarantined: int = 0
    alerts: int = 0
    decisions: int = 0
    identities: int = 0
    cases: int = 0

    @property
    def events(self) -> int:
        return sum(self.events_by_source.values())

    def summary_lines(self) -> list[str]:
        verb = "would purge" if self.dry_run else "purged"
        lines = [f"cut-off {self.cutoff:%Y-%m-%d %H:%M:%S} UTC: {verb} {self.events:,} events"]
        lines += [f"  {source}: {n:,}" for source, n in sorted(self.events_by_source.items())]
        lines.append(f"kept under legal hold (open cases, filed reports): {self.held:,} events")
        lines.append(
            f"also {verb}: {self.quarantined:,} quarantined records, {self.alerts:,} alerts, "
            f"{self.decisions:,} service decisions, {self.identities:,} identities, "
            f"{self.cases:,} closed cases past their hold"
        )
        return lines


def run_retention(
    ov: Oversight, store: Store, *, days: int | None = None, as_of: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    now = as_of or utcnow()
    cutoff = now - timedelta(days=days if days is not None else ov.config.retention.days)
    released = _released(now - timedelta(days=ov.config.retention.after_filing_days))
    result = RetentionResult(cutoff, dry_run)
    held = _held_events(ov, released)
    con = store.con
    held_keys = pa.table(  # noqa: F841 (read by DuckDB by name)
        {"source": [s for s, _ in held], "event_id": [e for _, e in held]},
        schema=pa.schema([("source", pa.string()), ("event_id", pa.string())]),
    )
    released_ids = pa.table(  # noqa: F841
        {"alert_id": _released_alerts(ov, released)}, schema=pa.schema([("alert_id", pa.string())])
    )
    con.execute("CREATE OR REPLACE TEMP TABLE released AS SELECT * FROM released_ids")
    # Held: the evidence of every case still held, and of every alert that has no case yet (an
    # alert nobody has reviewed is as open as an open case).
    con.execute(
        """CREATE OR REPLACE TEMP TABLE held AS
           SELECT * FROM held_keys
           UNION SELECT unnest(evidence_sources) AS source, unnest(evidence) AS event_id
           FROM alerts WHERE alert_id NOT IN (SELECT alert_id FROM released)"""
    )
    old = "ts < $cutoff"
    params = {"cutoff": cutoff}
    result.events_by_source = dict(
        con.execute(
            f"SELECT source, count(*) FROM events WHERE {old} AND (source, event_id) NOT IN (SELECT * FROM held) "
            "GROUP BY source",
            params,
        ).fetchall()
    )
    result.held = int(
        con.execute(
            f"SELECT count(*) FROM events SEMI JOIN held USING (source, event_id) WHERE {old}", params
        ).fetchone()[0]  # type: ignore[index]
    )
    old_batches = "batch_id IN (SELECT batch_id FROM ingest_batches WHERE started_at < $cutoff)"
    old_alerts = "last_ts < $cutoff AND alert_id IN (SELECT alert_id FROM released)"
    old_decisions = "received_at < $cutoff AND (source, event_id) NOT IN (SELECT * FROM held)"
    result.quarantined = _count(con, f"SELECT count(*) FROM quarantine WHERE {old_batches}", params)
    result.alerts = _count(con, f"SELECT count(*) FROM alerts WHERE {old_alerts}", params)
    result.decisions = _count(con, f"SELECT count(*) FROM served WHERE {old_decisions}", params)
    kept = f"(SELECT * FROM events WHERE NOT ({old} AND (source, event_id) NOT IN (SELECT * FROM held)))"
    result.identities = _count(con, f"SELECT count(*) FROM identities WHERE {_unreferenced(kept)}", params)
    if dry_run:
        result.cases = _old_released(ov, cutoff, released, count_only=True)
        return result
    with store.transaction():
        con.execute(f"DELETE FROM events WHERE {old} AND (source, event_id) NOT IN (SELECT * FROM held)", params)
        con.execute(f"DELETE FROM quarantine WHERE {old_batches}", params)
        con.execute(f"DELETE FROM alerts WHERE {old_alerts}", params)
        con.execute(f"DELETE FROM served WHERE {old_decisions}", params)
        con.execute(f"DELETE FROM identities WHERE {_unreferenced('events')}")
    result.cases = _old_released(ov, cutoff, released, count_only=False)
    ov.audit.record(
        cli_actor(),
        RetentionPurged(
            str(store.path), cutoff.isoformat(), result.events, result.held, result.identities, result.cases
        ),
    )
    return result


def _unreferenced(events: str) -> str:
    """Identities no row of ``events`` nor any entity names, in a field or inside attrs."""
    return f"""pseudonym NOT IN (
        SELECT actor FROM {events} WHERE actor IS NOT NULL
        UNION SELECT counterparty FROM {events} WHERE counterparty IS NOT NULL
        UNION SELECT entity FROM entities
        UNION SELECT unnest(regexp_extract_all(CAST(attrs AS VARCHAR), '{_PSEUDONYM_RE}')) FROM {events}
        WHERE attrs IS NOT NULL)"""


def _count(con: Any, sql: str, params: dict[str, Any] | None = None) -> int:
    return int(con.execute(sql, params or {}).fetchone()[0])


def _released(filed_before: datetime) -> ColumnElement[bool]:
    """Cases that hold nothing any more: dismissed, or filed longer ago than the hold after filing."""
    return (cases.c.state == DISMISSED) | ((cases.c.state == FILED) & (cases.c.filed_at < filed_before))


def _held_events(ov: Oversight, released: ColumnElement[bool]) -> list[tuple[str, str]]:
    with ov.engine.connect() as con:
        rows = con.execute(
            select(case_events.c.source, case_events.c.event_id)
            .join(cases, cases.c.id == case_events.c.case_id)
            .where(~released)
            .distinct()
        ).all()
    return [(r.source, r.event_id) for r in rows]


def _released_alerts(ov: Oversight, released: ColumnElement[bool]) -> list[str]:
    """Every alert of the released cases (a case holds its scheme's alerts, case_alerts)."""
    with ov.engine.connect() as con:
        query = select(case_alerts.c.alert_id).join(cases, cases.c.id == case_alerts.c.case_id).where(released)
        return list(con.execute(query).scalars())


def _old_released(ov: Oversight, cutoff: datetime, released: ColumnElement[bool], *, count_only: bool) -> int:
    """Released cases whose alert the store purges too (last event before the cut-off) go, with
    what hangs off them; a later sync cannot bring them back."""
    with ov.engine.begin() as con:
        ids = list(con.execute(select(cases.c.id).where(released, cases.c.last_ts < cutoff)).scalars())
        if count_only or not ids:
            return len(ids)
        for table in (case_events, case_alerts, comments, reveals, proposals):
            con.execute(delete(table).where(table.c.case_id.in_(ids)))
        con.execute(delete(cases).where(cases.c.id.in_(ids)))
        still = select(func.coalesce(case_events.c.actor, "")).union(
            select(func.coalesce(case_events.c.counterparty, ""))
        )
        con.execute(delete(vault).where(vault.c.pseudonym.not_in(still)))
    return len(ids)
