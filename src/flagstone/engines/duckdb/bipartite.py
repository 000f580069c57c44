"""DuckDB statement for the ``bipartite`` typology of the ``graph`` kind: many senders paying the
same many receivers, anchored at one receiver Y.

Every edge into Y is a test point c of Y. ``senders`` lists, per test point, the distinct senders
S of Y's edges in its window (edges not after c with ts > ts(c) − W); where |S| ≥ k, ``paid``
joins every edge those senders made in the same window, and ``receivers`` keeps the accounts D
paid by at least k of them. Episodes follow the usual lag over Y's test points; the evidence of
an episode is the union of the edges S → D seen at each of its test points. Both joins are hash
joins on (account, time bucket of width W), so cost grows with events × (edges into an account
within W) × (edges each of those senders makes within W); ``max_degree`` bounds both factors.
"""

from __future__ import annotations

from flagstone.engines.duckdb.edges import edge_ctes
from flagstone.rules.kinds.graph.rule import GraphRule


def bipartite_sql(rule: GraphRule, events: str, entities: str) -> str:
    w = f"INTERVAL '{rule.window_us} microseconds'"
    k = rule.min_counterparties
    # The window of test point c: not after c and later than ts(c) - W. Its edges lie in c's time
    # bucket of width W or the one before, which turns the join into a hash join on (account,
    # bucket) rather than on the account alone.
    within = "e.b = c.nb AND e.rnk <= c.close AND e.ts > c.t - " + w
    return f"""{edge_ctes(rule, events, entities)}, bucketed AS MATERIALIZED (
  SELECT *, epoch_us(ts) // {rule.window_us} AS b FROM edges
), dense AS (
  -- Test points whose receiver has k edges in (t - W, t] at all (ties included): no other can hold.
  SELECT rnk FROM (
    SELECT rnk, count(*) OVER (PARTITION BY counterparty ORDER BY ts
      RANGE BETWEEN INTERVAL '{rule.window_us - 1} microseconds' PRECEDING AND CURRENT ROW) AS n
    FROM edges
  ) WHERE n >= {k}
), senders AS MATERIALIZED (
  SELECT DISTINCT c.close, c.t, c.b, e.actor AS s
  FROM (
    SELECT counterparty, rnk AS close, ts AS t, b, unnest([b - 1, b]) AS nb
    FROM bucketed WHERE rnk IN (SELECT rnk FROM dense)
  ) AS c
    JOIN bucketed AS e ON e.counterparty = c.counterparty AND {within}
), broad AS (
  SELECT close FROM senders GROUP BY close HAVING count(*) >= {k}
), paid AS MATERIALIZED (
  SELECT c.close, e.actor, e.counterparty AS d, e.rnk
  FROM (SELECT *, unnest([b - 1, b]) AS nb FROM senders WHERE close IN (SELECT close FROM broad)) AS c
    JOIN bucketed AS e ON e.actor = c.s AND {within}
), receivers AS MATERIALIZED (
  SELECT close, d FROM (SELECT DISTINCT close, actor, d FROM paid) GROUP BY close, d HAVING count(*) >= {k}
), tested AS (
  SELECT c.counterparty AS y, c.rnk AS close, coalesce(n.receivers >= {k}, FALSE) AS hit
  FROM edges AS c LEFT JOIN (SELECT close, count(*) AS receivers FROM receivers GROUP BY close) AS n
    ON n.close = c.rnk
), episodes AS (
  SELECT y, close, hit,
    hit AND NOT coalesce(lag(hit) OVER (PARTITION BY y ORDER BY close), FALSE) AS fires
  FROM tested
), numbered AS (
  -- The test points of one episode: the firing one and the holding ones after it.
  SELECT y, close, fires,
    sum(CASE WHEN fires THEN 1 ELSE 0 END) OVER (PARTITION BY y ORDER BY close ROWS UNBOUNDED PRECEDING) AS episode
  FROM episodes
  WHERE hit
), seen AS (
  SELECT DISTINCT n.y, n.episode, p.rnk
  FROM numbered AS n JOIN paid AS p ON p.close = n.close
    JOIN receivers AS r ON r.close = p.close AND r.d = p.d
), fired AS (
  SELECT n.y, n.episode, c.source, c.event_id, c.ts
  FROM numbered AS n JOIN edges AS c ON c.rnk = n.close
  WHERE n.fires
)
SELECT f.y AS group_counterparty, f.source, f.event_id, f.ts, min(e.ts) AS first_ts,
  list(e.source ORDER BY e.rnk) AS evidence_sources, list(e.event_id ORDER BY e.rnk) AS evidence,
  count(DISTINCT e.actor) AS value_senders, count(DISTINCT e.counterparty) AS value_receivers,
  count(*) AS value_transfers, sum(e.amount) AS value_total
FROM fired AS f JOIN seen AS s ON s.y = f.y AND s.episode = f.episode JOIN edges AS e ON e.rnk = s.rnk
GROUP BY f.y, f.episode, f.source, f.event_id, f.ts
"""
