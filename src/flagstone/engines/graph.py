"""Engine-neutral rewrites of the ``graph`` kind shared by every SQL engine."""

from __future__ import annotations

from flagstone.rules import ir
from flagstone.rules.kinds.graph.rule import GraphRule
from flagstone.rules.kinds.window import WindowRule


def edge_predicate(rule: GraphRule) -> ir.Expr:
    """The rule's match narrowed to transfers: an actor, a different counterparty, amount > 0."""
    test: ir.Expr = rule.match
    for part in (
        ir.IsNull(ir.Field("actor"), negated=True),
        ir.IsNull(ir.Field("counterparty"), negated=True),
        ir.Compare("!=", ir.Field("actor"), ir.Field("counterparty")),
        ir.Compare(">", ir.Field("amount"), ir.Literal(0)),
    ):
        test = part if test == ir.TRUE else ir.Logical("and", test, part)
    return test


def lower_fan(rule: GraphRule) -> WindowRule:
    """Fan-out / fan-in as a window rule over the anchor's transfers (engine-neutral rewrite)."""
    other = "actor" if rule.group_by == ("counterparty",) else "counterparty"
    aggregates = (
        ("counterparties", ir.Aggregate("count_distinct", ir.Field(other))),
        ("transfers", ir.Aggregate("count", None)),
        ("total", ir.Aggregate("sum", ir.Field("amount"))),
    )
    having = ir.Compare(">=", ir.AggregateRef("counterparties"), ir.Literal(rule.min_counterparties))
    return WindowRule(
        rule.meta, edge_predicate(rule), rule.group_by, rule.window_us, aggregates, having, rule.window_text, "episode"
    )
