"""Spark statement for the ``dormancy`` kind, a translation of ``engines/duckdb/dormancy.py``.

A wake is an event whose previous event in the group (``lag``) is at least D earlier (integer
microseconds); a running ``max`` carries the latest wake's ``seq`` forward; events less than A
after it are awake, and a running sum per wake adds up their values. Cost: a few sorts of the
events (O(N log N)); evidence is gathered for the firing events only (alerts x awake run).
"""

from __future__ import annotations

from sqlglot import exp

from flagstone.engines.spark.sql import DIALECT, spark_sql
from flagstone.engines.spark.steps import (
    Carried,
    as_double,
    fired_cte,
    micros_between,
    numbered_ctes,
    partition,
    same_group,
    sorted_list,
)
from flagstone.rules.kinds.dormancy import DormancyRule

_RUNNING = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"


def dormancy_sql(rule: DormancyRule, events: str, entities: str) -> str:
    carried = Carried(rule.having)
    days = f"{as_double('s.gap_us')} / {as_double('86400000000')}"
    named = {"dormant_days": days, "events": "s.events", "total": "s.total"}
    having = carried.sql(rule.having, "n", lambda name: exp.maybe_parse(named[name], dialect=DIALECT))
    groups = partition(rule)
    f_groups = partition(rule, "f")
    gap = micros_between("ts_us", "prev_us")
    lists = sorted_list("m.seq", "m.source", "m.event_id")
    return f"""
WITH {numbered_ctes(rule, events, entities, f", {spark_sql(rule.value)} AS val", carried, rule.value)}, gapped AS (
  SELECT *, lag(ts_us) OVER (PARTITION BY {groups} ORDER BY seq) AS prev_us FROM numbered
), woken AS (
  SELECT *, max(CASE WHEN {gap} >= {rule.dormant_us} THEN seq END)
    OVER (PARTITION BY {groups} ORDER BY seq {_RUNNING}) AS wake_seq
  FROM gapped
), awake AS (
  SELECT n.*, {micros_between("w.ts_us", "w.prev_us")} AS gap_us
  FROM woken AS n
  JOIN gapped AS w ON {same_group(rule, "w", "n")} AND w.seq = n.wake_seq
  WHERE {micros_between("n.ts_us", "w.ts_us")} < {rule.awake_us}
), summed AS (
  SELECT *,
    sum(val) OVER (PARTITION BY {groups}, wake_seq ORDER BY seq {_RUNNING}) AS total,
    count(*) OVER (PARTITION BY {groups}, wake_seq ORDER BY seq {_RUNNING}) AS events
  FROM awake
), tested AS (
  SELECT n.*, s.wake_seq, s.gap_us, s.events, s.total,
    s.seq IS NOT NULL AND coalesce({having}, FALSE) AS hit
  FROM numbered AS n
  LEFT JOIN summed AS s ON {same_group(rule, "s", "n")} AND s.seq = n.seq
), {fired_cte(rule)}
SELECT {f_groups}, first(f.source) AS source, first(f.event_id) AS event_id, first(f.ts) AS ts,
  first({as_double("f.gap_us")} / {as_double("86400000000")}) AS value_dormant_days,
  first(f.events) AS value_events, first(f.total) AS value_total,
  min(m.ts) AS first_ts,
  {lists["m.source"]} AS evidence_sources,
  {lists["m.event_id"]} AS evidence
FROM fired AS f
JOIN numbered AS m ON {same_group(rule, "m", "f")} AND m.seq BETWEEN f.wake_seq - 1 AND f.seq
GROUP BY {f_groups}, f.seq
"""
