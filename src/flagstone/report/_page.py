"""The report page: one self-contained HTML file with plotly.js inlined once.

Every piece of text from the store passes through ``html.escape``; figure JSON sits in a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, so no value can
close the block or inject markup. Plots are drawn when they scroll into view, which keeps a page
with hundreds of evidence timelines quick to open; printing (or ``report.html#all``) draws all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from plotly.offline import get_plotlyjs

from flagstone.alerts import format_value
from flagstone.evaluate import RuleScore, evaluate_store
from flagstone.owner_only import private_output
from flagstone.report import _figures
from flagstone.report._data import AlertView, ReportData, load
from flagstone.report._triage import triage_section
from flagstone.store import Store

TOP_ALERTS = 200
TOP_GROUPS = 20

CSS = """
:root { --ink:#1f2937; --muted:#6b7280; --line:#e5e7eb; --bg:#f6f7f9; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif; color:var(--ink);
       background:var(--bg); }
header.top { background:#111827; color:#f9fafb; padding:20px 32px; }
header.top h1 { margin:0; font-size:22px; font-weight:600; }
header.top p { margin:4px 0 0; color:#d1d5db; font-size:13px; }
header.top code { background:#374151; color:#f9fafb; }
main { max-width:1200px; margin:0 auto; padding:24px 32px 64px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:18px 20px;
          margin:0 0 20px; }
h2 { font-size:17px; margin:0 0 12px; }
.note { color:var(--muted); font-size:13px; margin:4px 0 12px; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(170px,1fr)); gap:12px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; background:#fbfbfc; }
.card .n { font-size:24px; font-weight:650; }
.card .l { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card .d { color:var(--muted); font-size:12px; }
.grid2 { display:grid; grid-template-columns:1fr 1fr; gap:20px; }
@media (max-width:900px) { .grid2 { grid-template-columns:1fr; } }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.r, th.r { text-align:right; font-variant-numeric:tabular-nums; }
code { font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; background:#f3f4f6; padding:1px 4px;
       border-radius:4px; word-break:break-all; }
.sev { display:inline-block; padding:1px 8px; border-radius:999px; color:#fff; font-size:12px;
       font-weight:600; }
.bad { color:#b91c1c; font-weight:600; }
.warn { color:#b45309; font-weight:600; }
article.alert { border:1px solid var(--line); border-radius:8px; padding:12px 14px; margin:0 0 14px; }
article.alert h3 { font-size:14px; margin:0 0 4px; display:flex; gap:8px; align-items:center;
                   flex-wrap:wrap; }
article.alert .reason { margin:2px 0 6px; }
dl.values { display:flex; flex-wrap:wrap; gap:4px 18px; margin:0 0 6px; font-size:13px; }
dl.values dt { color:var(--muted); } dl.values dd { margin:0 0 0 4px; font-weight:600; }
dl.values div { display:flex; }
.plot { width:100%; min-height:60px; }
.plot.big { min-height:300px; }
"""

SCRIPT = """
(function () {
  var figs = JSON.parse(document.getElementById('fs-figures').textContent);
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ['lasso2d', 'select2d']};
  function draw(el) {
    if (el.getAttribute('data-drawn')) return;
    el.setAttribute('data-drawn', '1');
    var f = figs[el.getAttribute('data-fig')];
    try { Plotly.newPlot(el, f.data, f.layout, config); }
    catch (err) { el.textContent = 'This plot could not be drawn: ' + err; }
  }
  var els = Array.prototype.slice.call(document.querySelectorAll('[data-fig]'));
  function drawAll() { els.forEach(draw); }
  // Printing, or opening the page as report.html#all, draws every plot at once.
  window.addEventListener('beforeprint', drawAll);
  if (location.hash === '#all' || !('IntersectionObserver' in window)) { drawAll(); return; }
  var io = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) { draw(e.target); io.unobserve(e.target); } });
  }, {rootMargin: '600px'});
  els.forEach(function (el) { io.observe(el); });
})();
"""


def _script_json(value: str) -> str:
    """JSON made safe inside a script element: nothing in it can end the element."""
    return (
        value.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _ts(value: datetime | None) -> str:
    return "–" if value is None else f"{value:%Y-%m-%d %H:%M}"


def _badge(severity: str) -> str:
    colour = _figures.SEVERITY_COLOURS.get(severity, "#9ca3af")
    return f'<span class="sev" style="background:{colour}">{escape(severity)}</span>'


_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def _value(v: Any) -> str:
    # Exact decimals arrive as JSON text ("27891.62"); show them like every other number.
    if isinstance(v, str) and _NUMBER.match(v):
        return format_value(Decimal(v))
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, list | dict):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


class _Page:
    def __init__(self) -> None:
        self.figures: dict[str, str] = {}

    def plot(self, fig_json: str, *, big: bool = False) -> str:
        key = f"f{len(self.figures)}"
        self.figures[key] = fig_json
        return f'<div class="plot{" big" if big else ""}" data-fig="{key}"></div>'

    def figures_json(self) -> str:
        return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in self.figures.items()) + "}"


def _summary(data: ReportData) -> str:
    events = sum(s.events for s in data.sources)
    firsts = [s.first for s in data.sources if s.first]
    lasts = [s.last for s in data.sources if s.last]
    per_source = ", ".join(f"{escape(s.source)} {s.events:,}" for s in data.sources) or "no events"
    period = f"{_ts(min(firsts))} – {_ts(max(lasts))} UTC" if firsts else "–"
    cards = [
        ("events", f"{events:,}", per_source),
        ("alerts", f"{data.alerts:,}", f"from {len(data.by_rule)} rules"),
        ("groups alerted", f"{data.n_groups:,}", "distinct pseudonymous groups"),
        ("entities", f"{data.entities:,}", "reference records"),
        ("scans", f"{data.scans:,}", "alerts kept across scans"),
    ]
    html = "".join(
        f'<div class="card"><div class="l">{escape(label)}</div><div class="n">{n}</div><div class="d">{d}</div></div>'
        for label, n, d in cards
    )
    return (
        f'<section><h2>Summary</h2><p class="note">Events from {period}.</p><div class="cards">{html}</div></section>'
    )


def _rules_table(data: ReportData) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(r)}</code></td><td>{_badge(sev)}</td><td class='r'>{n:,}</td>"
        f"<td>{_ts(first)}</td><td>{_ts(last)}</td></tr>"
        for r, sev, n, first, last in data.by_rule
    )
    return (
        "<table><thead><tr><th>rule</th><th>severity</th><th class='r'>alerts</th><th>first evidence</th>"
        f"<th>last alert</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _groups_table(data: ReportData) -> str:
    rows = "".join(
        f"<tr><td class='r'>{i}</td><td><code>{escape(g.group_key)}</code></td>"
        f"<td class='r'>{g.alerts:,}</td>"
        f"<td>{_badge(g.top_severity)}</td><td>{escape(', '.join(g.rules))}</td>"
        f"<td>{_ts(g.first)} – {_ts(g.last)}</td></tr>"
        for i, g in enumerate(data.groups, start=1)
    )
    return (
        "<table><thead><tr><th class='r'>#</th><th>group (pseudonym)</th><th class='r'>alerts</th>"
        f"<th>top severity</th><th>rules</th><th>period</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _evaluation(scores: list[RuleScore], labels: Path) -> str:
    def ratio(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    per_pattern = bool(scores) and all(s.unit == "pattern" for s in scores)
    rows = []
    for s in scores:
        recall = ratio(s.recall)
        if s.recall is not None and s.recall < 1:
            recall = f"<span class='warn'>{recall}</span>"
        fired = f"{s.decoys_fired}/{s.decoys}"
        rows.append(
            f"<tr><td><code>{escape(s.rule_id)}</code></td><td class='r'>{s.scenarios}</td>"
            f"<td class='r'>{s.detected}</td><td class='r'>{recall}</td><td class='r'>{s.alerts:,}</td>"
            f"<td class='r'>{ratio(s.precision)}</td><td class='r'>{ratio(s.precision_any)}</td>"
            + (
                ""
                if per_pattern
                else f"<td class='r'>{f'<span class=bad>{fired}</span>' if s.decoys_fired else fired}</td>"
            )
            + "</tr>"
        )
    if per_pattern:
        title, unit = "patterns", "patterns"
        note = (
            "Patterns: those of the typologies the rule targets. Recall: of which one of the rule's alerts "
            "holds at least half the records. Precision: the rule's alerts whose evidence holds a record of "
            "them; any: of any labelled pattern."
        )
    else:
        title, unit = "scenarios", "scenarios"
        note = (
            "Scenarios: those labelled for the rule or the typologies it targets. Recall: covered by the "
            "rule's alerts. Precision: the rule's alerts whose evidence overlaps one of them; any: any "
            "suspicious scenario. Decoys fired: near misses that should not have fired."
        )
    return (
        f"<section><h2>Evaluation against labelled {title}</h2><p class='note'>Labels from "
        f"<code>{escape(labels.name)}</code>. {note}</p><table><thead><tr><th>rule</th>"
        f"<th class='r'>{unit}</th>"
        "<th class='r'>detected</th><th class='r'>recall</th><th class='r'>alerts</th>"
        "<th class='r'>precision</th><th class='r'>any</th>"
        + ("" if per_pattern else "<th class='r'>decoys fired</th>")
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


def _alert(page: _Page, n: int, alert: AlertView, colour: str) -> str:
    values = "".join(
        f"<div><dt>{escape(str(k))}</dt><dd>{escape(_value(v))}</dd></div>" for k, v in alert.values.items()
    )
    missing = sum(e.ts is None for e in alert.evidence)
    gone = f" · <span class='warn'>{missing} evidence events no longer in the store</span>" if missing else ""
    return (
        f"<article class='alert' id='alert-{n}'><h3>{_badge(alert.severity)}"
        f"<code>{escape(alert.rule_id)}</code>"
        f"<span class='note'>v{alert.rule_version}</span> · group <code>{escape(alert.group_key)}</code></h3>"
        f"<p class='reason'>{escape(alert.reason)}</p><dl class='values'>{values}</dl>"
        f"<div class='note'>{_ts(alert.first_ts)} – {_ts(alert.last_ts)} UTC · fired at "
        f"<code>{escape(alert.fire[0])}/{escape(alert.fire[1])}</code> · {len(alert.evidence)} evidence "
        f"events{gone} · alert <code>{escape(alert.alert_id)}</code></div>"
        f"{page.plot(_figures.timeline(alert, colour))}</article>"
    )


def render(
    store: Store,
    *,
    labels: Path | None,
    top_alerts: int = TOP_ALERTS,
    top_groups: int = TOP_GROUPS,
    param_sets: Mapping[str, str] | None = None,
) -> str:
    data = load(store, top_alerts=top_alerts, top_groups=top_groups, param_sets=param_sets)
    page = _Page()
    colours = _figures.rule_colour([r for r, *_ in data.by_rule])
    parts = [_summary(data)]
    if data.alerts:
        parts.append(
            "<section><h2>Alerts by rule over time</h2><p class='note'>Alerts per day of the firing event, "
            f"stacked by rule.</p>{page.plot(_figures.alerts_over_time(data.by_day, colours), big=True)}"
            f"{_rules_table(data)}</section>"
        )
        parts.append(
            "<div class='grid2'>"
            "<section><h2>Severity mix</h2>"
            f"{page.plot(_figures.severity_mix(data.by_severity), big=True)}</section>"
            f"<section><h2>Top groups</h2><p class='note'>The {len(data.groups)} groups with most alerts, "
            f"coloured by their most severe alert.</p>{page.plot(_figures.top_groups(data.groups), big=True)}"
            "</section></div>"
        )
        parts.append(
            f"<section><h2>Top groups in detail</h2><p class='note'>{data.n_groups:,} groups have alerts; "
            "keys are pseudonyms, never identities.</p>" + _groups_table(data) + "</section>"
        )
    else:
        parts.append(
            "<section><h2>Alerts</h2><p class='note'>No alerts in the store: run "
            "<code>flagstone scan</code> first.</p></section>"
        )
    if data.alerts:
        parts.append(triage_section(store))
    if labels is not None:
        parts.append(_evaluation(evaluate_store(store, labels, param_sets=param_sets), labels))
    if data.shown:
        hidden = data.alerts - len(data.shown)
        note = (
            f"Showing the {len(data.shown):,} most severe alerts, most recent first, of {data.alerts:,}: "
            f"<b>{hidden:,} alerts are not shown here</b> "
            "(export them all with <code>flagstone alerts</code>)."
            if hidden > 0
            else f"All {data.alerts:,} alerts, most severe first, then most recent."
        )
        cards = "".join(
            _alert(page, i, a, colours.get(a.rule_id, "#2563eb")) for i, a in enumerate(data.shown, start=1)
        )
        parts.append(
            f"<section><h2>Alert evidence timelines</h2><p class='note'>{note} Each plot shows the evidence "
            "events (star: the event at which the rule fired) and how they built up.</p>" + cards + "</section>"
        )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>Flagstone alert report</title><style>{CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        "<header class='top'><h1>Flagstone alert report</h1>"
        f"<p>Store <code>{escape(store.path.name)}</code> · generated {generated} · "
        "identifiers are pseudonyms · "
        "every alert is a lead for a human reviewer, not a finding</p></header><main>" + "".join(parts) + "</main>"
        f"<script type='application/json' id='fs-figures'>{_script_json(page.figures_json())}</script>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def write_report(
    store: Store,
    out: Path,
    *,
    labels: Path | None = None,
    top_alerts: int = TOP_ALERTS,
    param_sets: Mapping[str, str] | None = None,
) -> Path:
    """Write the HTML report to ``out`` (parents created) and return its path. ``param_sets``: as
    ``evaluate.current_alerts_sql``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    html = render(
        store, labels=Path(labels) if labels is not None else None, top_alerts=top_alerts, param_sets=param_sets
    )
    private_output(out).write_text(html, encoding="utf-8")
    return out
