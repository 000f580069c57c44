"""Plain-Python definition of the ``sequence`` kind (see ``ir_sequence.SequenceRule``)."""

from __future__ import annotations

from typing import Any

from flagstone.rules.finding import Finding
from flagstone.rules.ir_sequence import EARLIER, SequenceRule
from flagstone.rules.oracle import Context, Entities, Event, evaluate
from flagstone.rules.oracle_steps import micros, run_tests


def run_sequence(rule: SequenceRule, events: list[Event], entities: Entities) -> list[Finding]:
    def test(seq: list[Event], i: int) -> tuple[bool, list[Event], dict[str, Any]]:
        b = seq[i]
        # Every A before B in event order, inside B's window (ts(B) - T, ts(B)], that completes it.
        earlier = [a for a in seq[:i] if micros(b["ts"] - a["ts"]) < rule.within_us and _pair(rule, a, b, entities)]
        if not earlier:
            return False, [b], {}
        a = earlier[-1]  # the latest qualifying A gives the values
        values: dict[str, Any] = {f"a_{f}": a.get(f) for f in rule.earlier_shown}
        values.update({f"b_{f}": b.get(f) for f in rule.later_shown})
        values["gap_hours"] = micros(b["ts"] - a["ts"]) / 3_600_000_000
        values["earlier_events"] = len(earlier)
        return True, [*earlier, b], values

    return run_tests(rule, events, entities, test)


def _pair(rule: SequenceRule, a: Event, b: Event, entities: Entities) -> bool:
    if evaluate(rule.first, Context(a, entities)) is not True:
        return False
    earlier = {EARLIER + f: a.get(f) for f in rule.earlier_read}
    return evaluate(rule.then, Context(b, entities, earlier)) is True
