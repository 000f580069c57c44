"""What the rules found, and how well: ``alerts`` (export them), ``evaluate`` (against labels),
``backtest`` (replay with other thresholds) and ``report`` (one HTML file)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from flagstone.cli._common import ParamsOpt, SetOpt, StoreOpt, err, friendly, out


class AlertFormat(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"


@friendly
def alerts(
    store: StoreOpt = None,
    format: Annotated[AlertFormat, typer.Option("--format", help="Output format.")] = AlertFormat.jsonl,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Output file (required for parquet; jsonl goes to stdout).")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only alerts of this rule id.")] = None,
) -> None:
    """Export the alerts in the store, with their evidence and computed values."""
    from flagstone.alerts import export_alerts
    from flagstone.audit.events import Exported
    from flagstone.oversight.activity import record
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        n = export_alerts(st, format.value, out_path, rule_id=rule, stdout=sys.stdout)
        path = st.path
    record(path, [Exported(f"alerts ({format.value})", str(out_path or "stdout"), n)])
    if out_path is not None:
        err.print(f"wrote {n} alerts to {out_path}")


ParamSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param-set",
        help="RULE_ID=SET: count that rule's alerts of this parameter set (as `flagstone scan` prints it, or "
        "`file` for the rule file's own) instead of those of its latest scan (repeatable).",
    ),
]


@friendly
def evaluate(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="Labels CSV: per scenario (labels.csv of `flagstone generate`) or per pattern "
            "(pattern_id,typology,source,event_id); see docs/backtest.md.",
        ),
    ],
    store: StoreOpt = None,
    rules: Annotated[
        list[Path] | None,
        typer.Option(
            "--rules",
            "-r",
            help="Rule files or packs whose `typology` declarations say what each rule targets "
            "(default: as the latest scan of each rule recorded them).",
        ),
    ] = None,
    param_set: ParamSetOpt = None,
) -> None:
    """Per-rule precision and recall of the stored alerts against labelled scenarios or patterns.

    Each rule is scored on what it targets (scenarios labelled with its id, and the typologies it
    declares), with the precision over any labelled record beside it; labels that name typologies
    add a table per typology (docs/backtest.md)."""
    from flagstone.evaluate import (
        evaluate_store,
        evaluate_typologies,
        load_labels,
        parse_param_sets,
        render_scores,
        render_typologies,
    )
    from flagstone.rules import load_rules
    from flagstone.store import Store

    targets = {r.meta.id: r.meta.typologies for r in load_rules(rules)} if rules else None
    chosen = parse_param_sets(param_set or [])
    with Store(store, read_only=True) as st:
        scores = evaluate_store(st, labels, targets, param_sets=chosen)
        typologies = evaluate_typologies(st, labels, targets, param_sets=chosen)
    out.print(render_scores(scores))
    if typologies:
        out.print(render_typologies(typologies, load_labels(labels).format))


@friendly
def backtest(
    rules: Annotated[list[Path], typer.Option("--rules", "-r", help="Rule files or pack folders (repeatable).")],
    labels: Annotated[
        Path, typer.Option("--labels", help="Labels CSV, per scenario or per pattern (see docs/backtest.md).")
    ],
    store: StoreOpt = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="Run one rule for each threshold value: RULE_ID.PARAM=LO:HI:STEP (repeatable)."),
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", help="Self-contained HTML file with the sweep plots.")] = Path(
        "backtest.html"
    ),
    params: ParamsOpt = None,
    set_: SetOpt = None,
) -> None:
    """Replay rules over the stored events and score them against labels, without storing alerts.

    Per rule: alerts, alerts per 1,000 stored events, precision and recall (docs/backtest.md).

    --sweep repeats them for every threshold value: tables here, above-/below-the-line plots in --out.
    """
    from flagstone.backtest import render_backtest, run_backtest
    from flagstone.report import write_backtest_report
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        result = run_backtest(
            st, rules, labels, sweeps=sweep or [], params_file=params, overrides=set_ or [], progress=True
        )
    for table in render_backtest(result):
        out.print(table)
    path = write_backtest_report(result, out_path)
    out.print(
        f"backtest of {result.events:,} events in {result.seconds:.1f}s; plots written to {path}",
        highlight=False,
        soft_wrap=True,
    )


@friendly
def report(
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Optional labels.csv to include precision/recall.")
    ] = None,
    param_set: ParamSetOpt = None,
) -> None:
    """Write one self-contained HTML report (opens offline): alerts over time, severities, top groups,
    and each alert's evidence timeline."""
    from flagstone.audit.events import Exported
    from flagstone.evaluate import parse_param_sets
    from flagstone.oversight.activity import record
    from flagstone.report import write_report
    from flagstone.store import Store

    chosen = parse_param_sets(param_set or [])
    with Store(store, read_only=True) as st:
        path = write_report(st, out_path, labels=labels, param_sets=chosen)
        n = int(st.scalar("SELECT count(*) FROM alerts"))
        store_path = st.path
    record(store_path, [Exported("report (html)", str(path), n)])
    out.print(f"report written to {path}")
