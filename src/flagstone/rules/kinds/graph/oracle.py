"""Plain-Python definition of the ``graph`` kind (fan-out, fan-in, cycles): the oracle for engines.

Brute force on purpose: windows are recomputed per edge and cycles are enumerated by depth-first
search, then reduced to one finding per (first sender, closing transfer) as ``docs/rules.md`` says.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from flagstone.rules.evaluator import Entities, Event, order_key
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.graph.edges import edge_key, edges, usable, within_tolerance
from flagstone.rules.kinds.graph.layered import layered
from flagstone.rules.kinds.graph.rule import GraphRule
from flagstone.rules.kinds.graph.scatter import two_hop


def run_graph(rule: GraphRule, events: list[Event], entities: Entities) -> list[Finding]:
    es = edges(rule, events, entities)
    if rule.typology in ("scatter_gather", "gather_scatter"):
        return two_hop(rule, es)
    if rule.typology in ("bipartite", "stack"):
        return layered(rule, es)
    return _cycles(rule, es) if rule.typology == "cycle" else _fans(rule, es)


def _fans(rule: GraphRule, es: list[Event]) -> list[Finding]:
    anchor = rule.group_by[0]
    other = "actor" if anchor == "counterparty" else "counterparty"
    by_anchor: dict[str, list[Event]] = defaultdict(list)
    for e in es:
        by_anchor[e[anchor]].append(e)
    findings: list[Finding] = []
    for account in sorted(by_anchor):
        seq = by_anchor[account]
        windows: list[tuple[bool, list[Event]]] = []  # (fan holds, window) per edge
        for e in seq:
            start = e["ts"] - timedelta(microseconds=rule.window_us)
            window = [w for w in seq[: len(windows) + 1] if w["ts"] > start]
            windows.append((len({w[other] for w in window}) >= rule.min_counterparties, window))
        was_hit = False
        for i, (hit, _) in enumerate(windows):
            if hit and not was_hit:
                # The alert's evidence is the whole episode: every window while the fan holds.
                j = i
                while j < len(windows) and windows[j][0]:
                    j += 1
                union = {edge_key(w): w for _, window in windows[i:j] for w in window}
                episode = sorted(union.values(), key=order_key)
                total = sum((w["amount"] for w in episode), Decimal(0))
                values = (
                    ("counterparties", len({w[other] for w in episode})),
                    ("transfers", len(episode)),
                    ("total", total),
                )
                findings.append(_finding(rule, account, episode, values, fire=seq[i]))
            was_hit = hit
    return findings


def _finding(
    rule: GraphRule, account: str, path: list[Event], values: tuple[tuple[str, Any], ...], fire: Event | None = None
) -> Finding:
    fire = path[-1] if fire is None else fire
    return Finding(
        rule_id=rule.meta.id,
        rule_version=rule.meta.version,
        group=((rule.group_by[0], account),),
        fire=edge_key(fire),
        first_ts=path[0]["ts"],
        last_ts=fire["ts"],
        evidence=tuple(edge_key(e) for e in path),
        values=values,
    )


def _cycles(rule: GraphRule, all_edges: list[Event]) -> list[Finding]:
    es = usable(rule, all_edges)
    reach = timedelta(microseconds=rule.window_us)
    found: list[list[int]] = []  # each cycle as positions in ``es``

    def extend(path: list[int], accounts: list[str]) -> None:
        first, last = es[path[0]], path[-1]
        for j in range(last + 1, len(es)):
            e = es[j]
            if e["actor"] != accounts[-1] or e["ts"] - first["ts"] >= reach or not within_tolerance(rule, first, e):
                continue
            if e["counterparty"] == accounts[0]:
                if len(path) + 1 >= rule.min_length:
                    found.append([*path, j])
            elif e["counterparty"] not in accounts and len(path) + 1 < rule.max_length:
                extend([*path, j], [*accounts, e["counterparty"]])

    for i, e in enumerate(es):
        extend([i], [e["actor"], e["counterparty"]])

    # One finding per (first sender, closing transfer): the shortest cycle, then the latest hops.
    best: dict[tuple[str, int], list[int]] = {}
    for path in found:
        key = (es[path[0]]["actor"], path[-1])
        if key not in best or _preference(path) < _preference(best[key]):
            best[key] = path
    findings = []
    for (account, _), path in sorted(best.items()):
        hops = [es[p] for p in path]
        amounts = [h["amount"] for h in hops]
        total = sum(amounts[1:], amounts[0])
        values = (("length", len(hops)), ("total", total), ("min_amount", min(amounts)), ("max_amount", max(amounts)))
        findings.append(_finding(rule, account, hops, values))
    return findings


def _preference(path: list[int]) -> tuple[int, ...]:
    return (len(path), *(-p for p in path))
