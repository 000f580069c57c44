"""Spark statement for the ``deviation`` kind, a translation of ``engines/duckdb/deviation.py``.

The history of an event is the events of its group (or, with ``peer_by``, of its peer group,
numbered ``hseq``) strictly before it in event order with ``ts > t - H``. Spark has no window
frame whose start varies per row, so as in window rules two RANGE counts over ``ts_us`` give the
first ``hseq`` inside the history, and a self-join on the ``hseq`` range collects the history's
non-NULL values into a sorted array. ``median`` is its middle element, or ``(a + b) / 2`` of the
two middle ones, as doubles exactly as the oracle computes them; ``mad`` is the same over the
absolute deviations from that median. Cost: N x history size rows in the join (as DuckDB's
``mad``), plus sorting each history; evidence is gathered for the firing events only.
"""

from __future__ import annotations

from sqlglot import exp

from flagstone.engines.spark.sql import spark_sql
from flagstone.engines.spark.steps import (
    ORDER,
    Carried,
    as_double,
    fired_cte,
    numbered_ctes,
    partition,
    same_group,
    sorted_list,
)
from flagstone.engines.sql import literal
from flagstone.rules.kinds.deviation import MAD_SCALE, DeviationRule

_COLUMNS = {"value": "val", "median": "med", "mad": "mad", "z": "z", "history_count": "history_count"}


def _median(values: str) -> str:
    """The median of a sorted, NULL-free array column; NULL when it is empty. ``element_at`` is
    1-based and fails outside the array, so the CASE guards the empty one."""
    n = f"size({values})"
    half = f"CAST({n} DIV 2 AS INT)"  # element_at wants an INT; DIV gives a BIGINT
    middle = f"element_at({values}, {half} + 1)"
    pair = f"(element_at({values}, {half}) + {middle}) / 2"
    return f"CASE WHEN {n} = 0 THEN NULL WHEN {n} % 2 = 1 THEN {middle} ELSE {pair} END"


def deviation_sql(rule: DeviationRule, events: str, entities: str) -> str:
    carried = Carried(rule.having)
    having = carried.sql(rule.having, None, lambda name: exp.column(_COLUMNS[name]))
    groups = partition(rule)
    scale = literal(MAD_SCALE).sql(dialect="spark")
    # (t - H, t] as a RANGE frame over whole microseconds: H - 1 PRECEDING.
    reach = rule.history_us - 1
    computed = f", {as_double(spark_sql(rule.value))} AS val"
    # The history runs over the group's own events, or over the peer group's (``hseq``).
    source, hpart, hseq, same = "numbered", groups, "seq", same_group(rule, "m", "f")
    peer_known = ""
    if rule.peer_by is not None:
        computed += f", {spark_sql(rule.peer_by)} AS peer"
        source = f"(SELECT *, row_number() OVER (PARTITION BY peer ORDER BY {ORDER}) AS hseq FROM numbered)"
        hpart, hseq, same, peer_known = "peer", "hseq", "m.peer = f.peer", "peer IS NOT NULL AND "
    exprs = (rule.value,) if rule.peer_by is None else (rule.value, rule.peer_by)
    f_groups = partition(rule, "f")
    lists = sorted_list(f"m.{hseq}", "m.source", "m.event_id")
    return f"""
WITH {numbered_ctes(rule, events, entities, computed, carried, *exprs)}, framed AS (
  SELECT *,
    count(*) OVER (PARTITION BY {hpart} ORDER BY ts_us RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      - count(*) OVER (PARTITION BY {hpart} ORDER BY ts_us RANGE BETWEEN {reach} PRECEDING AND CURRENT ROW)
      + 1 AS history_first
  FROM {source}
), histories AS (
  SELECT {f_groups}, f.seq, sort_array(collect_list(m.val)) AS past, count(m.val) AS history_count
  FROM framed AS f
  LEFT JOIN framed AS m
    ON {same} AND m.{hseq} BETWEEN f.history_first AND f.{hseq} - 1 AND m.val IS NOT NULL
  GROUP BY {f_groups}, f.seq
), centred AS (
  SELECT f.*, h.past, h.history_count, {_median("h.past")} AS med
  FROM framed AS f
  JOIN histories AS h ON {same_group(rule, "h", "f")} AND h.seq = f.seq
), spread AS (
  SELECT *, sort_array(transform(past, x -> abs(x - med))) AS deviations FROM centred
), measured AS (
  SELECT *, {_median("deviations")} AS mad FROM spread
), scored AS (
  SELECT *, (val - med) / nullif({scale} * mad, 0) AS z FROM measured
), tested AS (
  SELECT *,
    coalesce({peer_known}val IS NOT NULL AND history_count >= {rule.min_history} AND ({having}), FALSE) AS hit
  FROM scored
), {fired_cte(rule)}
SELECT {f_groups}, first(f.source) AS source, first(f.event_id) AS event_id, first(f.ts) AS ts,
  first(f.val) AS value_value, first(f.med) AS value_median, first(f.mad) AS value_mad, first(f.z) AS value_z,
  first(f.history_count) AS value_history_count,
  min(m.ts) AS first_ts,
  {lists["m.source"]} AS evidence_sources,
  {lists["m.event_id"]} AS evidence
FROM fired AS f
JOIN framed AS m
  ON {same} AND m.{hseq} BETWEEN f.history_first AND f.{hseq}
  AND (m.val IS NOT NULL OR m.{hseq} = f.{hseq})
GROUP BY {f_groups}, f.seq
"""
