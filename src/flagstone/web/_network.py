"""A small picture of who paid whom in a case: the parties as circles, the flows as arrows.

Drawn as inline SVG on the server (no script), with every label escaped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal
from html import escape
from typing import Any

WIDTH, HEIGHT, RADIUS = 560, 360, 130


def short(pseudonym: str) -> str:
    return pseudonym if len(pseudonym) <= 12 else pseudonym[:10] + "…"


def network_svg(evidence: list[dict[str, Any]], focus: str | None) -> str:
    """SVG of the evidence's actor → counterparty flows (count and sum per pair)."""
    flows: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
    for e in evidence:
        if not e.get("actor"):
            continue
        # Cash and other one-party events get a node named after their kind, so they show too.
        other = e.get("counterparty") or f"({e['kind']})"
        pair = (other, e["actor"]) if e["kind"] == "cash_deposit" else (e["actor"], other)
        flows[pair].append(Decimal(e["amount"] or 0))
    parties = sorted({p for pair in flows for p in pair})
    if not parties:
        return ""
    centre = focus if focus in parties else max(parties, key=lambda p: sum(1 for pair in flows if p in pair))
    others = [p for p in parties if p != centre][:24]
    pos = {centre: (WIDTH / 2, HEIGHT / 2)}
    for i, p in enumerate(others):
        angle = 2 * math.pi * i / max(len(others), 1) - math.pi / 2
        pos[p] = (WIDTH / 2 + RADIUS * 1.6 * math.cos(angle), HEIGHT / 2 + RADIUS * math.sin(angle))
    parts = [
        f'<svg class="network" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="counterparty network">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="20" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    for (a, b), amounts in sorted(flows.items()):
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        label = f"{len(amounts)}× {sum(amounts):,.2f}"
        lx, ly = x1 + (x2 - x1) * 0.62, y1 + (y2 - y1) * 0.62 - 4  # two thirds out, where lines are apart
        parts.append(
            f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="#888" '
            f'stroke-width="{min(1 + len(amounts) / 2, 6):.1f}" marker-end="url(#arrow)"/>'
            f'<text class="flow" x="{lx:.0f}" y="{ly:.0f}">{escape(label)}</text>'
        )
    for p, (x, y) in pos.items():
        cls = "focus" if p == centre else "party"
        parts.append(
            f'<g class="{cls}"><title>{escape(p)}</title><circle cx="{x:.0f}" cy="{y:.0f}" r="14"/>'
            f'<text x="{x:.0f}" y="{y + 28:.0f}">{escape(short(p))}</text></g>'
        )
    if len(parties) - 1 > len(others):
        parts.append(f'<text x="8" y="{HEIGHT - 8}">+{len(parties) - 1 - len(others)} more parties</text>')
    parts.append("</svg>")
    return "".join(parts)
