"""Pieces the DuckDB statements of the sequence, deviation and dormancy kinds share.

Each statement starts from ``numbered``: the rule's matched events with their group columns, a
``seq`` number per group in ``(ts, event_id, source)`` order, the kind's computed columns and every
leaf (field, attribute, profile attribute) its later expressions read, carried as ``x_...``
columns so those expressions can be evaluated after joins and windows.
"""

from __future__ import annotations

from flagstone.engines import carried
from flagstone.engines.carried import GroupedRule
from flagstone.engines.duckdb.sql import ORDER, entity_joins, event_sql
from flagstone.engines.sql import to_sql
from flagstone.rules import ir


class Carried(carried.Carried):
    """The carried leaves, their SQL written for DuckDB."""

    def select(self) -> str:
        return "".join(f", {event_sql(node)} AS {col}" for node, col in self.cols.items())

    def sql(self, node: ir.Expr, alias: str | None = None, named: carried.Named | None = None) -> str:
        return to_sql(node, self.leaf(alias, named)).sql(dialect="duckdb")


def partition(rule: GroupedRule, alias: str | None = None) -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}group_{g}" for g in rule.group_by)


def same_group(rule: GroupedRule, left: str, right: str) -> str:
    return " AND ".join(f"{left}.group_{g} = {right}.group_{g}" for g in rule.group_by)


def numbered_ctes(
    rule: GroupedRule, events: str, entities: str, computed: str, carried: Carried, *exprs: ir.Expr, rows: str = ""
) -> str:
    """``matched`` and ``numbered``; ``computed`` is extra select items over ``e`` (may be empty).
    ``rows``: what to read instead of ``events`` (the account view's legs); profiles are still
    counted over ``events``."""
    joins = entity_joins(events, entities, rule.match, *exprs, *carried.cols)
    cols = ", ".join(f"e.{g} AS group_{g}" for g in rule.group_by)
    not_null = " AND ".join(f"e.{g} IS NOT NULL" for g in rule.group_by)
    return f"""matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{computed}{carried.select()}
  FROM {rows or events} AS e {joins}
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
