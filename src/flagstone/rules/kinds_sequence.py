"""The ``sequence`` rule kind: event A then event B of the same group within T, linked by ``then``."""

from __future__ import annotations

from sqlglot import exp

from flagstone.events import EVENT_FIELDS
from flagstone.rules import ir
from flagstone.rules.expressions import _EVENT_TYPES, Scope, convert, parse_text, to_predicate
from flagstone.rules.ir_sequence import EARLIER, SequenceRule
from flagstone.rules.reader import Common, Kind, RuleReader, parse_duration


def read_duration(r: RuleReader, key: str, params: dict[str, ir.Value]) -> tuple[str, int]:
    """A required duration key (``within: 48h`` or ``within: $param``)."""
    value = r.resolve(key, params)
    if value is None:
        raise r.error(key, f"'{key}' is required, e.g. {key}: 48h")
    try:
        return str(value).strip(), parse_duration(value)
    except ValueError as exc:
        raise r.error(key, str(exc), value) from exc


def _pair_tree(tree: exp.Expression, scope: Scope, earlier: set[str]) -> exp.Expression:
    """Rewrite ``a.<field>`` to a value named ``a.<field>`` and ``b.<x>`` to the plain ``<x>``."""

    def rewrite(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Column):
            return node
        qualifier = node.args.get("db") or node.args.get("table")
        side = qualifier.name if isinstance(qualifier, exp.Identifier) else ""
        if side == "b":
            return exp.Column(this=node.this, table=node.args.get("table") if node.args.get("db") else None)
        if side != "a":
            return node
        col = EVENT_FIELDS.get(node.name)
        if node.args.get("db") or col is None or col.type == "json":
            raise scope.error(f"{node.sql()}: in 'then', a.<field> reads one event field of the earlier "
                              "event A (attributes and profiles of A are not available)", node.sql())
        earlier.add(node.name)
        scope.aggregates[EARLIER + node.name] = _EVENT_TYPES[col.type]
        return exp.Column(this=exp.to_identifier(EARLIER + node.name, quoted=True))

    return tree.transform(rewrite)


def build_sequence(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    within_text, within_us = read_duration(r, "within", c.params)
    first = to_predicate(r.text("first"), r.scope("first", c.params))
    scope = r.scope("then", c.params)
    earlier: set[str] = set()
    text = r.text("then")
    then, typ = convert(_pair_tree(parse_text(text, scope), scope, earlier), scope)
    if typ not in ("boolean", "null"):
        raise scope.error(f"expression {text!r} must be true or false, but it is a {typ}", text)
    fields = [f for f in EVENT_FIELDS if EVENT_FIELDS[f].type != "json"]
    rule = SequenceRule(
        c.meta,
        c.match,
        c.group_by,
        first,
        then,
        within_us,
        earlier_read=tuple(f for f in fields if f in earlier),
        later_read=tuple(f for f in fields if f in scope.fields_read),
        within_text=within_text,
    )
    return rule, set(rule.value_names)


SEQUENCE = Kind(
    {
        "first": "expression choosing the earlier events A",
        "then": "expression on the later event B and a.<field> of A that completes the sequence",
        "within": "longest time from A to B, e.g. 48h (A exactly that long before B is outside)",
    },
    build_sequence,
)

__all__ = ["SEQUENCE", "read_duration"]
