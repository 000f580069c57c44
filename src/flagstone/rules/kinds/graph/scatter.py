"""Plain-Python definition of the two-hop typologies of the ``graph`` kind (the oracle):
``scatter_gather`` (legs grouped by source and destination) and ``gather_scatter`` (by hub).

Brute force on purpose: every leg (first hop, second hop) is listed, then each closing transfer
of a group recomputes its window from scratch; a finding's evidence is every leg seen while its
episode lasts, as ``docs/rules.md`` says.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from flagstone.rules.evaluator import Event
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.graph.edges import edge_key, usable, within_tolerance
from flagstone.rules.kinds.graph.rule import GraphRule

Leg = tuple[int, int]  # positions in the ordered edge list: (first hop X->M, second hop M->Y)


def two_hop(rule: GraphRule, all_edges: list[Event]) -> list[Finding]:
    es = usable(rule, all_edges)
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
                and within_tolerance(rule, a, b)
            ):
                by_group[(a["actor"], b["counterparty"]) if scatter else (b["actor"],)].append((i, j))
    findings: list[Finding] = []
    for group, legs in sorted(by_group.items()):
        tests = []  # (closing edge, holds, legs seen) for each closing transfer in order
        for close in sorted({j for _, j in legs}):
            start = es[close]["ts"] - reach
            seen = [(i, j) for i, j in legs if j <= close and es[i]["ts"] > start]
            tests.append((close, all(n >= rule.min_counterparties for _, n in _counts(es, seen, scatter)), seen))
        was_hit = False
        for t, (close, hit, _) in enumerate(tests):
            if hit and not was_hit:
                # The evidence is the whole episode: the legs seen at every test while it holds.
                end = t
                while end < len(tests) and tests[end][1]:
                    end += 1
                episode = sorted({leg for _, _, seen in tests[t:end] for leg in seen})
                path = [es[p] for p in sorted({p for leg in episode for p in leg})]
                total = sum((e["amount"] for e in path), Decimal(0))
                findings.append(
                    Finding(
                        rule_id=rule.meta.id,
                        rule_version=rule.meta.version,
                        group=tuple(zip(rule.group_by, group, strict=True)),
                        fire=edge_key(es[close]),
                        first_ts=path[0]["ts"],
                        last_ts=es[close]["ts"],
                        evidence=tuple(edge_key(e) for e in path),
                        values=(*_counts(es, episode, scatter), ("transfers", len(path)), ("total", total)),
                    )
                )
            was_hit = hit
    return findings


def _counts(es: list[Event], legs: list[Leg], scatter: bool) -> tuple[tuple[str, int], ...]:
    if scatter:
        return (("intermediaries", len({es[j]["actor"] for _, j in legs})),)
    return (
        ("sources", len({es[i]["actor"] for i, _ in legs})),
        ("destinations", len({es[j]["counterparty"] for _, j in legs})),
    )
