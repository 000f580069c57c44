"""The transfers every graph typology's oracle starts from, and the small tests they share."""

from __future__ import annotations

from collections import defaultdict

from flagstone.rules.evaluator import Context, Entities, Event, evaluate, order_key
from flagstone.rules.kinds.graph.rule import GraphRule


def edges(rule: GraphRule, events: list[Event], entities: Entities) -> list[Event]:
    """Matched transfers with an actor, a different counterparty and a positive amount, in order."""
    out = [
        e
        for e in events
        if evaluate(rule.match, Context(e, entities)) is True
        and e.get("actor") is not None
        and e.get("counterparty") is not None
        and e["actor"] != e["counterparty"]
        and e.get("amount") is not None
        and e["amount"] > 0
    ]
    return sorted(out, key=order_key)


def edge_key(e: Event) -> tuple[str, str]:
    return (e["source"], e["event_id"])


def usable(rule: GraphRule, es: list[Event]) -> list[Event]:
    if rule.max_degree is None:
        return es
    sent: dict[str, int] = defaultdict(int)
    for e in es:
        sent[e["actor"]] += 1
    return [e for e in es if sent[e["actor"]] <= rule.max_degree and sent[e["counterparty"]] <= rule.max_degree]


def within_tolerance(rule: GraphRule, first: Event, e: Event) -> bool:
    if rule.amount_tolerance is None:
        return True
    return bool(abs(e["amount"] - first["amount"]) <= rule.amount_tolerance * first["amount"])
