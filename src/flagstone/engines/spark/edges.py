"""The transfers every Spark SQL statement of the ``graph`` kind starts from.

``edge_ctes`` gives each builder the usable transfers with a rank ``rnk`` in the global
``(ts, event_id, source)`` order and their time ``ts_us`` in whole microseconds. The rank is not
``row_number()`` over everything, which Spark runs in a single task, nor
``monotonically_increasing_id()`` after a sort: Spark may compute a CTE once per reference, and with
adaptive execution the partitions, hence those ids, differ between computations. It is
``ts_us * 10^9 + the event's number among the events of the same microsecond``: deterministic,
computed per timestamp in parallel, in the same order, compared and sorted but never counted.
"""

from __future__ import annotations

from flagstone.engines.graph import edge_predicate
from flagstone.engines.spark.sql import entity_joins, micros, spark_sql
from flagstone.rules.kinds.graph.rule import GraphRule


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
