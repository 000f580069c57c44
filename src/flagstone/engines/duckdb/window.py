"""DuckDB statement for the ``window`` kind (and baskets, which are window rules).

Window rules use a frame that is exact under ties: events are numbered per group in
``(ts, event_id, source)`` order (``seq``); a RANGE frame over ``ts`` finds how many events fall in
``(t - W, t]``; from that the first ``seq`` in the window follows, and a ROWS frame whose start
varies per row (``back`` rows before the current one) computes every aggregate over exactly the
events up to and including the current one. See ``docs/rules.md`` for the cost.
"""

from __future__ import annotations

from flagstone.engines.duckdb.sql import ORDER, event_sql, from_events, group_select, ident
from flagstone.engines.rows import (
    entity_column,
    episode_last_seq,
    fewest_events,
    grouped_aggregate_sql,
    having_entities,
    having_leaf,
)
from flagstone.engines.sql import to_sql
from flagstone.rules import ir
from flagstone.rules.kinds.window import WindowRule


def window_sql(rule: WindowRule, events: str, entities: str) -> str:
    cols, not_null, partition = group_select(rule)
    row_exprs = (rule.match, rule.having, *(a.arg for _, a in rule.aggregates if a.arg is not None))
    arg_cols = "".join(
        f", {event_sql(agg.arg)} AS {ident('arg_' + name)}" for name, agg in rule.aggregates if agg.arg is not None
    )
    entity_cols = "".join(f", {event_sql(n)} AS {entity_column(n)}" for n in having_entities(rule))
    aggs = ", ".join(f"{aggregate_sql(name, agg)} AS agg_{name}" for name, agg in rule.aggregates)
    last_seq = "seq"  # the evidence ends at the firing event ...
    values = ", ".join(f"f.agg_{name} AS value_{name}" for name, _ in rule.aggregates)
    if rule.evidence == "episode":
        # ... or at the episode's last event: the one before the next miss, else the group's last.
        last_seq = episode_last_seq(partition)
        values = ", ".join(
            f"{grouped_aggregate_sql(agg, 'm.' + ident('arg_' + name))} AS value_{name}"
            for name, agg in rule.aggregates
        )
    # Groups whose windows never hold enough events cannot fire: skip their (costly) aggregates.
    candidates = ""
    if (least := fewest_events(rule)) > 1:
        candidates = (
            f" WHERE ({partition}) IN (SELECT ({partition}) FROM numbered WHERE seq - window_first_seq + 1 >= {least})"
        )
    # The RANGE frame is (t - W, t]: timestamps are whole microseconds, so W - 1us PRECEDING.
    reach = f"INTERVAL '{rule.window_us - 1} microseconds'"
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {cols}{arg_cols}{entity_cols}
  {from_events(events, entities, *row_exprs)}
  WHERE ({event_sql(rule.match)}) AND {not_null}
), numbered AS (
  SELECT *,
    row_number() OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS seq,
    count(*) OVER (PARTITION BY {partition} ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      - count(*) OVER (PARTITION BY {partition} ORDER BY ts RANGE BETWEEN {reach} PRECEDING AND CURRENT ROW)
      + 1 AS window_first_seq
  FROM matched
), measured AS (
  SELECT *, {aggs}
  FROM (SELECT *, seq - window_first_seq AS back FROM numbered{candidates})
  WINDOW w AS (PARTITION BY {partition} ORDER BY seq ROWS BETWEEN back PRECEDING AND CURRENT ROW)
), tested AS (
  SELECT *, coalesce({to_sql(rule.having, having_leaf).sql(dialect="duckdb")}, FALSE) AS hit FROM measured
), runs AS (
  SELECT *, {last_seq} AS last_seq FROM tested
), fired AS (
  SELECT * FROM (
    SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY seq) AS was_hit FROM runs
  ) WHERE hit AND NOT was_hit
)
SELECT {", ".join(f"f.group_{g}" for g in rule.group_by)}, f.source, f.event_id, f.ts,
  {values},
  min(m.ts) AS first_ts,
  list(m.source ORDER BY m.seq) AS evidence_sources,
  list(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON {" AND ".join(f"m.group_{g} = f.group_{g}" for g in rule.group_by)}
  AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY ALL
"""


def aggregate_sql(name: str, agg: ir.Aggregate) -> str:
    """One aggregate over the window ``w``."""
    arg = ident(f"arg_{name}")
    if agg.function == "count":
        return "count(*) OVER w" if agg.arg is None else f"count({arg}) OVER w"
    if agg.function == "count_distinct":
        return f"count(DISTINCT {arg}) OVER w"
    if agg.function == "avg":
        # sum / count as a float, the same on every engine (DuckDB's own avg may differ in the last bit).
        return f"(CAST(sum({arg}) OVER w AS DOUBLE) / count({arg}) OVER w)"
    return f"{agg.function}({arg}) OVER w"
