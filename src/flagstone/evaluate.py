"""Precision and recall of alerts against labels: per scenario (``labels.csv``) or per pattern.

Two label formats, told apart by the header (see ``docs/backtest.md``):

*Per scenario* (written by ``flagstone generate``): ``scenario_id, rule_id, label, source,
event_id`` with ``label`` either ``suspicious`` or ``decoy``; every record of every planted
scenario is named. An alert *covers* a scenario when its evidence (or firing event) shares a
record with it. Per rule:

- recall: share of the rule's suspicious scenarios covered by one of the rule's alerts;
- precision: share of the rule's alerts that cover any suspicious scenario (of any rule: a
  structuring case that also trips the cash-velocity rule is a true hit for both);
- decoys fired: the rule's near-miss decoys covered by one of its alerts (should be none).

*Per pattern* (as in AMLGentex): ``pattern_id, typology, source, event_id``, one row per
laundering record. Patterns belong to no rule. Per rule:

- recall: share of all patterns *detected* by the rule: one of its alerts covers at least half
  of the pattern's records (a single shared record does not find a 40-transfer scheme);
- precision: share of the rule's alerts whose evidence holds at least one labelled record.

The joins run inside DuckDB over the unnested evidence lists, so they scale with the store.
``score_alerts`` scores any relation with the alert columns, which is how ``flagstone backtest``
scores alerts it never stores. For the stored alerts a re-scan keeps the alerts it finds again
(alert ids are stable), so every stored alert counts, except those of older versions of a rule:
after a rule changes, only its latest version is scored.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from rich import box
from rich.markup import escape
from rich.table import Table

from flagstone.errors import InputError
from flagstone.store import Store

LABEL_COLUMNS = ("scenario_id", "rule_id", "label", "source", "event_id")
PATTERN_COLUMNS = ("pattern_id", "typology", "source", "event_id")
LABELS = ("suspicious", "decoy")
LabelFormat = Literal["scenario", "pattern"]

# The alerts of each rule's latest version; shared with the report so both count the same alerts.
CURRENT_ALERTS_SQL = """
SELECT a.* FROM alerts a
JOIN (SELECT rule_id, max(rule_version) AS rule_version FROM alerts GROUP BY rule_id) latest
  USING (rule_id, rule_version)
"""


@dataclass(frozen=True)
class RuleScore:
    rule_id: str
    scenarios: int  # suspicious scenarios labelled for this rule (per pattern: all patterns)
    detected: int  # ... of which some alert of this rule covers (per pattern: covers half or more)
    alerts: int
    true_alerts: int  # alerts of this rule covering any suspicious scenario / any labelled record
    decoys: int
    decoys_fired: int
    unit: LabelFormat = "scenario"

    @property
    def recall(self) -> float | None:
        return self.detected / self.scenarios if self.scenarios else None

    @property
    def precision(self) -> float | None:
        return self.true_alerts / self.alerts if self.alerts else None


@dataclass(frozen=True)
class Labels:
    """A labels file read and checked: its format and its rows as an Arrow table."""

    path: Path
    format: LabelFormat
    table: pa.Table


Check = Callable[[dict[str, str], int], None]


def _read_csv(path: Path, pick: Callable[[list[str]], tuple[str, ...]], check: Check) -> pa.Table:
    """The columns ``pick`` chooses from the header, every row checked; errors name file, line, field."""
    try:
        fh = path.open(newline="", encoding="utf-8-sig")  # a BOM from spreadsheet exports is fine
    except OSError as exc:
        raise InputError(f"cannot read labels file: {exc.strerror}", path=path) from exc
    with fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise InputError(
                f"empty file; expected a header: {','.join(LABEL_COLUMNS)} (per scenario) or "
                f"{','.join(PATTERN_COLUMNS)} (per pattern)",
                path=path,
                line=1,
            )
        header = [h.strip() for h in header]
        wanted = pick(header)
        for col in wanted:
            if col not in header:
                raise InputError(
                    f"missing column; expected columns {', '.join(wanted)}, found {', '.join(header)}",
                    path=path,
                    line=1,
                    field=col,
                )
        at = {col: header.index(col) for col in wanted}
        columns: dict[str, list[str]] = {c: [] for c in wanted}
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
            check(values, line)
            for col, value in values.items():
                columns[col].append(value)
    return pa.table({c: pa.array(v, type=pa.string()) for c, v in columns.items()})


def _one_per_key(path: Path, key: str, fields: tuple[str, ...], what: str) -> Check:
    """A check that every row of one ``key`` (a scenario, a pattern) repeats the same ``fields``."""
    seen: dict[str, tuple[tuple[str, ...], int]] = {}

    def check(values: dict[str, str], line: int) -> None:
        mine = tuple(values[f] for f in fields)
        first, at = seen.setdefault(values[key], (mine, line))
        for f, a, b in zip(fields, first, mine, strict=True):
            if a != b:
                raise InputError(
                    f"{key.removesuffix('_id')} {values[key]!r} has {f} {a!r} on line {at}; {what}",
                    path=path,
                    line=line,
                    field=f,
                    value=b,
                )

    return check


def read_labels(path: str | Path) -> pa.Table:
    """A per-scenario labels file as an Arrow table (see the module docstring)."""
    path = Path(path)
    same = _one_per_key(path, "scenario_id", ("rule_id", "label"), "one scenario has one rule and one label")

    def check(values: dict[str, str], line: int) -> None:
        if values["label"] not in LABELS:
            raise InputError(
                f"label {values['label']!r} is not one of: {', '.join(LABELS)}",
                path=path,
                line=line,
                field="label",
                value=values["label"],
            )
        same(values, line)

    return _read_csv(path, lambda _: LABEL_COLUMNS, check)


def read_pattern_labels(path: str | Path) -> pa.Table:
    """A per-pattern labels file as an Arrow table (see the module docstring)."""
    path = Path(path)
    check = _one_per_key(path, "pattern_id", ("typology",), "one pattern has one typology")
    return _read_csv(path, lambda _: PATTERN_COLUMNS, check)


def load_labels(path: str | Path) -> Labels:
    """Either format, told apart by the header: ``pattern_id`` means per pattern."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = {h.strip() for h in next(csv.reader(fh), [])}
    except OSError as exc:
        raise InputError(f"cannot read labels file: {exc.strerror}", path=path) from exc
    if "pattern_id" in header:
        return Labels(path, "pattern", read_pattern_labels(path))
    return Labels(path, "scenario", read_labels(path))


_EVIDENCE = """
evidence AS (
  SELECT alert_id, rule_id, unnest(evidence_sources) AS source, unnest(evidence) AS event_id FROM cur
  UNION
  SELECT alert_id, rule_id, fire_source, fire_event_id FROM cur
)"""

_SCENARIO_SQL = """
hits AS (
  SELECT DISTINCT e.alert_id, e.rule_id AS alert_rule, l.scenario_id, l.rule_id AS label_rule, l.label
  FROM evidence e JOIN {labels} l ON l.source = e.source AND l.event_id = e.event_id
),
scenarios AS (
  SELECT rule_id,
    count(DISTINCT scenario_id) FILTER (WHERE label = 'suspicious') AS scenarios,
    count(DISTINCT scenario_id) FILTER (WHERE label = 'decoy') AS decoys
  FROM {labels} GROUP BY rule_id
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
)"""

# A pattern's records counted once, however often the file repeats them; ``found``: the patterns
# one alert of a rule holds at least half of.
_PATTERN_COVER = """
records AS (SELECT DISTINCT pattern_id, typology, source, event_id FROM {labels}),
sizes AS (SELECT pattern_id, any_value(typology) AS typology, count(*) AS size FROM records GROUP BY pattern_id),
hits AS (
  SELECT e.alert_id, e.rule_id, r.pattern_id, count(*) AS covered
  FROM evidence e JOIN records r ON r.source = e.source AND r.event_id = e.event_id
  GROUP BY ALL
)"""
_PATTERN_HITS = (
    _PATTERN_COVER
    + """,
found AS (
  SELECT DISTINCT h.rule_id, h.pattern_id FROM hits h JOIN sizes s USING (pattern_id) WHERE 2 * h.covered >= s.size
)"""
)

_PATTERN_SQL = (
    _PATTERN_HITS
    + """,
scenarios AS (
  SELECT DISTINCT rule_id, (SELECT count(*) FROM sizes) AS scenarios, 0 AS decoys FROM rules
),
covered AS (SELECT rule_id, count(*) AS detected, 0 AS decoys_fired FROM found GROUP BY rule_id),
true_alerts AS (SELECT rule_id, count(DISTINCT alert_id) AS n FROM hits GROUP BY rule_id)"""
)


@dataclass(frozen=True)
class TypologyRecall:
    """Per-pattern labels: how many patterns of one typology each rule, and any rule, detects."""

    typology: str
    patterns: int
    by_rule: dict[str, int]
    any_rule: int


def typology_recall(
    con: duckdb.DuckDBPyConnection, alerts_sql: str, labels: Labels, rule_ids: Sequence[str]
) -> list[TypologyRecall]:
    """Detected patterns per typology (sorted) for each rule in ``rule_ids`` and for all together."""
    if labels.format != "pattern":
        raise ValueError("typology recall needs per-pattern labels")
    view = f"labels_{uuid.uuid4().hex}"
    con.register(view, labels.table)
    try:
        rows = con.execute(
            f"""
            WITH cur AS ({alerts_sql}), {_EVIDENCE}, {_PATTERN_HITS.format(labels=view)}
            SELECT s.typology, f.rule_id, grouping(f.rule_id) AS everyone,
                   count(DISTINCT s.pattern_id), count(DISTINCT f.pattern_id)
            FROM sizes s LEFT JOIN found f USING (pattern_id)
            GROUP BY GROUPING SETS ((s.typology), (s.typology, f.rule_id))
            """
        ).fetchall()
    finally:
        con.unregister(view)
    totals = {t: (int(n), int(found)) for t, _, everyone, n, found in rows if everyone}
    by_rule: dict[str, dict[str, int]] = {t: dict.fromkeys(rule_ids, 0) for t in totals}
    for t, rule_id, everyone, _, found in rows:
        if not everyone and rule_id in by_rule[t]:
            by_rule[t][rule_id] = int(found)
    return [TypologyRecall(str(t), n, by_rule[t], found) for t, (n, found) in sorted(totals.items())]


def score_alerts(
    con: duckdb.DuckDBPyConnection, alerts_sql: str, labels: Labels, rule_ids: Sequence[str] | None = None
) -> list[RuleScore]:
    """Score the alerts ``alerts_sql`` selects (columns alert_id, rule_id, fire_source,
    fire_event_id, evidence_sources, evidence). One score per rule in ``rule_ids``, in that order;
    without it, per rule that has alerts (or, per scenario, labels), sorted by rule id."""
    view = f"labels_{uuid.uuid4().hex}"
    body = (_SCENARIO_SQL if labels.format == "scenario" else _PATTERN_SQL).format(labels=view)
    if rule_ids is not None:
        rules = "rules AS (SELECT unnest($rule_ids::VARCHAR[]) AS rule_id, unnest(range(len($rule_ids))) AS pos)"
    elif labels.format == "scenario":
        rules = (
            f"rules AS (SELECT rule_id, rule_id AS pos FROM (SELECT rule_id FROM {view} UNION SELECT rule_id FROM cur))"
        )
    else:
        rules = "rules AS (SELECT DISTINCT rule_id, rule_id AS pos FROM cur)"
    con.register(view, labels.table)
    try:
        rows = con.execute(
            f"""
            WITH cur AS ({alerts_sql}), {rules}, {_EVIDENCE}, {body},
            counts AS (SELECT rule_id, count(*) AS n FROM cur GROUP BY rule_id)
            SELECT r.rule_id, coalesce(s.scenarios, 0), coalesce(c.detected, 0), coalesce(n.n, 0),
                   coalesce(t.n, 0), coalesce(s.decoys, 0), coalesce(c.decoys_fired, 0)
            FROM rules r
            LEFT JOIN scenarios s USING (rule_id)
            LEFT JOIN covered c USING (rule_id)
            LEFT JOIN true_alerts t USING (rule_id)
            LEFT JOIN counts n USING (rule_id)
            ORDER BY r.pos
            """,
            {"rule_ids": list(rule_ids)} if rule_ids is not None else {},
        ).fetchall()
    finally:
        con.unregister(view)
    return [
        RuleScore(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5]), int(r[6]), labels.format)
        for r in rows
    ]


@dataclass(frozen=True)
class AlertTruth:
    """One alert against the labels: ``true`` as ``score_alerts`` counts true alerts (its evidence
    or firing event holds a record of a suspicious scenario, or of any pattern); ``found``: the
    patterns it detects on its own (it holds at least half of their records; per pattern only)."""

    alert_id: str
    true: bool
    found: frozenset[str]


def alert_truth(con: duckdb.DuckDBPyConnection, alerts_sql: str, labels: Labels) -> dict[str, AlertTruth]:
    """Every alert ``alerts_sql`` selects, against the labels: the per-alert view of ``score_alerts``,
    for training a triage model and for reading a queue in order (``bench/triage.py``)."""
    view = f"labels_{uuid.uuid4().hex}"
    if labels.format == "scenario":
        body = f"""hits AS (
  SELECT DISTINCT e.alert_id FROM evidence e JOIN {view} l ON l.source = e.source AND l.event_id = e.event_id
  WHERE l.label = 'suspicious'
), found AS (SELECT NULL::VARCHAR AS alert_id, NULL::VARCHAR AS pattern_id WHERE FALSE)"""
    else:
        body = (
            _PATTERN_COVER.format(labels=view)
            + """, found AS (
  SELECT h.alert_id, h.pattern_id FROM hits h JOIN sizes s USING (pattern_id) WHERE 2 * h.covered >= s.size
)"""
        )
    con.register(view, labels.table)
    try:
        rows = con.execute(
            f"""
            WITH cur AS ({alerts_sql}), {_EVIDENCE}, {body}
            SELECT c.alert_id, c.alert_id IN (SELECT alert_id FROM hits),
                   coalesce(list(f.pattern_id ORDER BY f.pattern_id) FILTER (WHERE f.pattern_id IS NOT NULL), [])
            FROM cur c LEFT JOIN found f USING (alert_id)
            GROUP BY c.alert_id
            """
        ).fetchall()
    finally:
        con.unregister(view)
    return {str(a): AlertTruth(str(a), bool(t), frozenset(map(str, f))) for a, t, f in rows}


def evaluate_store(store: Store, labels_path: str | Path) -> list[RuleScore]:
    """One score per rule that has labels or stored alerts, sorted by rule id."""
    return score_alerts(store.con, CURRENT_ALERTS_SQL, load_labels(labels_path))


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_scores(scores: list[RuleScore]) -> Table:
    per_pattern = bool(scores) and all(s.unit == "pattern" for s in scores)
    caption = (
        "recall: labelled patterns of which one of the rule's alerts covers at least half the records; "
        "precision: the rule's alerts holding any labelled record"
        if per_pattern
        else "recall: suspicious scenarios covered by the rule's alerts; precision: the rule's alerts "
        "covering any suspicious scenario; decoys: near misses that fired / planted (should be 0)"
    )
    table = Table(
        title="Alerts against labelled " + ("patterns" if per_pattern else "scenarios"),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=0,  # the box draws one space between columns: fits an 80-column terminal
        caption=caption,
        caption_justify="left",
    )
    table.add_column("rule", no_wrap=True)
    names = ("patterns", "detected", "recall", "alerts", "precision")
    for name in names if per_pattern else ("scenarios", *names[1:], "decoys"):
        table.add_column(name, justify="right", min_width=len(name))
    for s in scores:
        recall = ratio(s.recall)
        if s.recall is not None and s.recall < 1:
            recall = f"[yellow]{recall}[/]"
        cells = [escape(s.rule_id), str(s.scenarios), str(s.detected), recall, str(s.alerts), ratio(s.precision)]
        if not per_pattern:
            fired = f"{s.decoys_fired}/{s.decoys}"
            cells.append(f"[bold red]{fired}[/]" if s.decoys_fired else fired)
        table.add_row(*cells)
    return table
