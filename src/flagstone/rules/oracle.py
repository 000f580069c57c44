"""A deliberately plain Python evaluator of rule semantics: the oracle the SQL engines must match.

It favours obviousness over speed (every window is recomputed from scratch). Three-valued logic
and numeric typing follow SQL: NULL propagates, comparisons with NULL are NULL, a NULL test is
false; decimals stay exact, ``/`` and ``avg`` give floats, and a decimal meeting a float becomes a
float. The engines are tested against this module on random events and rules.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from decimal import Decimal, localcontext
from typing import Any

from flagstone.rules import ir
from flagstone.rules.finding import Finding

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


def _aggregate(agg: ir.Aggregate, window: list[Event], entities: Entities) -> Any:
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


def run_rule(rule: ir.Rule, events: Iterable[Event], entities: Entities | None = None) -> list[Finding]:
    """Every finding of ``rule`` over ``events``, by the definitions in ``flagstone.rules.ir``."""
    evs = list(events)
    return RUNNERS[type(rule)](rule, evs, with_profiles(rule, evs, entities or {}))


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


def run_episodes(rule: ir.ConditionRule | ir.WindowRule, events: list[Event], entities: Entities) -> list[Finding]:
    """Condition and window rules: a test at every matched event, one finding per episode."""
    # Imported here: oracle_steps builds on this module's evaluator.
    from flagstone.rules.oracle_steps import run_tests

    if isinstance(rule, ir.ConditionRule):
        return run_tests(rule, events, entities, lambda seq, i: _condition_test(rule, seq, i, entities))
    episode = None
    if rule.evidence == "episode":

        def episode(evidence: list[Event]) -> dict[str, Any]:
            return {name: _aggregate(agg, evidence, entities) for name, agg in rule.aggregates}

    return run_tests(rule, events, entities, lambda seq, i: _window_test(rule, seq, i, entities), episode)


def _condition_test(
    rule: ir.ConditionRule, seq: list[Event], i: int, entities: Entities
) -> tuple[bool, list[Event], dict[str, Any]]:
    event = seq[i]
    ctx = Context(event, entities)
    values = {name: evaluate(ir.shown_leaf(name), ctx) for name in rule.shown_fields}
    return evaluate(rule.condition, ctx) is True, [event], values


def _window_test(
    rule: ir.WindowRule, seq: list[Event], i: int, entities: Entities
) -> tuple[bool, list[Event], dict[str, Any]]:
    event = seq[i]
    start = event["ts"] - timedelta(microseconds=rule.window_us)
    window = [e for e in seq[: i + 1] if e["ts"] > start]
    values = {name: _aggregate(agg, window, entities) for name, agg in rule.aggregates}
    hit = evaluate(rule.having, Context(event, entities, values)) is True
    return hit, window, values


# Each rule kind's evaluator. A new kind adds its plain-Python definition here.
RUNNERS: dict[type, Callable[[Any, list[Event], Entities], list[Finding]]] = {
    ir.ConditionRule: run_episodes,
    ir.WindowRule: run_episodes,
}


def _register_graph() -> None:
    # Imported late: the graph oracle builds on this module's evaluator.
    from flagstone.rules.oracle_graph import run_graph

    RUNNERS[ir.GraphRule] = run_graph


_register_graph()


def _register_history_kinds() -> None:
    # Imported late for the same reason: these oracles build on this module's evaluator.
    from flagstone.rules.oracle_deviation import run_deviation
    from flagstone.rules.oracle_dormancy import run_dormancy
    from flagstone.rules.oracle_sequence import run_sequence

    RUNNERS[ir.SequenceRule] = run_sequence
    RUNNERS[ir.DeviationRule] = run_deviation
    RUNNERS[ir.DormancyRule] = run_dormancy


_register_history_kinds()

__all__ = ["RUNNERS", "Decimal", "evaluate", "order_key", "run_rule"]
