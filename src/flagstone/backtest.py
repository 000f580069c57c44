"""Backtests: replay rules over the stored events and score their alerts against labels, without
storing a single alert, so a backtest never reaches the review queue.

Each rule runs once as configured; each ``--sweep RULE_ID.PARAM=lo:hi:step`` runs that rule again
for every value of the parameter. Alerts stay in memory: they are handed to DuckDB as an Arrow
view and scored there by ``flagstone.evaluate.score_alerts``, the same SQL that scores stored
alerts. The store is opened read-only by the CLI. Figures are defined in ``docs/backtest.md``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa
from rich import box
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from flagstone.engines import DuckDBEngine
from flagstone.errors import InputError
from flagstone.evaluate import (
    LabelFormat,
    Labels,
    RuleScore,
    TypologyRecall,
    decoys_cell,
    load_labels,
    ratio,
    recall_cell,
    render_typologies,
    score_alerts,
    typology_recall,
)
from flagstone.rules import Rule, RuleSet, load_rules
from flagstone.rules.finding import Finding
from flagstone.rules.ir import Value
from flagstone.store import Store

MAX_SWEEP_VALUES = 200
_SPEC = re.compile(r"^\s*(?P<rule>[^=\s]+)\.(?P<param>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<range>.*?)\s*$")


@dataclass(frozen=True)
class SweepSpec:
    rule_id: str
    param: str
    values: tuple[int | Decimal, ...]
    text: str  # as given, for messages

    def override(self, value: int | Decimal) -> str:
        # Whole numbers stay integers (the YAML reads "3" as 3); others as exact decimal text.
        shown = str(value) if isinstance(value, int) else format(value, "f")
        return f"{self.rule_id}.{self.param}={shown}"


def _bad(text: str, why: str) -> InputError:
    return InputError(
        f"{why}; expected RULE_ID.PARAM=LO:HI:STEP, e.g. aml.structuring.min_deposits=2:6:1",
        field="--sweep",
        value=text,
    )


def parse_sweep(text: str) -> SweepSpec:
    """``aml.structuring.min_deposits=2:6:1`` -> the values 2, 3, 4, 5, 6 (``hi`` included)."""
    m = _SPEC.match(text)
    if not m:
        raise _bad(text, f"--sweep {text!r} is not RULE_ID.PARAM=LO:HI:STEP")
    parts = m["range"].split(":")
    if len(parts) != 3:
        raise _bad(text, f"--sweep {text!r}: the range {m['range']!r} needs three numbers LO:HI:STEP")
    try:
        lo, hi, step = (Decimal(p.strip()) for p in parts)
    except InvalidOperation as exc:
        raise _bad(text, f"--sweep {text!r}: LO, HI and STEP must be numbers") from exc
    if not all(d.is_finite() for d in (lo, hi, step)):
        raise _bad(text, f"--sweep {text!r}: LO, HI and STEP must be finite numbers")
    if step <= 0:
        raise _bad(text, f"--sweep {text!r}: STEP must be above 0")
    if hi < lo:
        raise _bad(text, f"--sweep {text!r}: HI must not be below LO")
    count = int((hi - lo) / step) + 1
    if count > MAX_SWEEP_VALUES:
        raise _bad(text, f"--sweep {text!r} gives {count} values; at most {MAX_SWEEP_VALUES}")
    whole = all(d == d.to_integral_value() for d in (lo, step))
    values = tuple(int(lo + k * step) if whole else lo + k * step for k in range(count))
    return SweepSpec(m["rule"], m["param"], values, text)


def check_sweep(spec: SweepSpec, ruleset: RuleSet) -> Value:
    """The parameter's configured value; an error naming the option if the rule or parameter is unknown."""
    try:
        rule = ruleset.by_id(spec.rule_id)
    except KeyError:
        known = ", ".join(r.meta.id for r in ruleset)
        raise InputError(
            f"--sweep {spec.text!r}: no rule '{spec.rule_id}' among the loaded rules ({known})",
            field="--sweep",
            value=spec.text,
        ) from None
    params = dict(rule.meta.params)
    if spec.param not in params:
        raise InputError(
            f"--sweep {spec.text!r}: rule '{spec.rule_id}' has no parameter '{spec.param}' "
            f"(it has: {', '.join(params) or 'none'})",
            field="--sweep",
            value=spec.text,
        )
    current = params[spec.param]
    if isinstance(current, bool) or not isinstance(current, int | float | Decimal):
        raise InputError(
            f"--sweep {spec.text!r}: parameter '{spec.param}' is {current!r}, not a number; only numbers sweep",
            field="--sweep",
            value=spec.text,
        )
    return current


@dataclass(frozen=True)
class BacktestRow:
    rule_id: str
    value: Value  # the swept parameter's value; None for the rules as configured
    score: RuleScore
    events: int

    @property
    def per_1000(self) -> float | None:
        return 1000 * self.score.alerts / self.events if self.events else None

    @property
    def false_alerts(self) -> int:
        return self.score.alerts - self.score.true_alerts

    @property
    def missed(self) -> int:
        return self.score.scenarios - self.score.detected


@dataclass
class Sweep:
    rule_id: str
    param: str
    configured: Value
    rows: list[BacktestRow] = field(default_factory=list)


@dataclass
class BacktestResult:
    store: Path
    labels: Path
    label_format: LabelFormat
    events: int  # every event the store holds, whatever the rules match
    rules: list[BacktestRow] = field(default_factory=list)
    sweeps: list[Sweep] = field(default_factory=list)
    typologies: list[TypologyRecall] = field(default_factory=list)  # labels that name typologies only
    seconds: float = 0.0


def _alerts_table(rule: Rule, findings: list[Finding]) -> pa.Table:
    # Only what scoring reads; ids are rule and position, since nothing here is stored.
    return pa.table(
        {
            "alert_id": pa.array([f"{rule.meta.id}/{k}" for k in range(len(findings))], type=pa.string()),
            "rule_id": pa.array([rule.meta.id] * len(findings), type=pa.string()),
            "fire_source": pa.array([f.fire[0] for f in findings], type=pa.string()),
            "fire_event_id": pa.array([f.fire[1] for f in findings], type=pa.string()),
            "evidence_sources": pa.array([[s for s, _ in f.evidence] for f in findings], type=pa.list_(pa.string())),
            "evidence": pa.array([[e for _, e in f.evidence] for f in findings], type=pa.list_(pa.string())),
        }
    )


class _Runner:
    """Runs one rule and scores its alerts; alerts live only in a temporary view."""

    def __init__(self, store: Store, labels: Labels, events: int) -> None:
        self.con = store.con
        self.engine = DuckDBEngine(store.con)
        self.labels = labels
        self.events = events

    def row(self, rule: Rule, value: Value, keep: list[pa.Table] | None = None) -> BacktestRow:
        alerts = _alerts_table(rule, self.engine.run(rule))
        if keep is not None:
            keep.append(alerts)
        with self._view(alerts) as view:
            targets = {rule.meta.id: rule.meta.typologies}
            (score,) = score_alerts(self.con, f"SELECT * FROM {view}", self.labels, [rule.meta.id], targets)
        return BacktestRow(rule.meta.id, value, score, self.events)

    def typologies(self, alerts: list[pa.Table], rules: Sequence[Rule]) -> list[TypologyRecall]:
        if self.labels.names != "typology" or not alerts:
            return []
        targets = {r.meta.id: r.meta.typologies for r in rules}
        with self._view(pa.concat_tables(alerts)) as view:
            return typology_recall(self.con, f"SELECT * FROM {view}", self.labels, list(targets), targets)

    @contextmanager
    def _view(self, table: pa.Table) -> Iterator[str]:
        view = f"backtest_alerts_{uuid.uuid4().hex}"
        self.con.register(view, table)
        try:
            yield view
        finally:
            self.con.unregister(view)


@contextmanager
def _bar(total: int, enabled: bool) -> Iterator[tuple[Progress, TaskID]]:
    with Progress(
        TextColumn("[bold]backtest[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} runs"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        disable=not enabled,
        transient=True,
    ) as bar:
        yield bar, bar.add_task("", total=total)


def run_backtest(
    store: Store,
    rule_paths: Sequence[str | Path],
    labels_path: str | Path,
    *,
    sweeps: Sequence[str] = (),
    params_file: str | Path | None = None,
    overrides: Sequence[str] = (),
    progress: bool = False,
) -> BacktestResult:
    """Every rule once as configured, then every sweep value; nothing is written to the store."""
    started = time.perf_counter()
    ruleset = load_rules(rule_paths, params_file=params_file, overrides=overrides)
    specs = [parse_sweep(s) for s in sweeps]
    configured = [check_sweep(spec, ruleset) for spec in specs]
    labels = load_labels(labels_path)
    events = int(store.scalar("SELECT count(*) FROM events"))
    runner = _Runner(store, labels, events)
    result = BacktestResult(store.path, Path(labels_path), labels.format, events)
    total = len(ruleset) + sum(len(s.values) for s in specs)
    kept: list[pa.Table] | None = [] if labels.names == "typology" else None
    with _bar(total, progress) as (bar, task):
        for rule in ruleset:
            bar.update(task, description=rule.meta.id)
            result.rules.append(runner.row(rule, None, kept))
            bar.advance(task)
        if kept is not None:
            result.typologies = runner.typologies(kept, list(ruleset))
            kept = None
        configured_rows = {row.rule_id: row for row in result.rules}
        for spec, current in zip(specs, configured, strict=True):
            sweep = Sweep(spec.rule_id, spec.param, current)
            for value in spec.values:
                bar.update(task, description=spec.override(value))
                swept = load_rules(rule_paths, params_file=params_file, overrides=[*overrides, spec.override(value)])
                rule = swept.by_id(spec.rule_id)
                if rule == ruleset.by_id(spec.rule_id):  # the configured value: already run
                    sweep.rows.append(replace(configured_rows[spec.rule_id], value=value))
                else:
                    sweep.rows.append(runner.row(rule, value))
                bar.advance(task)
            result.sweeps.append(sweep)
    result.seconds = time.perf_counter() - started
    return result


def _per_1000(row: BacktestRow) -> str:
    return "–" if row.per_1000 is None else f"{row.per_1000:.3f}"


def _cells(row: BacktestRow, per_pattern: bool) -> list[str | Text]:
    s = row.score
    cells: list[str | Text] = [
        f"{s.alerts:,}",
        _per_1000(row),
        f"{s.true_alerts:,}",
        f"{row.false_alerts:,}",
        ratio(s.precision),
        ratio(s.precision_any),
        f"{s.detected}/{s.scenarios}",
        recall_cell(s.recall),
    ]
    if not per_pattern:
        cells.append(decoys_cell(s))
    return cells


def _table(title: str, first: str, per_pattern: bool, caption: str | None = None) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=0, caption=caption, caption_justify="left")
    table.add_column(first, no_wrap=True)
    # Short headings keep the table inside 80 columns; the caption says what each one means.
    for name in (
        "alerts",
        "per 1k",
        "true",
        "false",
        "prec.",
        "any",
        "found",
        "recall",
        *(() if per_pattern else ("decoys",)),
    ):
        table.add_column(name, justify="right", min_width=len(name))
    return table


def render_backtest(result: BacktestResult) -> list[Table]:
    """The per-rule table, then one table per sweep (for the terminal)."""
    per_pattern = result.label_format == "pattern"
    unit = "patterns" if per_pattern else "scenarios"
    found = (
        "targeted patterns of which one alert holds at least half the records / all of them"
        if per_pattern
        else "the rule's suspicious scenarios an alert overlaps / all of them"
    )
    caption = (
        f"per 1k: alerts per 1,000 events the store holds ({result.events:,}); true / false: alerts whose "
        f"evidence does / does not hold a record of a {'' if per_pattern else 'suspicious '}{unit[:-1]} the rule "
        f"targets (its id or its typologies); prec.: true / alerts; any: the same for a {unit[:-1]} of any rule "
        f"or typology; found: {found}; recall: found as a share"
        + ("" if per_pattern else "; decoys: near misses that fired / planted")
        + ". No alert was written to the store."
    )
    tables = [_table(f"Backtest against {result.labels.name}", "rule", per_pattern, caption)]
    for row in result.rules:
        tables[0].add_row(Text(row.rule_id), *_cells(row, per_pattern))
    for sweep in result.sweeps:
        table = _table(
            f"Sweep of {sweep.rule_id} {sweep.param}",
            sweep.param,
            per_pattern,
            f"* the configured value, {sweep.configured}",
        )
        for row in sweep.rows:
            mark = " *" if row.value == sweep.configured else ""
            table.add_row(f"{row.value}{mark}", *_cells(row, per_pattern))
        tables.append(table)
    if result.typologies:
        tables.append(render_typologies(result.typologies, result.label_format))
    return tables
