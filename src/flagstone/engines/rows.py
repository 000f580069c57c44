"""What every SQL engine shares around its statements: turning a result row into a finding, the
aggregates over an evidence join, and which window groups can never fire."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlglot import exp

from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.window import WindowRule


def row_finding(rule: ir.Rule, row: dict[str, Any]) -> Finding:
    """Every kind's statement returns the same columns: group_<field>..., source, event_id (the
    firing event), ts (its time), first_ts, evidence_sources, evidence and value_<name>..."""
    values = tuple((name, _plain(row[f"value_{name}"])) for name in rule.value_names)
    last: datetime = row["ts"]
    return Finding(
        rule_id=rule.meta.id,
        rule_version=rule.meta.version,
        group=tuple((g, row[f"group_{g}"]) for g in rule.group_by),
        fire=(row["source"], row["event_id"]),
        first_ts=row["first_ts"],
        last_ts=last,
        evidence=tuple(zip(row["evidence_sources"], row["evidence"], strict=True)),
        values=values,
    )


def _plain(value: Any) -> Any:
    # JSON columns arrive as text; everything else is already a Python value.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def grouped_aggregate_sql(agg: ir.Aggregate, arg: str) -> str:
    """One aggregate over grouped rows (a window's or an episode's evidence); ``arg`` is its
    argument column. ``avg`` is sum / count as a float, the same on every engine."""
    if agg.function == "count":
        return "count(*)" if agg.arg is None else f"count({arg})"
    if agg.function == "count_distinct":
        return f"count(DISTINCT {arg})"
    if agg.function == "avg":
        return f"(CAST(sum({arg}) AS DOUBLE) / nullif(count({arg}), 0))"
    return f"{agg.function}({arg})"


def having_entities(rule: WindowRule) -> list[ir.EntityField]:
    """The entity attributes ``having`` reads: constant per group (their role is grouped on), so
    they are carried as columns named by ``entity_column``."""
    nodes = {n for n in ir.walk(rule.having) if isinstance(n, ir.EntityField)}
    return sorted(nodes, key=lambda n: (n.role, n.name))


def entity_column(node: ir.EntityField) -> str:
    return f"{node.role}__{node.name}"


def having_leaf(node: ir.Expr) -> exp.Expression:
    """Leaves of ``having`` on the measured rows: aggregates, group fields, carried entity columns."""
    if isinstance(node, ir.AggregateRef):
        return exp.column(f"agg_{node.name}")
    if isinstance(node, ir.Field):
        return exp.column(f"group_{node.name}")
    if isinstance(node, ir.EntityField):
        return exp.column(entity_column(node))
    raise TypeError(f"{node!r} cannot appear in having")


def episode_last_seq(partition: str) -> str:
    """The ``seq`` of an episode's last event, for each row of ``tested`` (columns seq, hit): the
    event before the group's next miss, else the group's last event."""
    return (
        f"coalesce(min(CASE WHEN NOT hit THEN seq END) OVER (PARTITION BY {partition} ORDER BY seq "
        f"ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING) - 1, max(seq) OVER (PARTITION BY {partition}))"
    )


def fewest_events(rule: WindowRule) -> int:
    """How many events a window must hold for ``having`` to be true, from its count thresholds
    (``n >= 8`` with n a count or distinct count needs 8 events; 1 when nothing is known)."""
    counts = {name for name, agg in rule.aggregates if agg.function in ("count", "count_distinct")}

    def need(node: ir.Expr) -> int:
        if isinstance(node, ir.Logical):
            left, right = need(node.left), need(node.right)
            return max(left, right) if node.op == "and" else min(left, right)
        if (
            isinstance(node, ir.Compare)
            and isinstance(node.left, ir.AggregateRef)
            and node.left.name in counts
            and isinstance(node.right, ir.Literal)
            and isinstance(node.right.value, int | Decimal)
            and not isinstance(node.right.value, bool)
            and node.op in (">=", ">", "=")
        ):
            bound = Decimal(node.right.value)
            least = int(bound.to_integral_value(rounding="ROUND_CEILING"))
            return least + 1 if node.op == ">" and bound == least else least
        return 1

    return need(rule.having)
