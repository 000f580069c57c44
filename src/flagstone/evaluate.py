"""Precision and recall of the stored alerts against labelled scenarios (``labels.csv``).

A labels file names every record of every planted scenario: ``scenario_id, rule_id, label,
source, event_id`` with ``label`` either ``suspicious`` or ``decoy``. An alert *covers* a
scenario when its evidence (or firing event) shares a record with it. Per rule:

- recall: share of the rule's suspicious scenarios covered by one of the rule's alerts;
- precision: share of the rule's alerts that cover any suspicious scenario (of any rule: a
  structuring case that also trips the cash-velocity rule is a true hit for both);
- decoys fired: the rule's near-miss decoys covered by one of its alerts (should be none).

The join runs inside DuckDB over the unnested evidence lists, so it scales with the store.
A re-scan keeps the alerts it finds again (alert ids are stable), so every stored alert counts,
except those of older versions of a rule: after a rule changes, only its latest version is scored.
"""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from rich import box
from rich.markup import escape
from rich.table import Table

from flagstone.errors import InputError
from flagstone.store import Store

LABEL_COLUMNS = ("scenario_id", "rule_id", "label", "source", "event_id")
LABELS = ("suspicious", "decoy")

# The alerts of each rule's latest version; shared with the report so both count the same alerts.
CURRENT_ALERTS_SQL = """
SELECT a.* FROM alerts a
JOIN (SELECT rule_id, max(rule_version) AS rule_version FROM alerts GROUP BY rule_id) latest
  USING (rule_id, rule_version)
"""


@dataclass(frozen=True)
class RuleScore:
    rule_id: str
    scenarios: int  # suspicious scenarios labelled for this rule
    detected: int  # ... of which some alert of this rule covers
    alerts: int
    true_alerts: int  # alerts of this rule covering any suspicious scenario
    decoys: int
    decoys_fired: int

    @property
    def recall(self) -> float | None:
        return self.detected / self.scenarios if self.scenarios else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None


def read_labels(path: str | Path) -> pa.Table:
    """The labels file as an Arrow table, every row checked; errors name file, line and field."""
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8-sig")  # a BOM from spreadsheet exports is fine
    except OSError as exc:
        raise InputError(f"cannot read labels file: {exc.strerror}", path=path) from exc
    columns: dict[str, list[str]] = {c: [] for c in LABEL_COLUMNS}
    seen: dict[str, tuple[str, str, int]] = {}
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputError(f"empty file; expected a header: {','.join(LABEL_COLUMNS)}", path=path, line=1)
        header = [h.strip() for h in header]
        for col in LABEL_COLUMNS:
            if col not in header:
                raise InputError(
                    f"missing column; expected columns {', '.join(LABEL_COLUMNS)}, found {', '.join(header)}",
                    path=path,
                    line=1,
                    field=col,
                )
        at = {col: header.index(col) for col in LABEL_COLUMNS}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise InputError(f"{len(row)} values, expected {len(header)}", path=path, line=line)
            values = {col: row[i].strip() for col, i in at.items()}
            for col, value in values.items():
                if not value:
                    raise InputError("empty value", path=path, line=line, field=col, value=value)
            if values["label"] not in LABELS:
                raise InputError(
                    f"label {values['label']!r} is not one of: {', '.join(LABELS)}",
                    path=path,
                    line=line,
                    field="label",
                    value=values["label"],
                )
            first = seen.setdefault(values["scenario_id"], (values["rule_id"], values["label"], line))
            if first[:2] != (values["rule_id"], values["label"]):
                raise InputError(
                    f"scenario {values['scenario_id']!r} was labelled {first[1]} for {first[0]} on line "
                    f"{first[2]}; one scenario has one rule and one label",
                    path=path,
                    line=line,
                    field="rule_id" if first[0] != values["rule_id"] else "label",
                )
            for col, value in values.items():
                columns[col].append(value)
    return pa.table({c: pa.array(v, type=pa.string()) for c, v in columns.items()})


def evaluate_store(store: Store, labels_path: str | Path) -> list[RuleScore]:
    """One score per rule that has labels or alerts, sorted by rule id."""
    labels = read_labels(labels_path)
    view = f"labels_{uuid.uuid4().hex}"
    con = store.con
    con.register(view, labels)
    try:
        rows = con.execute(
            f"""
            WITH cur AS ({CURRENT_ALERTS_SQL}),
            evidence AS (
              SELECT alert_id, rule_id, unnest(evidence_sources) AS source, unnest(evidence) AS event_id
              FROM cur
              UNION
              SELECT alert_id, rule_id, fire_source, fire_event_id FROM cur
            ),
            hits AS (
              SELECT DISTINCT e.alert_id, e.rule_id AS alert_rule, l.scenario_id, l.rule_id AS label_rule,
                l.label
              FROM evidence e JOIN {view} l ON l.source = e.source AND l.event_id = e.event_id
            ),
            scenarios AS (
              SELECT rule_id,
                count(DISTINCT scenario_id) FILTER (WHERE label = 'suspicious') AS scenarios,
                count(DISTINCT scenario_id) FILTER (WHERE label = 'decoy') AS decoys
              FROM {view} GROUP BY rule_id
            ),
            covered AS (
              SELECT label_rule AS rule_id,
                count(DISTINCT scenario_id) FILTER (WHERE label = 'suspicious') AS detected,
                count(DISTINCT scenario_id) FILTER (WHERE label = 'decoy') AS decoys_fired
              FROM hits WHERE alert_rule = label_rule GROUP BY label_rule
            ),
            true_alerts AS (
              SELECT alert_rule AS rule_id, count(DISTINCT alert_id) AS n
              FROM hits WHERE label = 'suspicious' GROUP BY alert_rule
            ),
            counts AS (SELECT rule_id, count(*) AS n FROM cur GROUP BY rule_id),
            rules AS (SELECT rule_id FROM scenarios UNION SELECT rule_id FROM counts)
            SELECT r.rule_id, coalesce(s.scenarios, 0), coalesce(c.detected, 0), coalesce(n.n, 0),
                   coalesce(t.n, 0), coalesce(s.decoys, 0), coalesce(c.decoys_fired, 0)
            FROM rules r
            LEFT JOIN scenarios s USING (rule_id)
            LEFT JOIN covered c USING (rule_id)
            LEFT JOIN true_alerts t USING (rule_id)
            LEFT JOIN counts n USING (rule_id)
            ORDER BY r.rule_id
            """
        ).fetchall()
    finally:
        con.unregister(view)
    return [RuleScore(str(r[0]), *(int(x) for x in r[1:])) for r in rows]


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_scores(scores: list[RuleScore]) -> Table:
    table = Table(
        title="Alerts against labelled scenarios",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=0,  # the box draws one space between columns: fits an 80-column terminal
        caption="recall: suspicious scenarios covered by the rule's alerts; precision: the rule's alerts "
        "covering any suspicious scenario; decoys: near misses that fired / planted (should be 0)",
        caption_justify="left",
    )
    table.add_column("rule", no_wrap=True)
    for name in ("scenarios", "detected", "recall", "alerts", "precision", "decoys"):
        table.add_column(name, justify="right", min_width=len(name))
    for s in scores:
        recall = _ratio(s.recall)
        if s.recall is not None and s.recall < 1:
            recall = f"[yellow]{recall}[/]"
        fired = f"{s.decoys_fired}/{s.decoys}"
        table.add_row(
            escape(s.rule_id),
            str(s.scenarios),
            str(s.detected),
            recall,
            str(s.alerts),
            _ratio(s.precision),
            f"[bold red]{fired}[/]" if s.decoys_fired else fired,
        )
    return table
