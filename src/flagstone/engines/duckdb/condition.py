"""DuckDB statement for the ``condition`` kind: the test on each matched event, and the first event
of each run where it holds."""

from __future__ import annotations

from flagstone.engines.duckdb.sql import ORDER, event_sql, from_events, group_select, ident
from flagstone.rules.kinds.condition import ConditionRule, shown_leaf


def condition_sql(rule: ConditionRule, events: str, entities: str) -> str:
    cols, not_null, partition = group_select(rule)
    shown = [shown_leaf(name) for name in rule.shown_fields]
    shown_cols = "".join(
        f", {event_sql(node)} AS {ident('value_' + name)}" for name, node in zip(rule.shown_fields, shown, strict=True)
    )
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{shown_cols},
    coalesce({event_sql(rule.condition)}, FALSE) AS hit
  {from_events(events, entities, rule.match, rule.condition)}
  WHERE ({event_sql(rule.match)}) AND {not_null}
), tested AS (
  SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS was_hit
  FROM matched
)
SELECT * EXCLUDE (hit, was_hit), ts AS first_ts, [source] AS evidence_sources, [event_id] AS evidence
FROM tested
WHERE hit AND NOT was_hit
"""
