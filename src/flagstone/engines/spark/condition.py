"""Spark SQL statement for the ``condition`` kind: the test on each matched event, and the first
event of each run where it holds."""

from __future__ import annotations

from flagstone.engines.spark.sql import ORDER, entity_joins, group_select, ident, spark_sql
from flagstone.rules.kinds.condition import ConditionRule, shown_leaf


def condition_sql(rule: ConditionRule, events: str, entities: str) -> str:
    cols, not_null, partition = group_select(rule)
    shown = "".join(f", {spark_sql(shown_leaf(n))} AS {ident('value_' + n)}" for n in rule.shown_fields)
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{shown},
    coalesce({spark_sql(rule.condition)}, FALSE) AS hit
  FROM {events} AS e {entity_joins(events, entities, rule.match, rule.condition)}
  WHERE ({spark_sql(rule.match)}) AND {not_null}
), tested AS (
  SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS was_hit FROM matched
)
SELECT *, ts AS first_ts, array(source) AS evidence_sources, array(event_id) AS evidence
FROM tested
WHERE hit AND NOT was_hit
"""
