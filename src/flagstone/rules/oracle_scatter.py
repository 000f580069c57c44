"""Plain-Python definition of the two-hop typologies of the ``graph`` kind (the oracle):
``scatter_gather`` (legs grouped by source and destination) and ``gather_scatter`` (by hub).

Brute force on purpose: every leg (first hop, second hop) is listed, then each closing transfer
of a group recomputes its window from scratch, as ``docs/rules.md`` says.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from flagstone.rules.finding import Finding
from flagstone.rules.ir import Value
from flagstone.rules.ir_graph import GraphRule
from flagstone.rules.oracle import Event
from flagstone.rules.oracle_graph import _key, _usable, _within_tolerance

Leg = tuple[int, int]  # positions in the ordered edge list: (first hop X->M, second hop M->Y)


def two_hop(rule: GraphRule, all_edges: list[Event]) -> list[Finding]:
    es = _usable(rule, all_edges)
    reach = timedelta(microseconds=rule.window_us)
    scatter = rule.typology == "scatter_gather"
    by_group: dict[tuple[str, ...], list[Leg]] = defaultdict(list)
    for i, a in enumerate(es):
        for j in range(i + 1, len(es)):
            b = es[j]
            if (
                b["actor"] == a["counterparty"]
                and b["counterparty"] != a["actor"]
                and b["ts"] - a["ts"] < reach
                and _within_tolerance(rule, a, b)
            ):
                by_group[(a["actor"], b["counterparty"]) if scatter else (b["actor"],)].append((i, j))
    findings: list[Finding] = []
    for group, legs in sorted(by_group.items()):
        was_hit = False
        for close in sorted({j for _, j in legs}):
            start = es[close]["ts"] - reach
            seen = [(i, j) for i, j in legs if j <= close and es[i]["ts"] > start]
            counts: tuple[tuple[str, Value], ...]
            if scatter:
                counts = (("intermediaries", len({es[j]["actor"] for _, j in seen})),)
            else:
                counts = (
                    ("sources", len({es[i]["actor"] for i, _ in seen})),
                    ("destinations", len({es[j]["counterparty"] for _, j in seen})),
                )
            hit = all(isinstance(n, int) and n >= rule.min_counterparties for _, n in counts)
            if hit and not was_hit:
                path = [es[p] for p in sorted({p for leg in seen for p in leg})]
                total = sum((e["amount"] for e in path), Decimal(0))
                findings.append(
                    Finding(
                        rule_id=rule.meta.id,
                        rule_version=rule.meta.version,
                        group=tuple(zip(rule.group_by, group, strict=True)),
                        fire=_key(es[close]),
                        first_ts=path[0]["ts"],
                        last_ts=es[close]["ts"],
                        evidence=tuple(_key(e) for e in path),
                        values=(*counts, ("transfers", len(path)), ("total", total)),
                    )
                )
            was_hit = hit
    return findings
