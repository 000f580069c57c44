"""Retention: events older than the configured period are deleted, unless a case holds them.

Legal hold: the evidence of a case that is still open (open, escalated, proposed, approved) or
whose report was filed is kept, in the store and in the case database, and so is the evidence of
an alert that has no case yet (nobody has reviewed it). Everything else past the
cut-off goes: events, quarantined raw records of old batches, alerts and service decisions that
only concern old events, identities no remaining event refers to, and dismissed cases with their
evidence, comments and reveals. The audit log is kept: it is the proof of what was done.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
from sqlalchemy import delete, func, select

from flagstone.audit.events import RetentionPurged
from flagstone.ingest._pseudonym import HEX_DIGITS, PREFIX
from flagstone.oversight.context import Oversight, utcnow
from flagstone.oversight.schema import case_events, cases, comments, reveals, vault
from flagstone.oversight.workflow import DISMISSED
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
            f"{self.decisions:,} service decisions, {self.identities:,} identities, {self.cases:,} dismissed cases"
        )
        return lines


def run_retention(
    ov: Oversight, store: Store, *, days: int | None = None, as_of: datetime | None = None, dry_run: bool = False
) -> RetentionResult:
    cutoff = (as_of or utcnow()) - timedelta(days=days if days is not None else ov.config.retention.days)
    result = RetentionResult(cutoff, dry_run)
    held = _held_events(ov)
    con = store.con
    held_keys = pa.table(  # noqa: F841 (read by DuckDB by name)
        {"source": [s for s, _ in held], "event_id": [e for _, e in held]},
        schema=pa.schema([("source", pa.string()), ("event_id", pa.string())]),
    )
    dismissed_ids = pa.table(  # noqa: F841
        {"alert_id": _dismissed_alerts(ov)}, schema=pa.schema([("alert_id", pa.string())])
    )
    con.execute("CREATE OR REPLACE TEMP TABLE dismissed AS SELECT * FROM dismissed_ids")
    # Held: the evidence of every case not dismissed, and of every alert that has no case yet
    # (an alert nobody has reviewed is as open as an open case).
    con.execute(
        """CREATE OR REPLACE TEMP TABLE held AS
           SELECT * FROM held_keys
           UNION SELECT unnest(evidence_sources) AS source, unnest(evidence) AS event_id
           FROM alerts WHERE alert_id NOT IN (SELECT alert_id FROM dismissed)"""
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
    old_alerts = "last_ts < $cutoff AND alert_id IN (SELECT alert_id FROM dismissed)"
    old_decisions = "received_at < $cutoff AND (source, event_id) NOT IN (SELECT * FROM held)"
    result.quarantined = _count(con, f"SELECT count(*) FROM quarantine WHERE {old_batches}", params)
    result.alerts = _count(con, f"SELECT count(*) FROM alerts WHERE {old_alerts}", params)
    result.decisions = _count(con, f"SELECT count(*) FROM served WHERE {old_decisions}", params)
    kept = f"(SELECT * FROM events WHERE NOT ({old} AND (source, event_id) NOT IN (SELECT * FROM held)))"
    result.identities = _count(con, f"SELECT count(*) FROM identities WHERE {_unreferenced(kept)}", params)
    if dry_run:
        result.cases = _old_dismissed(ov, cutoff, count_only=True)
        return result
    with store.transaction():
        con.execute(f"DELETE FROM events WHERE {old} AND (source, event_id) NOT IN (SELECT * FROM held)", params)
        con.execute(f"DELETE FROM quarantine WHERE {old_batches}", params)
        con.execute(f"DELETE FROM alerts WHERE {old_alerts}", params)
        con.execute(f"DELETE FROM served WHERE {old_decisions}", params)
        con.execute(f"DELETE FROM identities WHERE {_unreferenced('events')}")
    result.cases = _old_dismissed(ov, cutoff, count_only=False)
    ov.audit.record(
        _actor(),
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


def _actor() -> str:
    from flagstone.oversight.context import cli_actor

    return cli_actor()


def _held_events(ov: Oversight) -> list[tuple[str, str]]:
    with ov.engine.connect() as con:
        rows = con.execute(
            select(case_events.c.source, case_events.c.event_id)
            .join(cases, cases.c.id == case_events.c.case_id)
            .where(cases.c.state != DISMISSED)
            .distinct()
        ).all()
    return [(r.source, r.event_id) for r in rows]


def _dismissed_alerts(ov: Oversight) -> list[str]:
    with ov.engine.connect() as con:
        return list(con.execute(select(cases.c.alert_id).where(cases.c.state == DISMISSED)).scalars())


def _old_dismissed(ov: Oversight, cutoff: datetime, *, count_only: bool) -> int:
    """Dismissed cases whose alert the store purges too (last event before the cut-off) go, with
    what hangs off them; a later sync cannot bring them back."""
    with ov.engine.begin() as con:
        ids = list(
            con.execute(select(cases.c.id).where(cases.c.state == DISMISSED, cases.c.last_ts < cutoff)).scalars()
        )
        if count_only or not ids:
            return len(ids)
        for table in (case_events, comments, reveals):
            con.execute(delete(table).where(table.c.case_id.in_(ids)))
        con.execute(delete(cases).where(cases.c.id.in_(ids)))
        still = select(func.coalesce(case_events.c.actor, "")).union(
            select(func.coalesce(case_events.c.counterparty, ""))
        )
        con.execute(delete(vault).where(vault.c.pseudonym.not_in(still)))
    return len(ids)
