"""The ``sequence`` rule kind: event A then event B of the same group within T, linked by
``then``. Its typed form, its keys and its plain-Python definition (the oracle).

With ``accounts`` (the account view, ``rules/legs.py``) A and B are legs rather than events, so A
can be money arriving at an account through the payer's record and B money leaving it through the
account's own: the pass-through of a ledger that books each transfer once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlglot import exp

from flagstone.events import EVENT_FIELDS, IDENTIFIER_FIELDS
from flagstone.rules import ir
from flagstone.rules.episodes import micros, run_tests
from flagstone.rules.evaluator import Context, Entities, Event, evaluate
from flagstone.rules.expressions import _EVENT_TYPES, Scope, convert, parse_text, to_predicate
from flagstone.rules.finding import Finding
from flagstone.rules.legs import ACCOUNT_KEYS, account_legs, read_accounts
from flagstone.rules.reader import Common, RuleKind, read_duration

# In ``then``, ``a.<field>`` is an ``ir.AggregateRef`` named with this prefix: like an aggregate in
# ``having``, it is a value the kind supplies for each candidate pair; every back end already maps
# AggregateRef through its leaf function.
EARLIER = "a."
_HIDDEN = (*IDENTIFIER_FIELDS, *ir.LEG_IDENTIFIERS)  # pseudonyms are not values to show


@dataclass(frozen=True)
class SequenceRule:
    """Fires at a matched event B when an earlier matched event A of the same group satisfies
    ``first`` and ``then`` (A and B together) and lies in B's window ``(ts(B) - T, ts(B)]``.

    ``then`` reads B's fields as ``ir.Field`` / ``ir.Attr`` / ``ir.EntityField`` and A's as
    ``ir.AggregateRef('a.<field>')``. ``earlier_read`` / ``later_read`` are the event fields
    ``then`` reads of A / B; all but identifiers are shown as ``a_<field>`` / ``b_<field>``.
    With ``accounts`` the events are the legs of the account view (``ir.AccountView``): ``match``
    chooses events, which then become legs; ``group_by``, ``first`` and ``then`` read legs.
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
    accounts: ir.AccountView | None = None

    @property
    def earlier_shown(self) -> tuple[str, ...]:
        return tuple(f for f in self.earlier_read if f not in _HIDDEN)

    @property
    def later_shown(self) -> tuple[str, ...]:
        return tuple(f for f in self.later_read if f not in _HIDDEN)

    @property
    def value_names(self) -> tuple[str, ...]:
        return (
            *(f"a_{f}" for f in self.earlier_shown),
            *(f"b_{f}" for f in self.later_shown),
            "gap_hours",
            "earlier_events",
        )


def _pair_tree(
    tree: exp.Expression, scope: Scope, earlier: set[str], readable: dict[str, ir.ValueType]
) -> exp.Expression:
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
        if node.args.get("db") or node.name not in readable:
            raise scope.error(
                f"{node.sql()}: in 'then', a.<field> reads one event field of the earlier "
                "event A (attributes and profiles of A are not available)",
                node.sql(),
            )
        earlier.add(node.name)
        scope.aggregates[EARLIER + node.name] = readable[node.name]
        return exp.Column(this=exp.to_identifier(EARLIER + node.name, quoted=True))

    return tree.transform(rewrite)


def build_sequence(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    within_text, within_us = read_duration(r, "within", c.params)
    accounts = read_accounts(r, c.params)
    legs: dict[str, ir.ValueType] = {}
    if accounts is not None:
        legs = dict(ir.LEG_FIELDS)
        if not {"account", "other"} & set(c.group_by):
            raise r.error(
                "group_by",
                "with accounts, group_by must hold account (or other): an event's two legs would "
                "otherwise fall into one group",
                list(c.group_by),
            )
    first = to_predicate(r.text("first"), r.scope("first", c.params, leg_fields=legs))
    scope = r.scope("then", c.params, leg_fields=legs)
    earlier: set[str] = set()
    text = r.text("then")
    readable = {f: _EVENT_TYPES[col.type] for f, col in EVENT_FIELDS.items() if col.type != "json"} | legs
    then, typ = convert(_pair_tree(parse_text(text, scope), scope, earlier, readable), scope)
    if typ not in ("boolean", "null"):
        raise scope.error(f"expression {text!r} must be true or false, but it is a {typ}", text)
    fields = list(readable)
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
        accounts=accounts,
    )
    return rule, set(rule.value_names)


def run_sequence(rule: SequenceRule, events: list[Event], entities: Entities) -> list[Finding]:
    if rule.accounts is not None:  # match chooses events; the rest of the rule reads their legs
        matched = [e for e in events if evaluate(rule.match, Context(e, entities)) is True]
        events = account_legs(rule.accounts, matched, entities)
        rule = replace(rule, match=ir.TRUE)

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
        "accounts": "the account view: read legs (account, other, direction) instead of events; "
        + "; ".join(f"{k}: {v}" for k, v in ACCOUNT_KEYS.items()),
    },
    build_sequence,
    run_sequence,
)
