"""The backtest page: a self-contained HTML file built the way the report is (plotly.js inlined once,
figure JSON in one escaped script block, every text escaped).

For each sweep, the above-/below-the-line view: for each threshold value, the alerts above the
line split into true and false ones, and the labelled scenarios (or patterns) missed below it;
and precision and recall against the threshold.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from flagstone.backtest import BacktestResult, BacktestRow, Sweep
from flagstone.evaluate import ratio
from flagstone.owner_only import private_output
from flagstone.report._figures import _json, _layout
from flagstone.report._page import CSS, SCRIPT, _Page, _script_json

TRUE_COLOUR = "#059669"
FALSE_COLOUR = "#9ca3af"
MISSED_COLOUR = "#dc2626"


def _x(rows: list[BacktestRow]) -> list[float]:
    return [float(r.value) if isinstance(r.value, int | float | Decimal) else 0.0 for r in rows]


def _configured_line(fig: go.Figure, sweep: Sweep) -> None:
    if isinstance(sweep.configured, int | float | Decimal):
        fig.add_vline(
            x=float(sweep.configured),
            line={"dash": "dot", "color": "#6b7280", "width": 1},
            annotation_text="configured",
            annotation_position="top",
        )


def above_below(sweep: Sweep, unit: str) -> str:
    """Alerts stacked above the line, missed scenarios hanging below it, each on its own scale
    (tens of thousands of false alerts must not flatten a handful of misses to nothing)."""
    rows, x = sweep.rows, _x(sweep.rows)
    param = escape(sweep.param)
    fig = go.Figure(
        layout=_layout(
            barmode="relative",
            height=380,
            legend={"y": -0.3},  # below the axis title
            xaxis={"title": {"text": param}, "tickvals": x, "anchor": "y2"},
            yaxis={
                "title": {"text": "alerts"},
                "domain": [0.42, 1],
                "rangemode": "tozero",
                "zeroline": True,
                "zerolinecolor": "#111827",
                "zerolinewidth": 2,
            },
            yaxis2={
                "title": {"text": f"missed {unit}"},
                "domain": [0, 0.38],
                "autorange": "reversed",
                "rangemode": "tozero",
                "gridcolor": "#eceff3",
                "zeroline": False,
                "automargin": True,
            },
        )
    )
    fig.add_bar(
        x=x,
        y=[r.score.true_alerts for r in rows],
        name="true alerts",
        marker_color=TRUE_COLOUR,
        hovertemplate=f"{param}=%{{x}}: %{{y}} true alerts<extra></extra>",
    )
    fig.add_bar(
        x=x,
        y=[r.false_alerts for r in rows],
        name="false alerts",
        marker_color=FALSE_COLOUR,
        hovertemplate=f"{param}=%{{x}}: %{{y}} false alerts<extra></extra>",
    )
    fig.add_bar(
        x=x,
        y=[r.missed for r in rows],
        yaxis="y2",
        name=f"missed {unit}",
        marker_color=MISSED_COLOUR,
        hovertemplate=f"{param}=%{{x}}: %{{y}} {unit} missed<extra></extra>",
    )
    _configured_line(fig, sweep)
    return _json(fig)


def precision_recall(sweep: Sweep) -> str:
    rows, x = sweep.rows, _x(sweep.rows)
    param = escape(sweep.param)
    fig = go.Figure(
        layout=_layout(
            height=360,
            legend={"y": -0.3},
            xaxis={"title": {"text": param}, "tickvals": x},
            yaxis={"title": {"text": "share"}, "range": [0, 1.05], "tickformat": ".0%"},
        )
    )
    for name, values, colour in (
        ("precision", [r.score.precision for r in rows], "#2563eb"),
        ("recall", [r.score.recall for r in rows], "#db2777"),
    ):
        fig.add_scatter(
            x=x,
            y=values,
            mode="lines+markers",
            name=name,
            line={"color": colour},
            hovertemplate=f"{param}=%{{x}}: {name} %{{y:.2f}}<extra></extra>",
        )
    _configured_line(fig, sweep)
    return _json(fig)


def _rows_html(rows: list[BacktestRow], first: list[str], per_pattern: bool) -> str:
    out = []
    for head, row in zip(first, rows, strict=True):
        s = row.score
        per_1000 = "–" if row.per_1000 is None else f"{row.per_1000:.3f}"
        recall = ratio(s.recall)
        if s.recall is not None and s.recall < 1:
            recall = f"<span class='warn'>{recall}</span>"
        cells = [
            f"{s.alerts:,}",
            per_1000,
            f"{s.true_alerts:,}",
            f"{row.false_alerts:,}",
            ratio(s.precision),
            ratio(s.precision_any),
            f"{s.detected}/{s.scenarios}",
            recall,
        ]
        if not per_pattern:
            fired = f"{s.decoys_fired}/{s.decoys}"
            cells.append(f"<span class='bad'>{fired}</span>" if s.decoys_fired else fired)
        out.append(f"<tr><td>{head}</td>" + "".join(f"<td class='r'>{c}</td>" for c in cells) + "</tr>")
    return "".join(out)


def _table(first: str, unit: str, per_pattern: bool, body: str) -> str:
    heads = [
        "alerts",
        "per 1,000 events",
        "true alerts",
        "false alerts",
        "precision",
        "any-rule precision",
        f"{unit} detected",
        "recall",
        *(() if per_pattern else ("decoys fired",)),
    ]
    return (
        f"<table><thead><tr><th>{escape(first)}</th>"
        + "".join(f"<th class='r'>{escape(h)}</th>" for h in heads)
        + f"</tr></thead><tbody>{body}</tbody></table>"
    )


def _typologies_html(result: BacktestResult) -> str:
    rules = [r.rule_id for r in result.rules]
    heads = "".join(f"<th class='r'><code>{escape(r)}</code></th>" for r in rules)
    rows = "".join(
        f"<tr><td>{escape(t.typology)}</td><td class='r'>{t.patterns}</td>"
        + "".join(f"<td class='r'>{t.by_rule.get(r, 0)}</td>" for r in rules)
        + f"<td class='r'>{t.own}</td><td class='r'>{ratio(t.own / t.patterns if t.patterns else None)}</td>"
        + f"<td class='r'>{t.any_rule}</td><td class='r'>{ratio(t.any_rule / t.patterns if t.patterns else None)}"
        f"</td><td class='r'>{t.by_case}</td><td class='r'>{ratio(t.by_case / t.patterns if t.patterns else None)}"
        "</td></tr>"
        for t in result.typologies
    )
    unit = "patterns" if result.label_format == "pattern" else "scenarios"
    detected = (
        "a pattern is detected when one alert's evidence holds at least half its records"
        if result.label_format == "pattern"
        else "a scenario is detected when an alert's evidence overlaps it"
    )
    return (
        f"<section><h2>{unit.capitalize()} detected by typology</h2><p class='note'>For each typology: the "
        f"labelled {unit}, how many each rule (as configured) detects, how many its own rules (those that "
        f"target it) detect together, how many any rule detects ({detected}), and how many one case "
        "detects: the alerts of one scheme together (alerts with mostly the same evidence, which the review "
        "queue shows as one case).</p><table><thead><tr>"
        f"<th>typology</th><th class='r'>{unit}</th>{heads}<th class='r'>own rules</th><th class='r'>recall</th>"
        "<th class='r'>any rule</th><th class='r'>recall</th><th class='r'>per case</th><th class='r'>recall</th>"
        "</tr></thead><tbody>"
        f"{rows}</tbody></table></section>"
    )


def render_backtest_page(result: BacktestResult) -> str:
    page = _Page()
    per_pattern = result.label_format == "pattern"
    unit = "patterns" if per_pattern else "scenarios"
    recall_def = (
        "share of the patterns it targets of which one alert's evidence covers at least half the records"
        if per_pattern
        else "share of the suspicious scenarios it targets that an alert's evidence overlaps"
    )
    one = "pattern" if per_pattern else "suspicious scenario"
    definitions = (
        f"<p class='note'>A rule targets the {unit} labelled with its id or with a typology it declares "
        f"(<code>typology</code>). Alerts per 1,000 events divide by every event the store holds "
        f"({result.events:,}), not only the events a rule looks at. True alerts: evidence holds a record of "
        f"a {one} the rule targets; false alerts: the rest. Precision: true alerts / alerts; any-rule "
        f"precision: alerts holding a record of any {one} / alerts. Recall: {recall_def}."
        + ("" if per_pattern else " Decoys fired: near-miss decoys of the rule that an alert overlaps.")
        + " No alert was written to the store.</p>"
    )
    heads = [f"<code>{escape(r.rule_id)}</code>" for r in result.rules]
    parts = [
        "<section><h2>Rules as configured</h2>"
        + definitions
        + _table("rule", unit, per_pattern, _rows_html(result.rules, heads, per_pattern))
        + "</section>"
    ]
    if result.typologies:
        parts.append(_typologies_html(result))
    for sweep in result.sweeps:
        marks = [escape(str(r.value)) + (" (configured)" if r.value == sweep.configured else "") for r in sweep.rows]
        parts.append(
            f"<section><h2>Sweep of <code>{escape(sweep.rule_id)}</code> parameter "
            f"<code>{escape(sweep.param)}</code></h2><p class='note'>Configured value "
            f"{escape(str(sweep.configured))}. Above the line: the alerts at each value, true and false; "
            f"below it: the labelled {unit} the rule misses.</p>"
            f"<div class='grid2'><div>{page.plot(above_below(sweep, unit), big=True)}</div>"
            f"<div>{page.plot(precision_recall(sweep), big=True)}</div></div>"
            + _table(sweep.param, unit, per_pattern, _rows_html(sweep.rows, marks, per_pattern))
            + "</section>"
        )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Flagstone backtest</title><style>{CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        "<header class='top'><h1>Flagstone backtest</h1>"
        f"<p>Store <code>{escape(result.store.name)}</code> · {result.events:,} events · labels "
        f"<code>{escape(result.labels.name)}</code> (per {unit[:-1]}) · generated {generated}</p></header>"
        "<main>" + "".join(parts) + "</main>"
        f"<script type='application/json' id='fs-figures'>{_script_json(page.figures_json())}</script>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_backtest_report(result: BacktestResult, out: Path) -> Path:
    """Write the backtest page to ``out`` (parents created) and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    private_output(out).write_text(render_backtest_page(result), encoding="utf-8")
    return out
