"""The transfers every DuckDB statement of the ``graph`` kind starts from."""

from __future__ import annotations

from flagstone.engines.duckdb.sql import ORDER, entity_joins, event_leaf
from flagstone.engines.graph import edge_predicate
from flagstone.engines.sql import to_sql
from flagstone.rules.kinds.graph import GraphRule


def edge_ctes(rule: GraphRule, events: str, entities: str) -> str:
    """``WITH raw AS (...), edges AS (...)``: the usable edges, each with its rank ``rnk`` in order."""
    match = to_sql(edge_predicate(rule), event_leaf).sql(dialect="duckdb")
    joins = entity_joins(events, entities, rule.match)
    degree = busy = ""
    if rule.max_degree is not None:
        # Read once: without MATERIALIZED the planner would scan the events again per reference.
        busy = f""", busy AS MATERIALIZED (
  SELECT actor FROM raw GROUP BY actor HAVING count(*) > {rule.max_degree}
)"""
        degree = """
    WHERE actor NOT IN (SELECT actor FROM busy) AND counterparty NOT IN (SELECT actor FROM busy)"""
    return f"""
WITH raw AS {"MATERIALIZED " if busy else ""}(
  SELECT e.source, e.event_id, e.ts, e.actor, e.counterparty, e.amount
  FROM {events} AS e {joins}
  WHERE ({match})
){busy}, edges AS MATERIALIZED (
  SELECT *, row_number() OVER (ORDER BY {ORDER}) AS rnk FROM raw{degree}
)"""
