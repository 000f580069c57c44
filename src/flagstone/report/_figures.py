"""Plotly figures for the report, returned as JSON for plotly.js to draw in the page.

Figures use the empty "none" template and a small shared layout, which keeps each figure a few
kilobytes instead of carrying plotly's full default template two hundred times. Text that
plotly renders (hover labels, tick labels) is HTML-escaped first: plotly interprets a few tags.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from html import escape
from itertools import accumulate
from typing import Any

import plotly.graph_objects as go

from flagstone.report._data import AlertView, EvidenceEvent, GroupStats

SEVERITY_COLOURS = {
    "critical": "#7f1d1d",
    "high": "#dc2626",
    "medium": "#f59e0b",
    "low": "#3b82f6",
    "info": "#6b7280",
}
RULE_COLOURS = (
    "#2563eb",
    "#db2777",
    "#059669",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#dc2626",
    "#65a30d",
    "#9333ea",
    "#ea580c",
    "#0d9488",
    "#4f46e5",
)
GRID = "#eceff3"


def _layout(**extra: Any) -> dict[str, Any]:
    layout: dict[str, Any] = {
        "template": "none",
        "margin": {"l": 56, "r": 24, "t": 36, "b": 40},
        "font": {
            "family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
            "size": 12,
            "color": "#1f2937",
        },
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": {"gridcolor": GRID, "linecolor": "#d1d5db", "automargin": True},
        "yaxis": {"gridcolor": GRID, "zeroline": False, "automargin": True},
        "hoverlabel": {"bgcolor": "white", "bordercolor": "#d1d5db", "font": {"size": 12}},
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(layout.get(key), dict):
            layout[key] = {**layout[key], **value}
        else:
            layout[key] = value
    return layout


def _json(fig: go.Figure) -> str:
    return fig.to_json(validate=True, engine="json")


def rule_colour(rules: list[str]) -> dict[str, str]:
    return {r: RULE_COLOURS[i % len(RULE_COLOURS)] for i, r in enumerate(sorted(rules))}


def alerts_over_time(by_day: list[tuple[str, datetime, int]], colours: dict[str, str]) -> str:
    fig = go.Figure(layout=_layout(barmode="stack", height=330, yaxis={"title": {"text": "alerts per day"}}))
    for rule in sorted({r for r, _, _ in by_day}):
        days = [(d, n) for r, d, n in by_day if r == rule]
        fig.add_bar(
            x=[d for d, _ in days],
            y=[n for _, n in days],
            name=escape(rule),
            marker_color=colours.get(rule),
            hovertemplate="%{x|%d %b %Y}: %{y} alerts<extra>%{fullData.name}</extra>",
        )
    return _json(fig)


def severity_mix(by_severity: list[tuple[str, int]]) -> str:
    fig = go.Figure(
        go.Bar(
            x=[escape(s) for s, _ in by_severity],
            y=[n for _, n in by_severity],
            marker_color=[SEVERITY_COLOURS.get(s, "#9ca3af") for s, _ in by_severity],
            text=[n for _, n in by_severity],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{x}: %{y} alerts<extra></extra>",
        ),
        layout=_layout(height=300, yaxis={"title": {"text": "alerts"}}),
    )
    return _json(fig)


def short(key: str, width: int = 30) -> str:
    return key if len(key) <= width else key[: width - 1] + "…"


def top_groups(groups: list[GroupStats]) -> str:
    shown = list(reversed(groups))  # plotly draws the first bar at the bottom
    fig = go.Figure(
        go.Bar(
            orientation="h",
            y=[f"{i}. {escape(short(g.group_key))}" for i, g in zip(range(len(shown), 0, -1), shown, strict=True)],
            x=[g.alerts for g in shown],
            marker_color=[SEVERITY_COLOURS.get(g.top_severity, "#9ca3af") for g in shown],
            customdata=[[escape(g.group_key), escape(", ".join(g.rules))] for g in shown],
            hovertemplate="%{customdata[0]}<br>%{x} alerts: %{customdata[1]}<extra></extra>",
        ),
        layout=_layout(
            height=max(220, 26 * len(shown) + 60),
            margin={"l": 8},
            xaxis={"title": {"text": "alerts"}},
            yaxis={"gridcolor": "rgba(0,0,0,0)"},
        ),
    )
    return _json(fig)


def _num(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _sums_amounts(alert: AlertView, amounts: list[float | None]) -> bool:
    """Whether one of the rule's computed values is the sum of the evidence amounts."""
    known = [a for a in amounts if a is not None]
    if not known:
        return False
    total = sum(known)
    for v in alert.values.values():
        try:
            if abs(float(v) - total) <= 0.005 * max(1.0, abs(total)):
                return True
        except (TypeError, ValueError):
            continue
    return False


def _hover(alert: AlertView, e: EvidenceEvent) -> str:
    parts = [f"{e.ts:%Y-%m-%d %H:%M:%S}", f"{e.kind or ''} · {e.source}/{e.event_id}"]
    if e.amount is not None:
        parts.append(f"amount {e.amount:f} {e.currency or ''}".rstrip())
    if e.item or e.category:
        parts.append(" · ".join(x for x in (e.item, e.category) if x))
    if e.quantity is not None:
        parts.append(f"quantity {e.quantity.normalize():f}")
    if e.place:
        parts.append(f"place {e.place}")
    if (e.source, e.event_id) == alert.fire:
        parts.append("the rule fired here")
    return "<br>".join(escape(p) for p in parts)


def _padded(events: list[EvidenceEvent]) -> list[datetime]:
    """An x range with some air, so events at one instant (lines of one order) are readable."""
    times = [e.ts for e in events if e.ts is not None]
    if not times:
        return []
    pad = max((max(times) - min(times)) * 0.04, timedelta(minutes=30))
    return [min(times) - pad, max(times) + pad]


def timeline(alert: AlertView, colour: str) -> str:
    """The evidence events over time: each one's amount, and how the rule's total (for rules that
    add amounts up) or the number of events built up to the firing."""
    events = [e for e in alert.evidence if e.ts is not None]
    hover = [_hover(alert, e) for e in events]
    amounts = [_num(e.amount) for e in events]
    has_amounts = any(a for a in amounts)  # fares of season tickets are all zero: nothing to plot
    fired = [(e.source, e.event_id) == alert.fire for e in events]
    if _sums_amounts(alert, amounts):
        running, label, fmt = list(accumulate(a or 0.0 for a in amounts)), "running total", ",.0f"
    else:
        running, label, fmt = list(range(1, len(events) + 1)), "events so far", "d"
    span = _padded(events)
    fig = go.Figure(
        layout=_layout(
            height=260,
            margin={"t": 30, "b": 32, "r": 64},
            showlegend=True,
            legend={"y": -0.28},
            xaxis={"range": span} if span else {},
            yaxis={"title": {"text": "amount"}, "tickformat": ",.0f", "rangemode": "tozero"}
            if has_amounts
            else {"visible": False},
            yaxis2={
                "title": {"text": label},
                "overlaying": "y",
                "side": "right",
                "rangemode": "tozero",
                "showgrid": False,
                "zeroline": False,
                "tickformat": fmt,
                "tickmode": "auto",  # not synced to the amount axis: its own round numbers
                "nticks": 6,
                "automargin": True,
            },
        )
    )
    x = [e.ts for e in events]
    if has_amounts:
        fig.add_scatter(
            x=x,
            y=amounts,
            mode="markers",
            name="amount",
            hovertext=hover,
            hoverinfo="text",
            marker={
                "color": colour,
                "size": [13 if f else 8 for f in fired],
                "symbol": ["star" if f else "circle" for f in fired],
                "line": {"width": 1, "color": "white"},
            },
        )
    fig.add_scatter(
        x=x,
        y=running,
        yaxis="y2",
        mode="lines+markers",
        name=label,
        line={"shape": "hv", "color": "#6b7280", "width": 1.5},
        marker={"size": [9 if f else 4 for f in fired], "symbol": ["star" if f else "circle" for f in fired]},
        hovertext=hover,
        hoverinfo="text",
    )
    return _json(fig)
