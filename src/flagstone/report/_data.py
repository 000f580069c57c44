"""What the report shows, read from the store in a few aggregate queries.

Only pseudonyms ever leave the store here: the identities table is never read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from flagstone.evaluate import current_alerts_sql
from flagstone.store import Store

# Most severe first; unknown severities sort after these.
SEVERITIES = ("critical", "high", "medium", "low", "info")
_RANK = "CASE severity " + " ".join(f"WHEN '{s}' THEN {i}" for i, s in enumerate(SEVERITIES)) + " ELSE 99 END"


@dataclass(frozen=True)
class SourceStats:
    source: str
    events: int
    first: datetime | None
    last: datetime | None


@dataclass(frozen=True)
class GroupStats:
    group_key: str
    alerts: int
    rules: list[str]
    top_severity: str
    first: datetime
    last: datetime


@dataclass(frozen=True)
class EvidenceEvent:
    source: str
    event_id: str
    ts: datetime | None  # None when the event is no longer in the store
    kind: str | None
    amount: Decimal | None
    currency: str | None
    quantity: Decimal | None
    item: str | None
    category: str | None
    place: str | None


@dataclass
class AlertView:
    alert_id: str
    rule_id: str
    rule_version: int
    severity: str
    group_key: str
    first_ts: datetime
    last_ts: datetime
    fire: tuple[str, str]
    values: dict[str, Any]
    reason: str
    evidence: list[EvidenceEvent] = field(default_factory=list)


@dataclass
class ReportData:
    sources: list[SourceStats]
    entities: int
    alerts: int
    scans: int
    by_rule: list[tuple[str, str, int, datetime, datetime]]  # rule, severity, alerts, first, last
    by_day: list[tuple[str, datetime, int]]  # rule, day, alerts
    by_severity: list[tuple[str, int]]
    groups: list[GroupStats]
    n_groups: int
    shown: list[AlertView]


def load(store: Store, *, top_alerts: int, top_groups: int, param_sets: Mapping[str, str] | None = None) -> ReportData:
    con = store.con
    cur = f"({current_alerts_sql(param_sets)})"
    sources = [
        SourceStats(*row)
        for row in con.execute(
            "SELECT source, count(*), min(ts), max(ts) FROM events GROUP BY source ORDER BY source"
        ).fetchall()
    ]
    entities = _scalar(store, "SELECT count(*) FROM entities")
    alerts = _scalar(store, f"SELECT count(*) FROM {cur}")
    scans = _scalar(store, "SELECT count(*) FROM scans")
    by_rule = con.execute(
        f"SELECT rule_id, any_value(severity), count(*), min(first_ts), max(last_ts) FROM {cur} "
        "GROUP BY rule_id ORDER BY count(*) DESC, rule_id"
    ).fetchall()
    by_day = con.execute(
        f"SELECT rule_id, date_trunc('day', last_ts) AS d, count(*) FROM {cur} GROUP BY ALL ORDER BY d, rule_id"
    ).fetchall()
    by_severity = con.execute(
        f"SELECT severity, count(*) FROM {cur} GROUP BY severity ORDER BY min({_RANK}), severity"
    ).fetchall()
    groups = [
        GroupStats(g, int(n), list(rules), SEVERITIES[r] if r < len(SEVERITIES) else "other", first, last)
        for g, n, rules, r, first, last in con.execute(
            f"SELECT group_key, count(*) AS n, list(DISTINCT rule_id ORDER BY rule_id), min({_RANK}) AS r, "
            f"min(first_ts), max(last_ts) FROM {cur} "
            "GROUP BY group_key ORDER BY n DESC, r, group_key LIMIT ?",
            [top_groups],
        ).fetchall()
    ]
    n_groups = _scalar(store, f"SELECT count(DISTINCT group_key) FROM {cur}")
    return ReportData(
        sources,
        entities,
        alerts,
        scans,
        by_rule,
        by_day,
        by_severity,
        groups,
        n_groups,
        _top_alerts(store, cur, top_alerts),
    )


def _scalar(store: Store, sql: str) -> int:
    row = store.con.execute(sql).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _top_alerts(store: Store, cur: str, limit: int) -> list[AlertView]:
    """The ``limit`` most severe alerts, most recent first, with their evidence events."""
    con = store.con
    rows = con.execute(
        f"""SELECT alert_id, rule_id, rule_version, severity, group_key, first_ts, last_ts, fire_source,
                   fire_event_id, "values", reason
            FROM {cur} ORDER BY {_RANK}, last_ts DESC, alert_id LIMIT ?""",
        [limit],
    ).fetchall()
    views = {
        r[0]: AlertView(r[0], r[1], int(r[2]), r[3], r[4], r[5], r[6], (r[7], r[8]), _json(r[9]), r[10]) for r in rows
    }
    if not views:
        return []
    # The evidence of the shown alerts joined to the events in one pass over the events table.
    evidence = con.execute(
        f"""WITH shown AS (
              SELECT alert_id, unnest(evidence_sources) AS source, unnest(evidence) AS event_id,
                     unnest(range(len(evidence))) AS pos
              FROM {cur} WHERE alert_id IN (SELECT unnest(?::VARCHAR[]))
            )
            SELECT s.alert_id, s.source, s.event_id, e.ts, e.kind, e.amount, e.currency, e.quantity,
                   e.item, e.category, e.place
            FROM shown s LEFT JOIN events e ON e.source = s.source AND e.event_id = s.event_id
            ORDER BY s.alert_id, e.ts NULLS LAST, s.pos""",
        [list(views)],
    ).fetchall()
    for alert_id, *rest in evidence:
        views[alert_id].evidence.append(EvidenceEvent(*rest))
    return list(views.values())


def _json(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"values": value}
    return value if isinstance(value, dict) else {"values": value}
