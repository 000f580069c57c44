"""Plain-Python definition of the ``dormancy`` kind (see ``ir_dormancy.DormancyRule``)."""

from __future__ import annotations

from decimal import localcontext
from typing import Any

from flagstone.rules.finding import Finding
from flagstone.rules.ir_dormancy import DormancyRule
from flagstone.rules.oracle import Context, Entities, Event, evaluate
from flagstone.rules.oracle_steps import micros, run_tests


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
