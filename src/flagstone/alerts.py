"""Alerts: findings made explainable (reason, values, severity) and stored; export for reviewers."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from flagstone.errors import InputError
from flagstone.owner_only import private_output
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.window import WindowRule
from flagstone.store import Store

ALERT_COLUMNS = (
    "alert_id",
    "scan_id",
    "rule_id",
    "rule_version",
    "severity",
    "group_key",
    "first_ts",
    "last_ts",
    "fire_source",
    "fire_event_id",
    "evidence_sources",
    "evidence",
    "values",
    "reason",
)


def alert_id(f: Finding, param_set: str = "") -> str:
    """Stable across re-scans: the same rule version with the same parameters (``param_set``,
    ``RuleMeta.param_set``) firing at the same event is the same alert. The rule file's own
    parameters add nothing to the key, so those alerts keep the ids they always had."""
    return _alert_id(f, f.group_key, param_set)


def _alert_id(f: Finding, group_key: str, param_set: str) -> str:
    parts = [f.rule_id, str(f.rule_version), group_key, *f.fire]
    if param_set:
        parts.append(f"params={param_set}")
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]


# ``scans.rules`` as ``scan_record`` writes it, one row per scan and rule; a scan made before a
# field existed gives its default (the file's own parameter set "", no typologies).
SCAN_RULES_SQL = """
  SELECT scan_id, r ->> 'id' AS rule_id, CAST(r ->> 'version' AS INTEGER) AS rule_version,
         coalesce(r ->> 'param_set', '') AS param_set,
         coalesce(CAST(r -> 'typologies' AS VARCHAR[]), []) AS typologies
  FROM (SELECT scan_id, unnest(CAST(rules AS JSON[])) AS r FROM scans)
"""


def scan_record(rule: ir.Rule, **extra: str) -> dict[str, Any]:
    """What a scan records of each rule it runs (``scans.rules``): which rule, its version, file,
    the typologies it targets and the parameters it ran with (effective values and their set)."""
    return {
        "id": rule.meta.id,
        "version": rule.meta.version,
        "path": rule.meta.path,
        "typologies": list(rule.meta.typologies),
        "param_set": rule.meta.param_set,
        "params": {k: json_value(v) for k, v in rule.meta.params},
        **extra,
    }


def format_value(value: Any) -> str:
    """Numbers the way a reviewer reads them: 38,250.00 for money, 4 for counts."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "none"}[value]
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal | float):
        return f"{value:,.2f}"
    if isinstance(value, tuple):  # a list parameter
        return ", ".join(format_value(v) for v in value)
    return str(value)


def json_value(value: Any) -> Any:
    """Exact decimals survive JSON as text; everything else as its JSON self."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def computed_text(values: Mapping[str, Any]) -> str:
    """``count=4, sum=38,250.00`` — the numbers behind an alert, in one line."""
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items())


def reasons(rule: ir.Rule) -> Callable[[Finding], str]:
    """The rule's one-sentence explanation of a finding; the template is read once per rule."""
    fixed = {k: format_value(v) for k, v in rule.meta.params}
    if isinstance(rule, WindowRule):
        fixed["window"] = rule.window_text
    template = rule.meta.reason
    if template is None:
        where = f" within {rule.window_text}" if isinstance(rule, WindowRule) else ""
        return lambda f: f"{rule.meta.title}: {computed_text(f.values_dict)}{where}"
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}

    def reason(f: Finding) -> str:
        names = {**fixed, **{k: format_value(v) for k, v in f.values}, "group": f.group_key}
        return template.format(**{k: names.get(k, "?") for k in fields})

    return reason


def alert_rows(rule: ir.Rule, findings: Iterable[Finding], scan_id: int) -> list[dict[str, Any]]:
    reason = reasons(rule)
    rows = []
    for f in findings:
        group_key = f.group_key
        rows.append(
            {
                "alert_id": _alert_id(f, group_key, rule.meta.param_set),
                "scan_id": scan_id,
                "rule_id": f.rule_id,
                "rule_version": f.rule_version,
                "severity": rule.meta.severity,
                "group_key": group_key,
                "first_ts": f.first_ts,
                "last_ts": f.last_ts,
                "fire_source": f.fire[0],
                "fire_event_id": f.fire[1],
                "evidence_sources": [s for s, _ in f.evidence],
                "evidence": [e for _, e in f.evidence],
                "values": json.dumps({k: json_value(v) for k, v in f.values}),
                "reason": reason(f),
            }
        )
    return rows


_ARROW_SCHEMA = pa.schema(
    [
        ("alert_id", pa.string()),
        ("scan_id", pa.int64()),
        ("rule_id", pa.string()),
        ("rule_version", pa.int32()),
        ("severity", pa.string()),
        ("group_key", pa.string()),
        ("first_ts", pa.timestamp("us")),
        ("last_ts", pa.timestamp("us")),
        ("fire_source", pa.string()),
        ("fire_event_id", pa.string()),
        ("evidence_sources", pa.list_(pa.string())),
        ("evidence", pa.list_(pa.string())),
        ("values", pa.string()),
        ("reason", pa.string()),
    ]
)


def insert_alerts(store: Store, rows: list[dict[str, Any]], *, con: duckdb.DuckDBPyConnection | None = None) -> int:
    """Insert alerts not already stored (by alert_id); returns how many were new. ``con``: a cursor
    of the store's to use instead of its own connection (another thread's)."""
    if not rows:
        return 0
    table = pa.Table.from_pylist(rows, schema=_ARROW_SCHEMA)
    con = con or store.con

    def count() -> int:
        return int(con.execute("SELECT count(*) FROM alerts").fetchall()[0][0])

    con.register("new_alerts", table)
    try:
        before = count()
        con.execute(
            f"INSERT INTO alerts SELECT {', '.join(_q(c) for c in ALERT_COLUMNS)} FROM new_alerts n "
            "WHERE NOT EXISTS (SELECT 1 FROM alerts a WHERE a.alert_id = n.alert_id)"
        )
        after = count()
    finally:
        con.unregister("new_alerts")
    return after - before


def _q(name: str) -> str:
    return f'"{name}"'


def _has_scores(con: duckdb.DuckDBPyConnection) -> bool:
    """A store made before triage has no score tables (and a read-only open does not make them)."""
    found = con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'").fetchall()
    return {"alert_scores", "triage_models"} <= {t for (t,) in found}


def _has_sample(con: duckdb.DuckDBPyConnection) -> bool:
    """False for a store scored before review samples existed, opened read-only (so not upgraded)."""
    found = con.execute(
        "SELECT 1 FROM duckdb_columns() WHERE schema_name = 'main' AND table_name = 'alert_scores' "
        "AND column_name = 'review_sample'"
    ).fetchall()
    return bool(found)


def active_scores(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[float, str, str, bool]]:
    """alert_id -> (priority, explanation, model_id, in the review sample) by the active triage
    model (empty without one)."""
    if not _has_scores(con):
        return {}
    sample = "coalesce(s.review_sample, FALSE)" if _has_sample(con) else "FALSE"
    rows = con.execute(
        f"SELECT s.alert_id, s.priority, s.explanation, s.model_id, {sample} "
        "FROM alert_scores s JOIN triage_models m ON m.model_id = s.model_id AND m.active"
    ).fetchall()
    return {str(a): (float(p), str(e), str(m), bool(r)) for a, p, e, m, r in rows}


def scored_columns(store: Store) -> str:
    """``priority, explanation FROM alerts a ...``: each alert's score by the active triage model,
    NULL when none is active or the alert is not scored."""
    if not _has_scores(store.con):
        return "NULL::DOUBLE AS priority, NULL::VARCHAR AS explanation, NULL::BOOLEAN AS review_sample FROM alerts a"
    sample = "s.review_sample" if _has_sample(store.con) else "NULL::BOOLEAN AS review_sample"
    return (
        f"s.priority, s.explanation, {sample} FROM alerts a LEFT JOIN alert_scores s ON s.alert_id = a.alert_id "
        "AND s.model_id = (SELECT model_id FROM triage_models WHERE active)"
    )


def export_alerts(
    store: Store,
    fmt: str,
    out: Path | None,
    *,
    rule_id: str | None = None,
    stdout: IO[str] | None = None,
) -> int:
    """Write the stored alerts as JSON lines (file or stdout) or Parquet; returns the count. Each
    carries ``priority`` (0-1) and ``explanation`` from the active triage model, or NULL."""
    where = "WHERE a.rule_id = ?" if rule_id else ""
    args = [rule_id] if rule_id else []
    query = f"SELECT a.*, {scored_columns(store)} {where} ORDER BY a.first_ts, a.rule_id, a.alert_id"
    if out is not None:
        private_output(out)
    if fmt == "parquet":
        if out is None:
            raise InputError("--format parquet needs --out FILE", field="--out")
        table = store.con.sql(query, params=args).to_arrow_table()
        pq.write_table(table, out)
        return table.num_rows
    if fmt != "jsonl":
        raise InputError(f"unknown format {fmt!r} (jsonl or parquet)", field="--format", value=fmt)
    cursor = store.con.execute(query, args)
    names = [d[0] for d in cursor.description]
    handle: IO[str] = open(out, "w", encoding="utf-8") if out else (stdout or open("/dev/stdout", "w"))  # noqa: SIM115
    n = 0
    try:
        while batch := cursor.fetchmany(1000):
            for row in batch:
                record = dict(zip(names, row, strict=True))
                record["values"] = json.loads(record["values"])
                handle.write(json.dumps(record, default=json_value) + "\n")
                n += 1
    finally:
        if out:
            handle.close()
    return n
