"""Plain-Python definition of the layered typologies of the ``graph`` kind (the oracle):
``bipartite`` (many senders paying the same many receivers, anchored at one receiver) and
``stack`` (money passed on through layers of accounts, anchored at its origin).

Brute force on purpose: every test point recomputes its window from scratch and every chain is
enumerated by depth-first search, literally as ``docs/rules.md`` defines them.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from flagstone.rules.evaluator import Event
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.graph.edges import edge_key, usable, within_tolerance
from flagstone.rules.kinds.graph.rule import GraphRule


def layered(rule: GraphRule, all_edges: list[Event]) -> list[Finding]:
    es = usable(rule, all_edges)
    return _bipartite(rule, es) if rule.typology == "bipartite" else _stack(rule, es)


def _seen_at(rule: GraphRule, es: list[Event], close: int) -> list[int] | None:
    """Positions of the edges seen at test point ``close`` (an edge into Y), or None if it fails."""
    k = rule.min_counterparties
    y = es[close]["counterparty"]
    start = es[close]["ts"] - timedelta(microseconds=rule.window_us)
    window = [i for i in range(close + 1) if es[i]["ts"] > start]
    senders = {es[i]["actor"] for i in window if es[i]["counterparty"] == y}
    paid_by: dict[str, set[str]] = defaultdict(set)
    for i in window:
        if es[i]["actor"] in senders:
            paid_by[es[i]["counterparty"]].add(es[i]["actor"])
    receivers = {d for d, who in paid_by.items() if len(who) >= k}
    if len(senders) < k or len(receivers) < k:
        return None
    return [i for i in window if es[i]["actor"] in senders and es[i]["counterparty"] in receivers]


def _bipartite(rule: GraphRule, es: list[Event]) -> list[Finding]:
    by_receiver: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(es):
        by_receiver[e["counterparty"]].append(i)
    findings: list[Finding] = []
    for y in sorted(by_receiver):
        episodes: list[tuple[int, set[int]]] = []  # (firing position, evidence positions)
        was_hit = False
        for close in by_receiver[y]:
            seen = _seen_at(rule, es, close)
            if seen is not None:
                if not was_hit:
                    episodes.append((close, set()))
                episodes[-1][1].update(seen)
            was_hit = seen is not None
        for fire, positions in episodes:
            path = [es[p] for p in sorted(positions)]
            values = (
                ("senders", len({e["actor"] for e in path})),
                ("receivers", len({e["counterparty"] for e in path})),
                ("transfers", len(path)),
                ("total", sum((e["amount"] for e in path), Decimal(0))),
            )
            findings.append(_found(rule, y, es[fire], path[0], path, values))
    return findings


def _stack(rule: GraphRule, es: list[Event]) -> list[Finding]:
    # First hops of one origin whose flows fire at the same edge make one finding: their flows merged.
    merged: dict[tuple[str, int], tuple[set[int], int, int]] = {}  # (origin, fire) -> flow, depth, first
    for h, first in enumerate(es):
        flow, depth, fire = _flow(rule, es, h)
        if fire is None:
            continue
        key = (first["actor"], fire)
        known, deepest, earliest = merged.get(key, (set(), 0, h))
        merged[key] = (known | flow, max(deepest, depth), min(earliest, h))
    findings: list[Finding] = []
    for (origin, fire), (flow, depth, earliest) in sorted(merged.items()):
        path = [es[p] for p in sorted(flow)]
        values = (
            ("depth", depth),
            ("accounts", len({a for e in path for a in (e["actor"], e["counterparty"])})),
            ("transfers", len(path)),
            ("total", sum((e["amount"] for e in path), Decimal(0))),
        )
        findings.append(_found(rule, origin, es[fire], es[earliest], path, values))
    return findings


def _flow(rule: GraphRule, es: list[Event], h: int) -> tuple[set[int], int, int | None]:
    """Every chain from first hop ``h``: the edges on them, the longest length and the earliest
    edge ending a chain of at least ``min_length`` hops (None if there is no such chain)."""
    first = es[h]
    reach = timedelta(microseconds=rule.window_us)
    flow: set[int] = set()
    depth = 0
    fire: int | None = None
    stack: list[tuple[int, int, list[str]]] = [(h, 1, [first["actor"], first["counterparty"]])]
    while stack:
        last, hops, accounts = stack.pop()
        flow.add(last)
        depth = max(depth, hops)
        if hops >= rule.min_length and (fire is None or last < fire):
            fire = last
        if hops == rule.max_length:
            continue
        for j in range(last + 1, len(es)):
            e = es[j]
            if (
                e["actor"] == accounts[-1]
                and e["counterparty"] not in accounts
                and e["ts"] - first["ts"] < reach
                and within_tolerance(rule, first, e)
            ):
                stack.append((j, hops + 1, [*accounts, e["counterparty"]]))
    return flow, depth, fire


def _found(
    rule: GraphRule,
    account: str,
    fire: Event,
    earliest: Event,
    path: list[Event],
    values: tuple[tuple[str, int | Decimal], ...],
) -> Finding:
    return Finding(
        rule_id=rule.meta.id,
        rule_version=rule.meta.version,
        group=((rule.group_by[0], account),),
        fire=edge_key(fire),
        first_ts=earliest["ts"],
        last_ts=fire["ts"],
        evidence=tuple(edge_key(e) for e in path),
        values=values,
    )
