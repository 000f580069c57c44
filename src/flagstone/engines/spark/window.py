"""Spark SQL statement for the ``window`` kind (and baskets, which are window rules).

Window rules are exact under ties, as on DuckDB, but Spark has no window frame whose start varies per
row. Events are numbered per group in ``(ts, event_id, source)`` order (``seq``); two RANGE counts
over whole microseconds give the first ``seq`` inside ``(t - W, t]``; each event's aggregates are
then a GROUP BY over a self-join on the group with ``seq`` between that first one and its own.
That costs (events x events per window); groups whose windows can never hold enough events for
``having`` are dropped before the join.
"""

from __future__ import annotations

from flagstone.engines.rows import (
    entity_column,
    episode_last_seq,
    fewest_events,
    grouped_aggregate_sql,
    having_entities,
    having_leaf,
)
from flagstone.engines.spark.sql import ORDER, entity_joins, group_select, ident, micros, same_group, spark_sql
from flagstone.rules.kinds.window import WindowRule


def window_sql(rule: WindowRule, events: str, entities: str) -> str:
    cols, not_null, partition = group_select(rule)
    row_exprs = (rule.match, rule.having, *(a.arg for _, a in rule.aggregates if a.arg is not None))
    arg_cols = "".join(
        f", {spark_sql(agg.arg)} AS {ident('arg_' + name)}" for name, agg in rule.aggregates if agg.arg is not None
    )
    having_entity = having_entities(rule)
    entity_names = [entity_column(n) for n in having_entity]
    entity_cols = "".join(f", {spark_sql(n)} AS {c}" for n, c in zip(having_entity, entity_names, strict=True))
    f_groups = ", ".join(f"f.{ident('group_' + g)}" for g in rule.group_by)

    aggs = ", ".join(
        f"{grouped_aggregate_sql(agg, 'm.' + ident('arg_' + name))} AS agg_{name}" for name, agg in rule.aggregates
    )
    entity_keep = "".join(f", first(f.{c}) AS {c}" for c in entity_names)
    last_seq = "seq"  # the evidence ends at the firing event ...
    values = ", ".join(f"first(f.agg_{name}) AS {ident('value_' + name)}" for name, _ in rule.aggregates)
    if rule.evidence == "episode":
        # ... or at the episode's last event: the one before the next miss, else the group's last.
        last_seq = episode_last_seq(partition)
        values = ", ".join(
            f"{grouped_aggregate_sql(agg, 'm.' + ident('arg_' + name))} AS {ident('value_' + name)}"
            for name, agg in rule.aggregates
        )
    # Groups whose windows never hold enough events cannot fire: skip their (costly) self-join.
    least = fewest_events(rule)
    # RANGE frames over whole microseconds: (t - W, t] is W - 1 PRECEDING to CURRENT ROW.
    reach = rule.window_us - 1
    return f"""
WITH matched AS (
  SELECT e.source, e.event_id, e.ts, {micros("e.ts")} AS ts_us, {cols}{arg_cols}{entity_cols}
  FROM {events} AS e {entity_joins(events, entities, *row_exprs)}
  WHERE ({spark_sql(rule.match)}) AND {not_null}
), numbered AS (
  SELECT *,
    row_number() OVER (PARTITION BY {partition} ORDER BY {ORDER}) AS seq,
    count(*) OVER (PARTITION BY {partition} ORDER BY ts_us RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      - count(*) OVER (PARTITION BY {partition} ORDER BY ts_us RANGE BETWEEN {reach} PRECEDING AND CURRENT ROW)
      + 1 AS window_first_seq
  FROM matched
), candidates AS (
  SELECT * FROM (
    SELECT *, max(seq - window_first_seq + 1) OVER (PARTITION BY {partition}) AS widest FROM numbered
  ) WHERE widest >= {least}
), measured AS (
  SELECT {f_groups}, f.seq, first(f.source) AS source, first(f.event_id) AS event_id, first(f.ts) AS ts,
    first(f.window_first_seq) AS window_first_seq{entity_keep}, {aggs}
  FROM candidates AS f JOIN candidates AS m
    ON {same_group(rule, "m", "f")} AND m.seq BETWEEN f.window_first_seq AND f.seq
  GROUP BY {f_groups}, f.seq
), tested AS (
  SELECT *, coalesce({spark_sql(rule.having, having_leaf)}, FALSE) AS hit FROM measured
), runs AS (
  SELECT *, {last_seq} AS last_seq FROM tested
), fired AS (
  SELECT * FROM (
    SELECT *, lag(hit, 1, FALSE) OVER (PARTITION BY {partition} ORDER BY seq) AS was_hit FROM runs
  ) WHERE hit AND NOT was_hit
)
SELECT {f_groups},
  first(f.source) AS source, first(f.event_id) AS event_id, first(f.ts) AS ts,
  {values},
  min(m.ts) AS first_ts,
  transform(sort_array(collect_list(struct(m.seq, m.source, m.event_id))), x -> x.source) AS evidence_sources,
  transform(sort_array(collect_list(struct(m.seq, m.source, m.event_id))), x -> x.event_id) AS evidence
FROM fired AS f
JOIN candidates AS m
  ON {same_group(rule, "m", "f")} AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY {f_groups}, f.seq
"""
