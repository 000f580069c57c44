"""Spark SQL statements for the ``graph`` kind: fans are lowered to window rules (as on DuckDB),
every other typology has its own builder module, looked up in ``TYPOLOGIES``.

``edge_ctes`` gives each builder the usable transfers with a rank ``rnk`` in the global
``(ts, event_id, source)`` order and their time ``ts_us`` in whole microseconds. The rank is not
``row_number()`` over everything, which Spark runs in a single task, nor
``monotonically_increasing_id()`` after a sort: Spark may compute a CTE once per reference, and with
adaptive execution the partitions, hence those ids, differ between computations. It is
``ts_us * 10^9 + the event's number among the events of the same microsecond``: deterministic,
computed per timestamp in parallel, in the same order, compared and sorted but never counted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from flagstone.engines.graph import edge_predicate, lower_fan
from flagstone.engines.spark_sql import entity_joins, micros, spark_sql
from flagstone.rules.ir_graph import GraphRule

# Typology -> "module:function" building its statement from (rule, events view, entities view).
TYPOLOGIES: dict[str, str] = {
    "fan_out": "flagstone.engines.spark_graph:fan_sql",
    "fan_in": "flagstone.engines.spark_graph:fan_sql",
    "scatter_gather": "flagstone.engines.spark_scatter:two_hop_sql",
    "gather_scatter": "flagstone.engines.spark_scatter:two_hop_sql",
    "bipartite": "flagstone.engines.spark_bipartite:bipartite_sql",
    "cycle": "flagstone.engines.spark_cycle:cycle_sql",
    "stack": "flagstone.engines.spark_stack:stack_sql",
}


def graph_sql(rule: GraphRule, events: str, entities: str) -> str:
    module, _, function = TYPOLOGIES[rule.typology].partition(":")
    build: Callable[[GraphRule, str, str], str] = getattr(importlib.import_module(module), function)
    return build(rule, events, entities)


def fan_sql(rule: GraphRule, events: str, entities: str) -> str:
    from flagstone.engines.spark import window_sql

    return window_sql(lower_fan(rule), events, entities)


def edge_ctes(rule: GraphRule, events: str, entities: str) -> str:
    """``WITH raw AS (...), edges AS (...)``: the usable edges, each with its rank ``rnk`` in the
    global event order and ``ts_us``; accounts sending more than ``max_degree`` edges are dropped
    at both ends."""
    degree = busy = ""
    if rule.max_degree is not None:
        busy = f""", busy AS (
  SELECT actor FROM raw GROUP BY actor HAVING count(*) > {rule.max_degree}
)"""
        degree = """
  WHERE actor NOT IN (SELECT actor FROM busy) AND counterparty NOT IN (SELECT actor FROM busy)"""
    return f"""
WITH raw AS (
  SELECT e.source, e.event_id, e.ts, {micros("e.ts")} AS ts_us, e.actor, e.counterparty, e.amount
  FROM {events} AS e {entity_joins(events, entities, edge_predicate(rule))}
  WHERE ({spark_sql(edge_predicate(rule))})
){busy}, edges AS (
  SELECT *,
    CAST(ts_us AS DECIMAL(38, 0)) * 1000000000 + row_number() OVER (PARTITION BY ts_us ORDER BY event_id, source)
      AS rnk
  FROM raw{degree}
)"""
