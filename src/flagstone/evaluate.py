"""Precision and recall of alerts against labels: per scenario (``labels.csv``) or per pattern.

Two label formats, told apart by the header (see ``docs/backtest.md``):

A rule *targets* the scenarios or patterns labelled with its id or with a typology it declares
(``RuleMeta.targets``); it is scored on those, with the any-rule figure beside it.

*Per scenario* (written by ``flagstone generate``): ``scenario_id, rule_id, label, source,
event_id`` (or ``typology`` instead of ``rule_id``) with ``label`` either ``suspicious`` or
``decoy``; every record of every planted scenario is named. An alert *covers* a scenario when its
evidence (or firing event) shares a record with it. Per rule:

- recall: share of the suspicious scenarios it targets covered by one of its alerts;
- precision: share of its alerts covering a suspicious scenario it targets; any-rule precision:
  covering any suspicious scenario (a structuring case that also trips the cash-velocity rule);
- decoys fired: the near-miss decoys it targets covered by one of its alerts (should be none).

*Per pattern* (as in AMLGentex): ``pattern_id, typology, source, event_id``, one row per
laundering record. Per rule:

- recall: share of the patterns it targets *detected* by it: one of its alerts covers at least
  half of the pattern's records (a single shared record does not find a 40-transfer scheme);
- precision: share of its alerts whose evidence holds a record of a pattern it targets; any-rule
  precision: any labelled record.

Per typology (``typology_recall``): what its own rules detect together, and what any rule does.

The joins run inside DuckDB over the unnested evidence lists, so they scale with the store.
``score_alerts`` scores any relation with the alert columns, which is how ``flagstone backtest``
scores alerts it never stores. For the stored alerts a re-scan keeps the alerts it finds again
(alert ids are stable), so every stored alert counts, except those of older versions of a rule:
after a rule changes, only its latest version is scored.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
from rich import box
from rich.table import Table
from rich.text import Text

from flagstone.alerts import SCAN_RULES_SQL
from flagstone.errors import InputError
from flagstone.schemes import link_alerts
from flagstone.store import Store

LABEL_COLUMNS = ("scenario_id", "rule_id", "label", "source", "event_id")
TYPOLOGY_LABEL_COLUMNS = ("scenario_id", "typology", "label", "source", "event_id")  # the other spelling
PATTERN_COLUMNS = ("pattern_id", "typology", "source", "event_id")
LABELS = ("suspicious", "decoy")
LabelFormat = Literal["scenario", "pattern"]


def current_alerts_sql(param_sets: Mapping[str, str] | None = None) -> str:
    """The stored alerts of one version and one parameter set per rule: those of the last scan
    that ran it (``scans.rules``; a rule no scan lists: its highest version, its file's own
    parameters). ``param_sets``: rule id -> the parameter set to take instead ("" for the file's
    own), from the last scan that ran the rule with it. Shared by evaluate, report and triage so
    that all count the same alerts."""
    chosen = ""
    for rule_id, param_set in (param_sets or {}).items():
        if not _SAFE.match(rule_id) or not _SAFE.match(param_set or "x"):
            raise InputError(f"not a rule id and parameter set: {rule_id}={param_set}", field="--param-set")
        chosen += f" AND NOT (rule_id = '{rule_id}' AND param_set <> '{param_set}')"
    return f"""
SELECT t.* EXCLUDE (param_set_) FROM (
  SELECT a.*, coalesce(s.param_set, '') AS param_set_
  FROM alerts a LEFT JOIN ({SCAN_RULES_SQL}) s ON s.scan_id = a.scan_id AND s.rule_id = a.rule_id
) t
JOIN (
  SELECT rule_id, rule_version, param_set FROM ({SCAN_RULES_SQL}) WHERE true{chosen}
  QUALIFY row_number() OVER (PARTITION BY rule_id ORDER BY scan_id DESC) = 1
  UNION ALL
  SELECT rule_id, max(rule_version), '' FROM alerts
  WHERE rule_id NOT IN (SELECT rule_id FROM ({SCAN_RULES_SQL})) GROUP BY rule_id
) latest ON latest.rule_id = t.rule_id AND latest.rule_version = t.rule_version AND latest.param_set = t.param_set_
"""


_SAFE = re.compile(r"^[A-Za-z0-9_.\-]+$")
CURRENT_ALERTS_SQL = current_alerts_sql()


@dataclass(frozen=True)
class RuleScore:
    """One rule against the labels. What it *targets*: scenarios labelled with its id and the
    scenarios or patterns of the typologies it declares (``RuleMeta.targets``)."""

    rule_id: str
    scenarios: int  # suspicious scenarios (per pattern: patterns) the rule targets
    detected: int  # ... of which some alert of this rule covers (per pattern: covers half or more)
    alerts: int
    true_alerts: int  # alerts of this rule holding a record of what it targets
    decoys: int  # near-miss decoys of what it targets (per scenario only)
    decoys_fired: int
    unit: LabelFormat = "scenario"
    true_any: int = 0  # alerts of this rule holding a record of any suspicious scenario or pattern

    @property
    def recall(self) -> float | None:
        return self.detected / self.scenarios if self.scenarios else None

    @property
    def precision(self) -> float | None:
        """Alerts that hit what the rule targets; none when the labels hold nothing it targets."""
        return self.true_alerts / self.alerts if self.alerts and (self.scenarios or self.decoys) else None

    @property
    def precision_any(self) -> float | None:
        """Alerts that hit any suspicious scenario or pattern, whoever targets it."""
        return self.true_any / self.alerts if self.alerts else None


@dataclass(frozen=True)
class Labels:
    """A labels file read and checked: its format and its rows as an Arrow table, in which
    ``target`` is what each scenario or pattern belongs to: a rule id or a typology (``names``)."""

    path: Path
    format: LabelFormat
    table: pa.Table
    names: Literal["rule", "typology"] = "rule"


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
    """A per-scenario labels file as an Arrow table (see the module docstring): its scenarios
    belong to a rule (``rule_id``) or, where the header has ``typology`` instead, to a typology;
    either way the column is returned as ``target``."""
    path = Path(path)
    header = _header(path)
    by = "typology" if "typology" in header and "rule_id" not in header else "rule_id"
    columns = LABEL_COLUMNS if by == "rule_id" else TYPOLOGY_LABEL_COLUMNS
    what = "rule" if by == "rule_id" else "typology"
    same = _one_per_key(path, "scenario_id", (by, "label"), f"one scenario has one {what} and one label")

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

    return _read_csv(path, lambda _: columns, check).rename_columns(
        ["scenario_id", "target", "label", "source", "event_id"]
    )


def read_pattern_labels(path: str | Path) -> pa.Table:
    """A per-pattern labels file as an Arrow table (see the module docstring), ``typology`` as
    ``target``."""
    path = Path(path)
    check = _one_per_key(path, "pattern_id", ("typology",), "one pattern has one typology")
    return _read_csv(path, lambda _: PATTERN_COLUMNS, check).rename_columns(
        ["pattern_id", "target", "source", "event_id"]
    )


def _header(path: Path) -> set[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return {h.strip() for h in next(csv.reader(fh), [])}
    except OSError as exc:
        raise InputError(f"cannot read labels file: {exc.strerror}", path=path) from exc


def load_labels(path: str | Path) -> Labels:
    """Either format, told apart by the header: ``pattern_id`` means per pattern."""
    path = Path(path)
    header = _header(path)
    if "pattern_id" in header:
        return Labels(path, "pattern", read_pattern_labels(path), "typology")
    names: Literal["rule", "typology"] = "typology" if "typology" in header and "rule_id" not in header else "rule"
    return Labels(path, "scenario", read_labels(path), names)


_EVIDENCE = """
evidence AS (
  SELECT alert_id, rule_id, unnest(evidence_sources) AS source, unnest(evidence) AS event_id FROM cur
  UNION
  SELECT alert_id, rule_id, fire_source, fire_event_id FROM cur
)"""

# ``tg``: what each scored rule targets (``RuleMeta.targets``): its own id and its typologies;
# ``own_hits``: the hits on what the alert's rule targets.
_SCENARIO_SQL = """
hits AS (
  SELECT DISTINCT e.alert_id, e.rule_id AS alert_rule, l.scenario_id, l.target, l.label
  FROM evidence e JOIN {labels} l ON l.source = e.source AND l.event_id = e.event_id
),
own_hits AS (SELECT h.* FROM hits h JOIN tg ON tg.rule_id = h.alert_rule AND tg.target = h.target),
scenarios AS (
  SELECT tg.rule_id,
    count(DISTINCT l.scenario_id) FILTER (WHERE l.label = 'suspicious') AS scenarios,
    count(DISTINCT l.scenario_id) FILTER (WHERE l.label = 'decoy') AS decoys
  FROM tg JOIN {labels} l ON l.target = tg.target GROUP BY tg.rule_id
),
covered AS (
  SELECT alert_rule AS rule_id,
    count(DISTINCT scenario_id) FILTER (WHERE label = 'suspicious') AS detected,
    count(DISTINCT scenario_id) FILTER (WHERE label = 'decoy') AS decoys_fired
  FROM own_hits GROUP BY alert_rule
),
true_any AS (
  SELECT alert_rule AS rule_id, count(DISTINCT alert_id) AS n FROM hits WHERE label = 'suspicious' GROUP BY alert_rule
),
true_own AS (
  SELECT alert_rule AS rule_id, count(DISTINCT alert_id) AS n FROM own_hits WHERE label = 'suspicious'
  GROUP BY alert_rule
)"""

# A pattern's records counted once, however often the file repeats them; ``found``: the patterns
# one alert of a rule holds at least half of.
_PATTERN_COVER = """
records AS (SELECT DISTINCT pattern_id, target, source, event_id FROM {labels}),
sizes AS (SELECT pattern_id, any_value(target) AS target, count(*) AS size FROM records GROUP BY pattern_id),
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
own_hits AS (
  SELECT h.* FROM hits h JOIN sizes s USING (pattern_id) JOIN tg ON tg.rule_id = h.rule_id AND tg.target = s.target
),
scenarios AS (
  SELECT tg.rule_id, count(*) AS scenarios, 0 AS decoys FROM tg JOIN sizes s ON s.target = tg.target
  GROUP BY tg.rule_id
),
covered AS (
  SELECT f.rule_id, count(*) AS detected, 0 AS decoys_fired
  FROM found f JOIN sizes s USING (pattern_id) JOIN tg ON tg.rule_id = f.rule_id AND tg.target = s.target
  GROUP BY f.rule_id
),
true_any AS (SELECT rule_id, count(DISTINCT alert_id) AS n FROM hits GROUP BY rule_id),
true_own AS (SELECT rule_id, count(DISTINCT alert_id) AS n FROM own_hits GROUP BY rule_id)"""
)

Targets = Mapping[str, Sequence[str]]  # rule id -> the typologies it declares (RuleMeta.typologies)
_TARGETS_SCHEMA = pa.schema([("rule_id", pa.string()), ("target", pa.string())])


def _targets_table(targets: Targets | None) -> pa.Table:
    pairs = [(r, t) for r, ts in (targets or {}).items() for t in ts]
    return pa.table({"rule_id": [r for r, _ in pairs], "target": [t for _, t in pairs]}, schema=_TARGETS_SCHEMA)


def _tg(rules: str, targets: str) -> str:
    """CTE ``tg``: every rule of ``rules`` targets its own id and the typologies ``targets`` lists."""
    return f"""tg AS (
  SELECT rule_id, rule_id AS target FROM {rules}
  UNION SELECT t.rule_id, t.target FROM {targets} t WHERE t.rule_id IN (SELECT rule_id FROM {rules})
)"""


@dataclass(frozen=True)
class TypologyRecall:
    """How many scenarios or patterns of one typology (or, for labels that name rules, of one
    rule) each rule detects; its own rules together (every rule that targets it: their union);
    and every rule together."""

    typology: str
    patterns: int
    by_rule: dict[str, int]
    any_rule: int
    own: int = 0
    rules: tuple[str, ...] = ()  # the rules that target it
    by_case: int = 0  # detected by one case: the union of one scheme's alerts (schemes.py), any rule


def typology_recall(
    con: duckdb.DuckDBPyConnection,
    alerts_sql: str,
    labels: Labels,
    rule_ids: Sequence[str],
    targets: Targets | None = None,
) -> list[TypologyRecall]:
    """Detected patterns (per scenario: covered suspicious scenarios) per typology, sorted, for each
    rule in ``rule_ids``, for the rules that target the typology together, and for all rules."""
    view, tview = f"labels_{uuid.uuid4().hex}", f"targets_{uuid.uuid4().hex}"
    sview = f"schemes_{uuid.uuid4().hex}"
    if labels.format == "pattern":
        units = (
            _PATTERN_HITS.format(labels=view)
            + f""",
units AS (SELECT pattern_id AS unit, target FROM sizes),
unit_found AS (SELECT rule_id, pattern_id AS unit FROM found),
scheme_hits AS (
  SELECT sc.scheme_id, r.pattern_id, count(DISTINCT r.source || chr(31) || r.event_id) AS covered
  FROM evidence e JOIN {sview} sc USING (alert_id) JOIN records r ON r.source = e.source AND r.event_id = e.event_id
  GROUP BY ALL
),
case_found AS (
  SELECT DISTINCT h.pattern_id AS unit FROM scheme_hits h JOIN sizes s USING (pattern_id) WHERE 2 * h.covered >= s.size
)"""
        )
    else:  # a scenario one alert overlaps is one its case overlaps
        units = f"""units AS (SELECT DISTINCT scenario_id AS unit, target FROM {view} WHERE label = 'suspicious'),
unit_found AS (
  SELECT DISTINCT e.rule_id, l.scenario_id AS unit
  FROM evidence e JOIN {view} l ON l.source = e.source AND l.event_id = e.event_id WHERE l.label = 'suspicious'
),
case_found AS (SELECT DISTINCT unit FROM unit_found)"""
    rules = "scored AS (SELECT DISTINCT rule_id FROM cur UNION SELECT DISTINCT rule_id FROM " + tview + ")"
    schemes = link_alerts(con, alerts_sql)
    con.register(view, labels.table)
    con.register(tview, _targets_table(targets))
    con.register(sview, pa.table({"alert_id": list(schemes), "scheme_id": list(schemes.values())}))
    try:
        head = f"WITH cur AS ({alerts_sql}), {_EVIDENCE}, {units}, {rules}, {_tg('scored', tview)}"
        rows = con.execute(
            f"""{head}
            SELECT u.target, f.rule_id, grouping(f.rule_id) AS everyone, count(DISTINCT u.unit), count(DISTINCT f.unit)
            FROM units u LEFT JOIN unit_found f USING (unit)
            GROUP BY GROUPING SETS ((u.target), (u.target, f.rule_id))
            """
        ).fetchall()
        own = dict(
            con.execute(
                f"""{head}
                SELECT u.target, count(DISTINCT f.unit)
                FROM units u JOIN unit_found f USING (unit) JOIN tg ON tg.rule_id = f.rule_id AND tg.target = u.target
                GROUP BY u.target
                """
            ).fetchall()
        )
        by_case = dict(
            con.execute(
                f"{head} SELECT u.target, count(*) FROM units u SEMI JOIN case_found USING (unit) GROUP BY u.target"
            ).fetchall()
        )
        owners: dict[str, list[str]] = {}
        for rule_id, target in con.execute(f"{head} SELECT rule_id, target FROM tg ORDER BY rule_id").fetchall():
            owners.setdefault(str(target), []).append(str(rule_id))
    finally:
        con.unregister(view)
        con.unregister(tview)
        con.unregister(sview)
    totals = {str(t): (int(n), int(found)) for t, _, everyone, n, found in rows if everyone}
    by_rule: dict[str, dict[str, int]] = {t: dict.fromkeys(rule_ids, 0) for t in totals}
    for t, rule_id, everyone, _, found in rows:
        if not everyone and rule_id in by_rule[str(t)]:
            by_rule[str(t)][rule_id] = int(found)
    return [
        TypologyRecall(t, n, by_rule[t], found, int(own.get(t, 0)), tuple(owners.get(t, ())), int(by_case.get(t, 0)))
        for t, (n, found) in sorted(totals.items())
    ]


def score_alerts(
    con: duckdb.DuckDBPyConnection,
    alerts_sql: str,
    labels: Labels,
    rule_ids: Sequence[str] | None = None,
    targets: Targets | None = None,
) -> list[RuleScore]:
    """Score the alerts ``alerts_sql`` selects (columns alert_id, rule_id, fire_source,
    fire_event_id, evidence_sources, evidence). One score per rule in ``rule_ids``, in that order;
    without it, per rule that has alerts, that labels name, or that targets a labelled typology,
    sorted by rule id. ``targets``: the typologies each rule declares (by default none: a rule
    targets only scenarios labelled with its id)."""
    view, tview = f"labels_{uuid.uuid4().hex}", f"targets_{uuid.uuid4().hex}"
    body = (_SCENARIO_SQL if labels.format == "scenario" else _PATTERN_SQL).format(labels=view)
    if rule_ids is not None:
        rules = "rules AS (SELECT unnest($rule_ids::VARCHAR[]) AS rule_id, unnest(range(len($rule_ids))) AS pos)"
    else:
        named = f" UNION SELECT target FROM {view}" if labels.format == "scenario" and labels.names == "rule" else ""
        rules = (
            f"rules AS (SELECT rule_id, rule_id AS pos FROM (SELECT rule_id FROM cur{named} "
            f"UNION SELECT t.rule_id FROM {tview} t WHERE t.target IN (SELECT target FROM {view})))"
        )
    con.register(view, labels.table)
    con.register(tview, _targets_table(targets))
    try:
        rows = con.execute(
            f"""
            WITH cur AS ({alerts_sql}), {rules}, {_tg("rules", tview)}, {_EVIDENCE}, {body},
            counts AS (SELECT rule_id, count(*) AS n FROM cur GROUP BY rule_id)
            SELECT r.rule_id, coalesce(s.scenarios, 0), coalesce(c.detected, 0), coalesce(n.n, 0),
                   coalesce(o.n, 0), coalesce(s.decoys, 0), coalesce(c.decoys_fired, 0), coalesce(a.n, 0)
            FROM rules r
            LEFT JOIN scenarios s USING (rule_id)
            LEFT JOIN covered c USING (rule_id)
            LEFT JOIN true_own o USING (rule_id)
            LEFT JOIN true_any a USING (rule_id)
            LEFT JOIN counts n USING (rule_id)
            ORDER BY r.pos
            """,
            {"rule_ids": list(rule_ids)} if rule_ids is not None else {},
        ).fetchall()
    finally:
        con.unregister(view)
        con.unregister(tview)
    return [
        RuleScore(
            rule_id=str(r[0]),
            scenarios=int(r[1]),
            detected=int(r[2]),
            alerts=int(r[3]),
            true_alerts=int(r[4]),
            decoys=int(r[5]),
            decoys_fired=int(r[6]),
            unit=labels.format,
            true_any=int(r[7]),
        )
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


def stored_targets(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, ...]]:
    """The typologies each rule declared in the latest scan that ran it (``scans.rules``)."""
    rows = con.execute(
        f"""
        SELECT rule_id, typologies FROM ({SCAN_RULES_SQL})
        QUALIFY row_number() OVER (PARTITION BY rule_id ORDER BY scan_id DESC) = 1
        """
    ).fetchall()
    return {str(rule_id): tuple(map(str, typologies or ())) for rule_id, typologies in rows}


def evaluate_store(
    store: Store,
    labels_path: str | Path,
    targets: Targets | None = None,
    *,
    param_sets: Mapping[str, str] | None = None,
) -> list[RuleScore]:
    """One score per rule that has labels or stored alerts, sorted by rule id. ``targets``: the
    typologies each rule declares; by default as the latest scan of each rule recorded them.
    ``param_sets``: as ``current_alerts_sql``."""
    if targets is None:
        targets = stored_targets(store.con)
    return score_alerts(store.con, current_alerts_sql(param_sets), load_labels(labels_path), targets=targets)


def ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def render_scores(scores: list[RuleScore]) -> Table:
    per_pattern = bool(scores) and all(s.unit == "pattern" for s in scores)
    caption = (
        "patterns: those of the typologies the rule targets; found: of which one of the rule's alerts "
        "covers at least half the records; prec.: the rule's alerts holding a record of them; any: "
        "holding any labelled record"
        if per_pattern
        else "scenarios: those labelled for the rule or its typologies; found: covered by the rule's "
        "alerts; prec.: the rule's alerts covering one of them; any: covering any suspicious "
        "scenario; decoys: near misses that fired / planted (should be 0)"
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
    # Short headings keep the table inside 80 columns; the caption says what each one means.
    names = ("patterns", "found", "recall", "alerts", "prec.", "any")
    for name in names if per_pattern else ("scenarios", *names[1:], "decoys"):
        table.add_column(name, justify="right", min_width=len(name))
    for s in scores:
        cells: list[str | Text] = [Text(s.rule_id), str(s.scenarios), str(s.detected), recall_cell(s.recall)]
        cells.append(str(s.alerts))
        cells += [ratio(s.precision), ratio(s.precision_any)]
        if not per_pattern:
            cells.append(decoys_cell(s))
        table.add_row(*cells)
    return table


# Styled as Text, not markup: the CLI's console reads no markup (values come from users' files).
def recall_cell(recall: float | None) -> Text:
    return Text(ratio(recall), style="yellow" if recall is not None and recall < 1 else "")


def decoys_cell(s: RuleScore) -> Text:
    return Text(f"{s.decoys_fired}/{s.decoys}", style="bold red" if s.decoys_fired else "")


def render_typologies(typologies: list[TypologyRecall], unit: LabelFormat) -> Table:
    """Per typology: its own rules together, the best single rules and every rule together."""
    units = "patterns" if unit == "pattern" else "scenarios"
    table = Table(
        title=f"{units.capitalize()} detected by typology",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=0,
        caption="own: by an alert of a rule that targets the typology (listed), together; any: by an alert of "
        "any rule; case: by the alerts of one case together (one scheme, flagstone.schemes); best: the single "
        "rules detecting most",
        caption_justify="left",
    )
    table.add_column("typology", no_wrap=True)
    for name in (units, "own", "recall", "any", "recall", "case", "recall"):
        table.add_column(name, justify="right", min_width=len(name))
    table.add_column("own rules / best")
    for t in typologies:
        top = max(t.by_rule.values(), default=0)
        best = ", ".join(f"{r} {n}" for r, n in t.by_rule.items() if n == top and n) or "–"
        table.add_row(
            Text(t.typology),
            str(t.patterns),
            str(t.own),
            ratio(t.own / t.patterns if t.patterns else None),
            str(t.any_rule),
            ratio(t.any_rule / t.patterns if t.patterns else None),
            str(t.by_case),
            ratio(t.by_case / t.patterns if t.patterns else None),
            Text(f"{', '.join(t.rules) or '–'} / {best}"),
        )
    return table


def evaluate_typologies(
    store: Store,
    labels_path: str | Path,
    targets: Targets | None = None,
    *,
    param_sets: Mapping[str, str] | None = None,
) -> list[TypologyRecall]:
    """Per typology, for the stored alerts, when the labels name typologies (else none)."""
    labels = load_labels(labels_path)
    if labels.names != "typology":
        return []
    if targets is None:
        targets = stored_targets(store.con)
    cur = current_alerts_sql(param_sets)
    rule_ids = [str(r) for (r,) in store.con.execute(f"SELECT DISTINCT rule_id FROM ({cur}) ORDER BY 1").fetchall()]
    return typology_recall(store.con, cur, labels, rule_ids, targets)


def parse_param_sets(items: Sequence[str]) -> dict[str, str]:
    """``--param-set RULE_ID=SET`` (repeatable): SET as ``flagstone scan`` prints it, or ``file``
    for the rule file's own parameters."""
    out: dict[str, str] = {}
    for item in items:
        rule_id, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not _SAFE.match(rule_id) or not _SAFE.match(value):
            raise InputError(
                "expected RULE_ID=SET (SET as flagstone scan prints it, or file)", field="--param-set", value=item
            )
        out[rule_id] = "" if value == "file" else value
    return out
