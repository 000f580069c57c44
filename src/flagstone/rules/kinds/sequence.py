"""The ``sequence`` rule kind: event A then event B of the same group within T, linked by
``then``. Its typed form, its keys and its plain-Python definition (the oracle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from flagstone.events import EVENT_FIELDS, IDENTIFIER_FIELDS
from flagstone.rules import ir
from flagstone.rules.episodes import micros, run_tests
from flagstone.rules.evaluator import Context, Entities, Event, evaluate
from flagstone.rules.expressions import _EVENT_TYPES, Scope, convert, parse_text, to_predicate
from flagstone.rules.finding import Finding
from flagstone.rules.reader import Common, RuleKind, read_duration

# In ``then``, ``a.<field>`` is an ``ir.AggregateRef`` named with this prefix: like an aggregate in
# ``having``, it is a value the kind supplies for each candidate pair; every back end already maps
# AggregateRef through its leaf function.
EARLIER = "a."


@dataclass(frozen=True)
class SequenceRule:
    """Fires at a matched event B when an earlier matched event A of the same group satisfies
    ``first`` and ``then`` (A and B together) and lies in B's window ``(ts(B) - T, ts(B)]``.

    ``then`` reads B's fields as ``ir.Field`` / ``ir.Attr`` / ``ir.EntityField`` and A's as
    ``ir.AggregateRef('a.<field>')``. ``earlier_read`` / ``later_read`` are the event fields
    ``then`` reads of A / B; all but identifiers are shown as ``a_<field>`` / ``b_<field>``.
    """

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    first: ir.Expr
    then: ir.Expr
    within_us: int
    earlier_read: tuple[str, ...] = ()
    later_read: tuple[str, ...] = ()
    within_text: str = ""

    @property
    def earlier_shown(self) -> tuple[str, ...]:
        return tuple(f for f in self.earlier_read if f not in IDENTIFIER_FIELDS)

    @property
    def later_shown(self) -> tuple[str, ...]:
        return tuple(f for f in self.later_read if f not in IDENTIFIER_FIELDS)

    @property
    def value_names(self) -> tuple[str, ...]:
        return (
            *(f"a_{f}" for f in self.earlier_shown),
            *(f"b_{f}" for f in self.later_shown),
            "gap_hours",
            "earlier_events",
        )


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
            raise scope.error(
                f"{node.sql()}: in 'then', a.<field> reads one event field of the earlier "
                "event A (attributes and profiles of A are not available)",
                node.sql(),
            )
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


KIND = RuleKind(
    "sequence",
    SequenceRule,
    {
        "first": "expression choosing the earlier events A",
        "then": "expression on the later event B and a.<field> of A that completes the sequence",
        "within": "longest time from A to B, e.g. 48h (A exactly that long before B is outside)",
    },
    build_sequence,
    run_sequence,
)
