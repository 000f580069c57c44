"""Pieces the DuckDB statements of the sequence, deviation and dormancy kinds share.

Each statement starts from ``numbered``: the rule's matched events with their group columns, a
``seq`` number per group in ``(ts, event_id, source)`` order, the kind's computed columns and every
leaf (field, attribute, profile attribute) its later expressions read, carried as ``x_...``
columns so those expressions can be evaluated after joins and windows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlglot import exp

from flagstone.engines.duckdb_profiles import entity_joins
from flagstone.engines.sql import Leaf, to_sql, walk
from flagstone.rules import ir

ORDER = "ts, event_id, source"
Named = Callable[[str], exp.Expression]


class GroupedRule(Protocol):
    @property
    def match(self) -> ir.Expr: ...
    @property
    def group_by(self) -> tuple[str, ...]: ...


def event_leaf(node: ir.Expr) -> exp.Expression:
    """Leaves as seen from the raw events table ``e`` joined with entity profiles."""
    if isinstance(node, ir.Field):
        return exp.column(node.name, table="e")
    if isinstance(node, ir.Attr):
        path = exp.Literal.string('$."' + node.name.replace('"', '\\"') + '"')
        return exp.Anonymous(this="json_extract_string", expressions=[exp.column("attrs", table="e"), path])
    if isinstance(node, ir.EntityField):
        if node.profile is not None:
            from flagstone.engines.duckdb_profiles import profile_value

            return profile_value(node)
        return exp.column(node.name, table=f"{node.role}_entity")
    raise TypeError(f"{node!r} is not available on events")


def event_sql(node: ir.Expr) -> str:
    """An expression over the raw event ``e`` and its profile joins."""
    return to_sql(node, event_leaf).sql(dialect="duckdb")


class Carried:
    """The leaves of some expressions, computed once per event as columns ``x_amount``, ..."""

    def __init__(self, *exprs: ir.Expr) -> None:
        self.cols: dict[ir.Expr, str] = {}
        for e in exprs:
            for n in walk(e):
                if isinstance(n, ir.Field | ir.Attr | ir.EntityField) and n not in self.cols:
                    self.cols[n] = _column_name(n, len(self.cols))

    def select(self) -> str:
        return "".join(f", {event_sql(node)} AS {col}" for node, col in self.cols.items())

    def leaf(self, alias: str | None = None, named: Named | None = None) -> Leaf:
        """Leaves read from the carried columns of ``alias``; ``named`` maps AggregateRef names."""

        def leaf(node: ir.Expr) -> exp.Expression:
            if node in self.cols:
                return exp.column(self.cols[node], table=alias)
            if isinstance(node, ir.AggregateRef) and named is not None:
                return named(node.name)
            raise TypeError(f"{node!r} is not carried")

        return leaf

    def sql(self, node: ir.Expr, alias: str | None = None, named: Named | None = None) -> str:
        return to_sql(node, self.leaf(alias, named)).sql(dialect="duckdb")


def _column_name(node: ir.Field | ir.Attr | ir.EntityField, i: int) -> str:
    # Readable names in the generated SQL; attribute keys may hold any character, so they are numbered.
    if isinstance(node, ir.Field):
        return f"x_{node.name}"
    if isinstance(node, ir.EntityField):
        return f"x_{node.role}_{node.name}"
    return f"x_attr_{i}"


def partition(rule: GroupedRule, alias: str | None = None) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}group_{g}" for g in rule.group_by)


def same_group(rule: GroupedRule, left: str, right: str) -> str:
    return " AND ".join(f"{left}.group_{g} = {right}.group_{g}" for g in rule.group_by)


def numbered_ctes(
    rule: GroupedRule, events: str, entities: str, computed: str, carried: Carried, *exprs: ir.Expr
) -> str:
    """``matched`` and ``numbered``; ``computed`` is extra select items over ``e`` (may be empty)."""
    joins = entity_joins(events, entities, rule.match, *exprs, *carried.cols)
    cols = ", ".join(f"e.{g} AS group_{g}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{g} IS NOT NULL" for g in rule.group_by)
    return f"""matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{computed}{carried.select()}
  FROM {events} AS e {joins}
  WHERE ({event_sql(rule.match)}) AND {not_null}
), numbered AS (
  SELECT *, row_number() OVER (PARTITION BY {partition(rule)} ORDER BY {ORDER}) AS seq FROM matched
)"""


def fired_cte(rule: GroupedRule) -> str:
    """One firing per episode: the test holds here and did not at the group's previous event."""
    return f"""fired AS (
  SELECT * FROM (
    SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition(rule)} ORDER BY seq) AS was_hit FROM tested
  ) WHERE hit AND NOT was_hit
)"""


def as_double(sql: str) -> str:
    return f"CAST({sql} AS DOUBLE)"


def micros_between(later: str, earlier: str) -> str:
    """Whole microseconds from one timestamp to another (exact integers, no interval arithmetic)."""
    return f"(epoch_us({later}) - epoch_us({earlier}))"
