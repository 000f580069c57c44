"""DuckDB statement for the ``dormancy`` kind.

A wake is an event whose previous event in the group (``lag``) is at least D earlier; a running
``max`` carries the latest wake's ``seq`` forward; events less than A after it are awake, and a
running sum per wake adds up their values. Cost: a few sorts of the events (O(N log N)); evidence
is gathered for the firing events only.
"""

from __future__ import annotations

from sqlglot import exp

from flagstone.engines.duckdb.sql import event_sql
from flagstone.engines.duckdb.steps import (
    Carried,
    as_double,
    fired_cte,
    micros_between,
    numbered_ctes,
    partition,
    same_group,
)
from flagstone.rules.kinds.dormancy import DormancyRule


def dormancy_sql(rule: DormancyRule, events: str, entities: str) -> str:
    carried = Carried(rule.having)
    named = {
        "dormant_days": f"{as_double('s.gap_us')} / {as_double('86400000000')}",
        "events": "s.events",
        "total": "s.total",
    }
    having = carried.sql(rule.having, "n", lambda name: exp.maybe_parse(named[name], dialect="duckdb"))
    groups = partition(rule)
    gap = micros_between("ts", "prev_ts")
    return f"""
WITH {numbered_ctes(rule, events, entities, f", {event_sql(rule.value)} AS val", carried, rule.value)}, gapped AS (
  SELECT *, lag(ts) OVER (PARTITION BY {groups} ORDER BY seq) AS prev_ts FROM numbered
), woken AS (
  SELECT *, max(CASE WHEN {gap} >= {rule.dormant_us} THEN seq END)
    OVER (PARTITION BY {groups} ORDER BY seq ROWS UNBOUNDED PRECEDING) AS wake_seq
  FROM gapped
), awake AS (
  SELECT n.*, {micros_between("w.ts", "w.prev_ts")} AS gap_us
  FROM woken AS n
  JOIN gapped AS w ON {same_group(rule, "w", "n")} AND w.seq = n.wake_seq
  WHERE {micros_between("n.ts", "w.ts")} < {rule.awake_us}
), summed AS (
  SELECT *, sum(val) OVER s AS total, count(*) OVER s AS events
  FROM awake
  WINDOW s AS (PARTITION BY {groups}, wake_seq ORDER BY seq ROWS UNBOUNDED PRECEDING)
), tested AS (
  SELECT n.*, s.wake_seq, s.gap_us, s.events, s.total,
    s.seq IS NOT NULL AND coalesce({having}, FALSE) AS hit
  FROM numbered AS n
  LEFT JOIN summed AS s ON {same_group(rule, "s", "n")} AND s.seq = n.seq
), {fired_cte(rule)}
SELECT {partition(rule, "f")}, f.source, f.event_id, f.ts,
  {as_double("f.gap_us")} / {as_double("86400000000")} AS value_dormant_days,
  f.events AS value_events, f.total AS value_total,
  min(m.ts) AS first_ts,
  list(m.source ORDER BY m.seq) AS evidence_sources,
  list(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m ON {same_group(rule, "m", "f")} AND m.seq BETWEEN f.wake_seq - 1 AND f.seq
GROUP BY ALL
"""
