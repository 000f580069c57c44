"""The ``dormancy`` rule kind: a group with no activity for a long time wakes up with large
activity. Its typed form, its keys and its plain-Python definition (the oracle)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import localcontext
from typing import Any

from flagstone.rules import ir
from flagstone.rules.episodes import micros, run_tests
from flagstone.rules.evaluator import Context, Entities, Event, evaluate
from flagstone.rules.expressions import to_predicate
from flagstone.rules.finding import Finding
from flagstone.rules.reader import Common, RuleKind, read_duration, read_number_expr

DORMANCY_VALUES = ("dormant_days", "events", "total")


@dataclass(frozen=True)
class DormancyRule:
    """A matched event *wakes* its group when the group's previous matched event is at least
    ``dormant_us`` earlier. An event is *awake* when the latest wake at or before it (in event
    order) is less than ``awake_us`` earlier; ``total`` sums ``value`` over the events from that
    wake up to it, ``events`` counts them, ``dormant_days`` is the quiet gap before the wake. The
    test is ``awake and having`` (``having`` reads those three names and the event's fields).
    """

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    dormant_us: int
    awake_us: int
    value: ir.Expr
    having: ir.Expr
    dormant_text: str = ""
    awake_text: str = ""

    @property
    def value_names(self) -> tuple[str, ...]:
        return DORMANCY_VALUES


def build_dormancy(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    dormant_text, dormant_us = read_duration(r, "dormant", c.params)
    awake_text, awake_us = read_duration(r, "awake", c.params)
    value = read_number_expr(r, "value", c.params, "amount")
    types: dict[str, ir.ValueType] = {name: "number" for name in DORMANCY_VALUES}
    having = to_predicate(r.text("having"), r.scope("having", c.params, aggregates=types))
    rule = DormancyRule(c.meta, c.match, c.group_by, dormant_us, awake_us, value, having, dormant_text, awake_text)
    return rule, set(DORMANCY_VALUES)


def run_dormancy(rule: DormancyRule, events: list[Event], entities: Entities) -> list[Finding]:
    def test(seq: list[Event], i: int) -> tuple[bool, list[Event], dict[str, Any]]:
        event = seq[i]
        wakes = [j for j in range(1, i + 1) if micros(seq[j]["ts"] - seq[j - 1]["ts"]) >= rule.dormant_us]
        if not wakes or micros(event["ts"] - seq[wakes[-1]]["ts"]) >= rule.awake_us:
            return False, [event], {}
        w = wakes[-1]
        awake = seq[w : i + 1]
        amounts = [v for e in awake if (v := evaluate(rule.value, Context(e, entities))) is not None]
        with localcontext() as ctx:
            ctx.prec = 60
            total = sum(amounts[1:], amounts[0]) if amounts else None
        values = {
            "dormant_days": micros(seq[w]["ts"] - seq[w - 1]["ts"]) / 86_400_000_000,
            "events": len(awake),
            "total": total,
        }
        hit = evaluate(rule.having, Context(event, entities, values)) is True
        # The evidence starts with the last event before the quiet gap, so the gap shows.
        return hit, seq[w - 1 : i + 1], values

    return run_tests(rule, events, entities, test)


KIND = RuleKind(
    "dormancy",
    DormancyRule,
    {
        "dormant": "shortest quiet gap (no matched event) that makes the next event a wake-up, e.g. 180d",
        "awake": "how long after the wake-up activity is summed, e.g. 7d",
        "value": "number summed over the awake events (expression); default amount",
        "having": "test over dormant_days, events, total and the event's fields",
    },
    build_dormancy,
    run_dormancy,
)
