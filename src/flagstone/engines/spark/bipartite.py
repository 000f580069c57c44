"""Spark SQL statement for the ``bipartite`` typology of the ``graph`` kind: many senders paying
the same many receivers, anchored at one receiver Y (the same plan as ``engines/duckdb/bipartite.py``).

Every edge into Y is a test point c of Y; only those whose receiver has k edges in (t − W, t] at
all (a RANGE count over integer microseconds) are examined. ``senders`` lists, per test point,
the distinct senders S of Y's edges in its window (edges not after c with ts > ts(c) − W), kept
where |S| ≥ k; ``paid`` joins every edge those senders made in the same window, and ``kept``
keeps the ones to accounts D paid by at least k of them, at test points with k such D (window
``collect_set`` counts instead of grouped counts joined back, so each CTE is read once). Episodes
follow the usual lag over Y's test points; the evidence of an episode is the union of the edges
kept at each of its test points. Both joins are hash joins on (account, time bucket of width W):
a test point is exploded into its own bucket and the one before, which hold its whole window.
Cost grows with events × (edges into an account within W) × (edges each of those senders makes
within W); ``max_degree`` bounds both factors.
"""

from __future__ import annotations

from flagstone.engines.spark.edges import edge_ctes
from flagstone.engines.spark.sql import ident
from flagstone.rules.kinds.graph.rule import GraphRule


def bipartite_sql(rule: GraphRule, events: str, entities: str) -> str:
    w = rule.window_us
    k = rule.min_counterparties
    # The window of test point c: not after c and later than ts(c) - W.
    within = f"e.b = c.nb AND e.rnk <= c.close AND e.ts_us > c.t - {w}"
    return f"""{edge_ctes(rule, events, entities)}, bucketed AS (
  -- Floor division, exact for negative times too: every bucket is W wide.
  SELECT *, (ts_us - pmod(ts_us, {w})) DIV {w} AS b FROM edges
), dense AS (
  -- Test points whose receiver has k edges in (t - W, t] at all (ties included): no other can hold.
  SELECT rnk FROM (
    SELECT rnk, count(*) OVER (PARTITION BY counterparty ORDER BY ts_us
      RANGE BETWEEN {w - 1} PRECEDING AND CURRENT ROW) AS n
    FROM edges
  ) WHERE n >= {k}
), senders AS (
  -- Per test point, its receiver's distinct senders in its window, kept where there are k.
  SELECT * FROM (SELECT *, count(*) OVER (PARTITION BY close) AS n FROM (
    SELECT DISTINCT c.close, c.t, c.b, e.actor AS s
    FROM (
      SELECT counterparty, rnk AS close, ts_us AS t, b, explode(array(b - 1, b)) AS nb
      FROM bucketed WHERE rnk IN (SELECT rnk FROM dense)
    ) AS c
      JOIN bucketed AS e ON e.counterparty = c.counterparty AND {within}
  )) WHERE n >= {k}
), paid AS (
  SELECT c.close, e.actor, e.counterparty AS d, e.rnk
  FROM (SELECT *, explode(array(b - 1, b)) AS nb FROM senders) AS c
    JOIN bucketed AS e ON e.actor = c.s AND {within}
), kept AS (
  -- The edges seen at the test points that hold: to receivers paid by k senders, at test points
  -- with k such receivers. The non-deterministic column keeps Spark from inlining this CTE at
  -- both references, so the joins above run once.
  SELECT close, rnk, monotonically_increasing_id() AS id FROM (
    SELECT *, size(collect_set(d) OVER (PARTITION BY close)) AS receivers FROM (
      SELECT *, size(collect_set(actor) OVER (PARTITION BY close, d)) AS senders FROM paid
    ) WHERE senders >= {k}
  ) WHERE receivers >= {k}
), tested AS (
  SELECT c.counterparty AS y, c.rnk AS close, h.close IS NOT NULL AS hit
  FROM edges AS c LEFT JOIN (SELECT DISTINCT close FROM kept) AS h ON h.close = c.rnk
), episodes AS (
  SELECT y, close, hit,
    hit AND NOT coalesce(lag(hit) OVER (PARTITION BY y ORDER BY close), FALSE) AS fires
  FROM tested
), numbered AS (
  -- The test points of one episode: the firing one and the holding ones after it.
  SELECT y, close, fires,
    sum(CASE WHEN fires THEN 1 ELSE 0 END) OVER (PARTITION BY y ORDER BY close
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS episode
  FROM episodes
  WHERE hit
), seen AS (
  SELECT DISTINCT n.y, n.episode, p.rnk
  FROM numbered AS n JOIN kept AS p ON p.close = n.close
), fired AS (
  SELECT n.y, n.episode, c.source, c.event_id, c.ts
  FROM numbered AS n JOIN edges AS c ON c.rnk = n.close
  WHERE n.fires
)
SELECT f.y AS {ident("group_" + rule.group_by[0])}, f.source, f.event_id, f.ts, min(e.ts) AS first_ts,
  transform(array_sort(collect_list(struct(e.rnk, e.source, e.event_id))), x -> x.source) AS evidence_sources,
  transform(array_sort(collect_list(struct(e.rnk, e.source, e.event_id))), x -> x.event_id) AS evidence,
  count(DISTINCT e.actor) AS value_senders, count(DISTINCT e.counterparty) AS value_receivers,
  count(*) AS value_transfers, sum(e.amount) AS value_total
FROM fired AS f JOIN seen AS s ON s.y = f.y AND s.episode = f.episode JOIN edges AS e ON e.rnk = s.rnk
GROUP BY f.y, f.episode, f.source, f.event_id, f.ts
"""
