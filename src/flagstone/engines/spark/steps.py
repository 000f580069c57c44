"""Pieces the Spark statements of the sequence, deviation and dormancy kinds share.

The same shape as ``engines/duckdb/steps.py``: each statement starts from ``numbered``, the
rule's matched events with their group columns, ``ts_us`` (exact epoch microseconds, so that every time
comparison is on integers), a ``seq`` number per group in ``(ts, event_id, source)`` order, the
kind's computed columns and the carried ``x_...`` leaves its later expressions read.
"""

from __future__ import annotations

from flagstone.engines import carried
from flagstone.engines.carried import GroupedRule, Named
from flagstone.engines.spark.sql import ORDER, entity_joins, ident, micros, spark_sql
from flagstone.rules import ir

__all__ = [
    "ORDER",
    "Carried",
    "as_double",
    "fired_cte",
    "micros_between",
    "numbered_ctes",
    "partition",
    "same_group",
    "sorted_list",
]


class Carried(carried.Carried):
    """The carried leaves, their SQL written for Spark."""

    def select(self) -> str:
        return "".join(f", {spark_sql(node)} AS {col}" for node, col in self.cols.items())

    def sql(self, node: ir.Expr, alias: str | None = None, named: Named | None = None) -> str:
        return spark_sql(node, self.leaf(alias, named))


def partition(rule: GroupedRule, alias: str | None = None) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{ident('group_' + g)}" for g in rule.group_by)


def same_group(rule: GroupedRule, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{ident('group_' + g)} = {right}.{ident('group_' + g)}" for g in rule.group_by)


def numbered_ctes(
    rule: GroupedRule, events: str, entities: str, computed: str, carried: Carried, *exprs: ir.Expr, rows: str = ""
) -> str:
    """``matched`` and ``numbered``; ``computed`` is extra select items over ``e`` (may be empty).
    ``rows``: what to read instead of ``events`` (the account view's legs); profiles are still
    counted over ``events``."""
    joins = entity_joins(events, entities, rule.match, *exprs, *carried.cols)
    cols = ", ".join(f"e.{ident(g)} AS {ident('group_' + g)}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{ident(g)} IS NOT NULL" for g in rule.group_by)
    return f"""matched AS (
  SELECT e.source, e.event_id, e.ts, {micros("e.ts")} AS ts_us, {cols}{computed}{carried.select()}
  FROM {rows or events} AS e {joins}
  WHERE ({spark_sql(rule.match)}) AND {not_null}
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
    """Whole microseconds between two ``ts_us`` columns (already exact integers)."""
    return f"({later} - {earlier})"


def sorted_list(order: str, *items: str) -> dict[str, str]:
    """Ordered lists of grouped rows: each item's values sorted by ``order`` (a unique key), by
    sorting structs whose first field is that key. Returns the select text per item."""
    fields = ", ".join(f"{x} AS f{i}" for i, x in enumerate((order, *items)))
    rows = f"sort_array(collect_list(struct({fields})))"
    return {item: f"transform({rows}, x -> x.f{i + 1})" for i, item in enumerate(items)}
