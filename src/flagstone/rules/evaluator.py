"""The oracle's expression evaluator: deliberately plain Python, the semantics the engines must match.

Three-valued logic and numeric typing follow SQL: NULL propagates, comparisons with NULL are NULL,
a NULL test is false; decimals stay exact, ``/`` and ``avg`` give floats, and a decimal meeting a
float becomes a float. Each kind's oracle (``flagstone.rules.kinds``) builds on this module.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Mapping
from decimal import Decimal, localcontext
from typing import Any

from flagstone.rules import ir

Event = Mapping[str, Any]
Entities = Mapping[str, Mapping[str, Any]]


def order_key(event: Event) -> tuple[Any, str, str]:
    return (event["ts"], event["event_id"], event["source"])


def _numbers(a: Any, b: Any) -> tuple[Any, Any]:
    if isinstance(a, float) or isinstance(b, float):
        return float(a), float(b)
    return a, b


def _compare(op: str, a: Any, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    if not isinstance(a, str | bool):
        a, b = _numbers(a, b)
    return {
        "=": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def _arith(op: str, a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if op == "/":
        return None if b == 0 else float(a) / float(b)
    a, b = _numbers(a, b)
    with localcontext() as ctx:
        ctx.prec = 60
        return {"+": a + b, "-": a - b, "*": a * b}[op]


def like_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _attr(event: Event, name: str) -> str | None:
    attrs = event.get("attrs")
    if isinstance(attrs, str):
        attrs = json.loads(attrs)
    if not attrs or name not in attrs or attrs[name] is None:
        return None
    value = attrs[name]
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


class Context:
    """Where leaf names get their values: one event, the entities table, and aggregate results."""

    def __init__(self, event: Event, entities: Entities, aggregates: Mapping[str, Any] | None = None) -> None:
        self.event = event
        self.entities = entities
        self.aggregates = aggregates or {}


def evaluate(node: ir.Expr, ctx: Context) -> Any:
    if isinstance(node, ir.Literal):
        return node.value
    if isinstance(node, ir.Field):
        return ctx.event.get(node.name)
    if isinstance(node, ir.Attr):
        return _attr(ctx.event, node.name)
    if isinstance(node, ir.EntityField):
        key = ctx.event.get(node.role)
        return ctx.entities.get(key, {}).get(node.name) if key is not None else None
    if isinstance(node, ir.AggregateRef):
        return ctx.aggregates[node.name]
    if isinstance(node, ir.Not):
        v = evaluate(node.operand, ctx)
        return None if v is None else not v
    if isinstance(node, ir.Negate):
        v = evaluate(node.operand, ctx)
        return None if v is None else -v
    if isinstance(node, ir.Logical):
        a, b = evaluate(node.left, ctx), evaluate(node.right, ctx)
        if node.op == "and":
            if a is False or b is False:
                return False
            return None if a is None or b is None else True
        if a is True or b is True:
            return True
        return None if a is None or b is None else False
    if isinstance(node, ir.Compare):
        return _compare(node.op, evaluate(node.left, ctx), evaluate(node.right, ctx))
    if isinstance(node, ir.Arithmetic):
        return _arith(node.op, evaluate(node.left, ctx), evaluate(node.right, ctx))
    if isinstance(node, ir.InList):
        v = evaluate(node.operand, ctx)
        if v is None:
            return None
        found = any(_compare("=", v, lit.value) for lit in node.values)
        return found != node.negated
    if isinstance(node, ir.IsNull):
        return (evaluate(node.operand, ctx) is None) != node.negated
    if isinstance(node, ir.Like):
        v = evaluate(node.operand, ctx)
        if v is None:
            return None
        return bool(like_regex(node.pattern).fullmatch(v)) != node.negated
    raise TypeError(f"unknown node {node!r}")


def aggregate(agg: ir.Aggregate, window: list[Event], entities: Entities) -> Any:
    if agg.arg is None:
        return len(window)
    values = [v for e in window if (v := evaluate(agg.arg, Context(e, entities))) is not None]
    fn = agg.function
    if fn == "count":
        return len(values)
    if fn == "count_distinct":
        return len(set(values))
    if not values:
        return None
    if fn == "max":
        return max(values)
    if fn == "min":
        return min(values)
    with localcontext() as ctx:
        ctx.prec = 60
        total = sum(values[1:], values[0])
    if fn == "sum":
        return total
    return float(total) / len(values)  # avg


def with_profiles(rule: ir.Rule, events: list[Event], entities: Entities) -> Entities:
    """``entities`` plus, for every account in ``events``, the values of the rule's profiles."""
    profiles = {p.name: p for p in ir.rule_profiles(rule)}
    if not profiles:
        return entities
    counts: dict[str, dict[str, int]] = {name: {} for name in profiles}
    for e in events:
        if e.get("actor") is None:
            continue
        for name, p in profiles.items():
            hit = evaluate(p.match, Context(e, {})) is True
            counts[name][e["actor"]] = counts[name].get(e["actor"], 0) + int(hit)
    accounts = {e[r] for e in events for r in ("actor", "counterparty") if e.get(r) is not None}
    out = {k: dict(v) for k, v in entities.items()}
    for name, p in profiles.items():
        m2 = int(2 * statistics.median(counts[name].values())) if counts[name] else 0
        for account in accounts:
            n = counts[name].get(account, 0)
            value: Any = n
            if p.relative:
                # Truncated to 4 places with integers, as the engines do: n / (m2 / 2).
                value = Decimal(n * 20_000 // m2) * Decimal("0.0001") if m2 > 0 else None
            out.setdefault(account, {})[name] = value
    return out
