"""The ``deviation`` rule kind: an event's value far above the group's own recent history."""

from __future__ import annotations

from flagstone.rules import ir
from flagstone.rules.expressions import convert, parse_text, to_predicate
from flagstone.rules.ir_deviation import DEVIATION_VALUES, DeviationRule
from flagstone.rules.kinds_sequence import read_duration
from flagstone.rules.reader import Common, Kind, RuleReader


def read_count(r: RuleReader, key: str, params: dict[str, ir.Value]) -> int:
    value = r.resolve(key, params)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise r.error(key, f"'{key}' must be a whole number >= 1", value)
    return value


def read_number_expr(r: RuleReader, key: str, params: dict[str, ir.Value], default: str) -> ir.Expr:
    scope = r.scope(key, params)
    text = r.text(key, default)
    node, typ = convert(parse_text(text, scope), scope)
    if typ not in ("number", "null"):
        raise scope.error(f"'{key}' must be a number, but {text!r} is a {typ}", text)
    return node


def _peer_by(r: RuleReader, params: dict[str, ir.Value]) -> ir.Expr | None:
    if "peer_by" not in r.data:
        return None
    scope = r.scope("peer_by", params)
    text = r.text("peer_by")
    node, typ = convert(parse_text(text, scope), scope)
    if typ not in ("string", "null"):
        raise scope.error(f"peer_by must be text (a field, attrs.<key> or actor.<attr>), but {text!r} is a {typ}", text)
    return node


def build_deviation(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    history_text, history_us = read_duration(r, "history", c.params)
    value = read_number_expr(r, "value", c.params, "amount")
    min_history = read_count(r, "min_history", c.params)
    types: dict[str, ir.ValueType] = {name: "number" for name in DEVIATION_VALUES}
    having = to_predicate(r.text("having"), r.scope("having", c.params, aggregates=types))
    rule = DeviationRule(
        c.meta, c.match, c.group_by, value, history_us, min_history, having, history_text, _peer_by(r, c.params)
    )
    return rule, set(DEVIATION_VALUES)


DEVIATION = Kind(
    {
        "value": "number compared with its own history (expression); default amount",
        "history": "how far back the history reaches, e.g. 90d",
        "min_history": "fewest earlier non-NULL values needed before the rule can fire",
        "having": "test over value, median, mad, z, history_count and the event's fields",
        "peer_by": "history from the peer group sharing this text value (e.g. actor.country), not the group's own",
    },
    build_deviation,
)
