"""DuckDB statement for the ``deviation`` kind.

The history of an event is a ROWS frame whose start varies per row, found as in window rules
(a RANGE count over ``ts`` gives the first ``seq`` with ``ts > t - H``), ending one row before the
event. ``median`` and ``mad`` are DuckDB's holistic window aggregates over that frame; both take
the mean of the two middle values for even counts, as the oracle does. Cost: ``median`` uses
DuckDB's sorted trees (O(N log N)), but ``mad`` is recomputed per frame, so the statement grows as
N × history size; evidence is gathered for the firing events only (alerts × history size).
"""

from __future__ import annotations

from sqlglot import exp

from flagstone.engines.duckdb.sql import ORDER, event_sql
from flagstone.engines.duckdb.steps import (
    Carried,
    as_double,
    fired_cte,
    numbered_ctes,
    partition,
    same_group,
)
from flagstone.engines.sql import literal
from flagstone.rules.kinds.deviation import MAD_SCALE, DeviationRule

_COLUMNS = {"value": "val", "median": "med", "mad": "mad", "z": "z", "history_count": "history_count"}


def deviation_sql(rule: DeviationRule, events: str, entities: str) -> str:
    carried = Carried(rule.having)
    having = carried.sql(rule.having, None, lambda name: exp.column(_COLUMNS[name]))
    groups = partition(rule)
    scale = literal(MAD_SCALE).sql(dialect="duckdb")
    # (t - H, t] as a RANGE frame: timestamps are whole microseconds, so H - 1us PRECEDING.
    reach = f"INTERVAL '{rule.history_us - 1} microseconds'"
    computed = f", {as_double(event_sql(rule.value))} AS val"
    # The history frame runs over the group's own events, or over the peer group's (``hseq``).
    source, hpart, hseq, same = "numbered", groups, "seq", same_group(rule, "m", "f")
    peer_known = ""
    if rule.peer_by is not None:
        computed += f", {event_sql(rule.peer_by)} AS peer"
        source = f"(SELECT *, row_number() OVER (PARTITION BY peer ORDER BY {ORDER}) AS hseq FROM numbered)"
        hpart, hseq, same, peer_known = "peer", "hseq", "m.peer = f.peer", "peer IS NOT NULL AND "
    exprs = (rule.value,) if rule.peer_by is None else (rule.value, rule.peer_by)
    return f"""
WITH {numbered_ctes(rule, events, entities, computed, carried, *exprs)}, framed AS (
  SELECT *, {hseq} - (
      count(*) OVER (PARTITION BY {hpart} ORDER BY ts RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
      - count(*) OVER (PARTITION BY {hpart} ORDER BY ts RANGE BETWEEN {reach} PRECEDING AND CURRENT ROW)
      + 1) AS back
  FROM {source}
), measured AS (
  SELECT *, median(val) OVER h AS med, mad(val) OVER h AS mad, count(val) OVER h AS history_count
  FROM framed
  WINDOW h AS (PARTITION BY {hpart} ORDER BY {hseq} ROWS BETWEEN back PRECEDING AND 1 PRECEDING)
), scored AS (
  SELECT *, (val - med) / nullif({scale} * mad, 0) AS z FROM measured
), tested AS (
  SELECT *,
    coalesce({peer_known}val IS NOT NULL AND history_count >= {rule.min_history} AND ({having}), FALSE) AS hit
  FROM scored
), {fired_cte(rule)}
SELECT {partition(rule, "f")}, f.source, f.event_id, f.ts,
  f.val AS value_value, f.med AS value_median, f.mad AS value_mad, f.z AS value_z,
  f.history_count AS value_history_count,
  min(m.ts) AS first_ts,
  list(m.source ORDER BY m.{hseq}) AS evidence_sources,
  list(m.event_id ORDER BY m.{hseq}) AS evidence
FROM fired AS f
JOIN framed AS m
  ON {same} AND m.{hseq} BETWEEN f.{hseq} - f.back AND f.{hseq}
  AND (m.val IS NOT NULL OR m.{hseq} = f.{hseq})
GROUP BY ALL
"""
