"""The ``dormancy`` rule kind: a group with no activity for a long time wakes up with large activity."""

from __future__ import annotations

from flagstone.rules import ir
from flagstone.rules.expressions import to_predicate
from flagstone.rules.ir_dormancy import DORMANCY_VALUES, DormancyRule
from flagstone.rules.kinds_deviation import read_number_expr
from flagstone.rules.kinds_sequence import read_duration
from flagstone.rules.reader import Common, Kind


def build_dormancy(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    dormant_text, dormant_us = read_duration(r, "dormant", c.params)
    awake_text, awake_us = read_duration(r, "awake", c.params)
    value = read_number_expr(r, "value", c.params, "amount")
    types: dict[str, ir.ValueType] = {name: "number" for name in DORMANCY_VALUES}
    having = to_predicate(r.text("having"), r.scope("having", c.params, aggregates=types))
    rule = DormancyRule(
        c.meta, c.match, c.group_by, dormant_us, awake_us, value, having, dormant_text, awake_text
    )
    return rule, set(DORMANCY_VALUES)


DORMANCY = Kind(
    {
        "dormant": "shortest quiet gap (no matched event) that makes the next event a wake-up, e.g. 180d",
        "awake": "how long after the wake-up activity is summed, e.g. 7d",
        "value": "number summed over the awake events (expression); default amount",
        "having": "test over dormant_days, events, total and the event's fields",
    },
    build_dormancy,
)
