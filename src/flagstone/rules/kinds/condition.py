"""The ``condition`` rule kind: a test on each matched event alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flagstone.events import EVENT_FIELDS, IDENTIFIER_FIELDS
from flagstone.rules import ir
from flagstone.rules.episodes import run_tests
from flagstone.rules.evaluator import Context, Entities, Event, evaluate
from flagstone.rules.expressions import to_predicate
from flagstone.rules.finding import Finding
from flagstone.rules.reader import Common, RuleKind


@dataclass(frozen=True)
class ConditionRule:
    """Fires on single events: ``condition`` is evaluated on each matched event alone."""

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    condition: ir.Expr
    # Event fields shown in the alert's values (those the rule reads).
    shown_fields: tuple[str, ...] = ()

    @property
    def value_names(self) -> tuple[str, ...]:
        """Names of the values each finding carries, in order (every engine returns these)."""
        return self.shown_fields


def shown_leaf(name: str) -> ir.Expr:
    """The leaf a condition rule's shown field reads: ``attrs.key`` or an event field."""
    return ir.Attr(name.removeprefix("attrs.")) if name.startswith("attrs.") else ir.Field(name)


def build_condition(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    cond_scope = r.scope("condition", c.params)
    condition = to_predicate(r.text("condition"), cond_scope)
    read = c.match_scope.fields_read | cond_scope.fields_read
    shown = tuple(f for f in EVENT_FIELDS if f in read and f not in IDENTIFIER_FIELDS)
    shown += tuple(sorted(f for f in read if f.startswith("attrs.")))
    return ConditionRule(c.meta, c.match, c.group_by, condition, shown), set(shown)


def run_condition(rule: ConditionRule, events: list[Event], entities: Entities) -> list[Finding]:
    """The oracle: the condition at every matched event, one finding per episode."""

    def test(seq: list[Event], i: int) -> tuple[bool, list[Event], dict[str, Any]]:
        event = seq[i]
        ctx = Context(event, entities)
        values = {name: evaluate(shown_leaf(name), ctx) for name in rule.shown_fields}
        return evaluate(rule.condition, ctx) is True, [event], values

    return run_tests(rule, events, entities, test)


KIND = RuleKind(
    "condition",
    ConditionRule,
    {"condition": "expression tested on each matched event"},
    build_condition,
    run_condition,
)
