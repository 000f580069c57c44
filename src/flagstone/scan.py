"""Run a rule set over the store and record its alerts (and the scan itself)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from flagstone.alerts import alert_rows, insert_alerts, scan_record
from flagstone.engines import DuckDBEngine
from flagstone.rules import RuleSet
from flagstone.schemes import store_schemes
from flagstone.store import Store


@dataclass
class RuleOutcome:
    rule_id: str
    version: int
    alerts: int
    new: int
    seconds: float
    param_set: str = ""  # RuleMeta.param_set: "" for the rule file's own parameters


@dataclass
class ScanResult:
    scan_id: int
    events: int
    outcomes: list[RuleOutcome] = field(default_factory=list)
    seconds: float = 0.0
    # The active triage model, if any, and the new alerts it scored (in ``scoring_seconds``).
    schemes: int = 0  # schemes over every stored alert after the scan (flagstone.schemes)
    model_id: str | None = None
    scored: int = 0
    scoring_seconds: float = 0.0

    @property
    def alerts(self) -> int:
        return sum(o.alerts for o in self.outcomes)

    def summary_lines(self) -> list[str]:
        lines = [
            f"{o.rule_id} v{o.version}{f' (parameter set {o.param_set})' if o.param_set else ''}: "
            f"{o.alerts} alerts ({o.new} new) in {o.seconds:.2f}s"
            for o in self.outcomes
        ]
        lines.append(
            f"scan {self.scan_id}: {len(self.outcomes)} rules over {self.events:,} events, "
            f"{self.alerts} alerts in {self.seconds:.1f}s; the store's alerts form {self.schemes:,} schemes"
        )
        if self.model_id:
            lines.append(
                f"triage model {self.model_id}: {self.scored} new alerts scored in {self.scoring_seconds:.1f}s"
            )
        return lines


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def scan_store(store: Store, ruleset: RuleSet, *, progress: bool = True) -> ScanResult:
    """Every rule on the DuckDB engine; alerts already stored (same alert id) are kept, not doubled."""
    con = store.con
    scan_id = store.next_id("scans", "scan_id")
    rules_meta = [scan_record(r) for r in ruleset]
    con.execute(
        "INSERT INTO scans (scan_id, started_at, rules) VALUES (?, ?, ?)", [scan_id, _now(), json.dumps(rules_meta)]
    )
    events = int(store.scalar("SELECT count(*) FROM events"))
    result = ScanResult(scan_id=scan_id, events=events)
    engine = DuckDBEngine(con)
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]scan[/]"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} rules"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        disable=not progress,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=len(ruleset))
        for rule in ruleset:
            bar.update(task, description=rule.meta.id)
            t0 = time.perf_counter()
            findings = engine.run(rule)
            with store.transaction():
                new = insert_alerts(store, alert_rows(rule, findings, scan_id))
            result.outcomes.append(
                RuleOutcome(
                    rule.meta.id, rule.meta.version, len(findings), new, time.perf_counter() - t0, rule.meta.param_set
                )
            )
            bar.advance(task)
    result.seconds = time.perf_counter() - started
    con.execute("UPDATE scans SET finished_at = ?, alerts = ? WHERE scan_id = ?", [_now(), result.alerts, scan_id])
    result.schemes = store_schemes(store)
    _score_new(store, result)
    return result


def _score_new(store: Store, result: ScanResult) -> None:
    """With an active triage model, the scan's new alerts get their priority and explanation."""
    from flagstone.triage.registry import active_model_id, score_store, stored_model

    model_id = active_model_id(store)
    if model_id is None:
        return
    started = time.perf_counter()
    new = [
        a for (a,) in store.con.execute("SELECT alert_id FROM alerts WHERE scan_id = ?", [result.scan_id]).fetchall()
    ]
    result.model_id = model_id
    result.scored = score_store(store, stored_model(store, model_id), new) if new else 0
    result.scoring_seconds = time.perf_counter() - started
