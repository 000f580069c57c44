"""Spark SQL statement for the two-hop typologies of the ``graph`` kind: ``scatter_gather`` and
``gather_scatter`` (the same plan as ``engines/duckdb/scatter.py``).

``legs`` joins each first hop X->M with the later transfers M->Y (Y ≠ X) that start less than W
after it; groups ((X, Y) for scatter-gather, the hub M for gather-scatter) whose legs never reach
k distinct counterparties, all windows together, are dropped at once by a window ``collect_set``
(no second pass over the legs). Each distinct second hop is a closing transfer of its group,
tested against the group's legs in its window; an alert's evidence is every leg seen by the tests
of its episode. Times are compared as integer microseconds, and both joins are hash joins on
(account or group, time bucket of width W), each side reaching only its own bucket and the
neighbouring one. ``legs`` is referenced three times but joined once (see its comment).
Cost grows with events × (transfers per account within W) for ``legs``, times the group's legs
within W for the test; ``max_degree`` bounds both.
"""

from __future__ import annotations

from flagstone.engines.spark.edges import edge_ctes
from flagstone.rules.kinds.graph.rule import GraphRule

_HOP = ("source", "event_id", "rnk", "ts", "ts_us", "amount")


def _bucket(column: str, width: int) -> str:
    # Floor division, exact for negative times too: the buckets must be W wide everywhere.
    return f"({column} - pmod({column}, {width})) DIV {width}"


def two_hop_sql(rule: GraphRule, events: str, entities: str) -> str:
    w = rule.window_us
    k = rule.min_counterparties
    tolerance = ""
    if rule.amount_tolerance is not None:
        tolerance = f" AND abs(b.amount - a.amount) <= {format(rule.amount_tolerance, 'f')} * a.amount"
    if rule.typology == "scatter_gather":
        keys, counts = ["src", "dst"], {"intermediaries": "mid"}
    else:
        keys, counts = ["mid"], {"sources": "src", "destinations": "dst"}
    key_list = ", ".join(keys)
    group = ", ".join(f"c.{key} AS group_{g}" for key, g in zip(keys, rule.group_by, strict=True))
    hop_a = ", ".join(f"a.{c} AS {c}_a" for c in _HOP)
    hop_b = ", ".join(f"b.{c} AS {c}_b" for c in _HOP)
    closing = [*keys, "source_b", "event_id_b", "rnk_b", "ts_b", "ts_us_b"]
    closing_c = ", ".join(f"c.{c}" for c in closing)
    same_key = " AND ".join(f"p.{key} = c.{key}" for key in keys)
    # A group's legs seen at a closing transfer c: second hop not after c, first hop in c's window.
    # Such a first hop lies in c's time bucket or the one before (``nb``, one row for each).
    seen = f"{same_key} AND p.bucket_a = c.nb AND p.rnk_b <= c.rnk_b AND p.ts_us_a > c.ts_us_b - {w}"
    # Each group's distinct counterparties over all its legs: fewer than k, it can never fire.
    enough = " AND ".join(f"size(collect_set({col}) OVER (PARTITION BY {key_list})) >= {k}" for col in counts.values())
    hit = " AND ".join(f"n_{name} >= {k}" for name in counts)
    # The legs seen at every test of an episode (its hit tests share the firing test's ``ep``).
    hops = "\n  UNION\n".join(
        f"  SELECT {key_list}, ep, {', '.join(f'{col}_{h} AS {col}' for col in _HOP)} FROM episode_legs" for h in "ab"
    )
    by_episode = f"{key_list}, ep"

    def near(relation: str) -> str:
        # Closing transfers, each twice: with its own time bucket ``nb`` and the one before.
        bucket = _bucket("ts_us_b", w)
        return f"SELECT *, explode(array({bucket} - 1, {bucket})) AS nb FROM {relation}"

    return f"""{edge_ctes(rule, events, entities)}, bucketed AS (
  SELECT *, {_bucket("ts_us", w)} AS bucket FROM edges
), all_legs AS (
  SELECT a.actor AS src, b.counterparty AS dst, b.actor AS mid, a.bucket AS bucket_a, {hop_a}, {hop_b}
  FROM (SELECT *, explode(array(bucket, bucket + 1)) AS nb FROM bucketed) AS a
  JOIN bucketed AS b
    ON b.actor = a.counterparty AND b.bucket = a.nb AND b.counterparty <> a.actor AND b.rnk > a.rnk
   AND b.ts_us < a.ts_us + {w}{tolerance}
), legs AS (
  -- The non-deterministic column keeps Spark from inlining this CTE at each of its three
  -- references: the legs are joined once and their shuffle output is reused.
  SELECT *, monotonically_increasing_id() AS leg FROM (SELECT *, {enough} AS enough FROM all_legs) WHERE enough
), closings AS (
  SELECT DISTINCT {", ".join(closing)} FROM legs
), tested AS (
  SELECT {closing_c},
    {", ".join(f"count(DISTINCT p.{col}) AS n_{name}" for name, col in counts.items())}
  FROM ({near("closings")}) AS c JOIN legs AS p ON {seen}
  GROUP BY {closing_c}
), flagged AS (
  SELECT *, {hit} AS hit,
    coalesce(lag({hit}) OVER (PARTITION BY {key_list} ORDER BY rnk_b), FALSE) AS was_hit
  FROM tested
), episodes AS (
  SELECT *, sum(CASE WHEN hit AND NOT was_hit THEN 1 ELSE 0 END)
    OVER (PARTITION BY {key_list} ORDER BY rnk_b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS ep
  FROM flagged
), episode_legs AS (
  SELECT DISTINCT c.ep, p.*
  FROM ({near("(SELECT * FROM episodes WHERE hit)")}) AS c
    JOIN legs AS p ON {seen}
), hops AS (
{hops}
), episode_values AS (
  SELECT {by_episode}, {", ".join(f"count(DISTINCT {col}) AS value_{name}" for name, col in counts.items())}
  FROM episode_legs GROUP BY {by_episode}
)
SELECT {group}, c.source_b AS source, c.event_id_b AS event_id, c.ts_b AS ts, min(h.ts) AS first_ts,
  transform(array_sort(collect_list(struct(h.rnk, h.source, h.event_id))), x -> x.source) AS evidence_sources,
  transform(array_sort(collect_list(struct(h.rnk, h.source, h.event_id))), x -> x.event_id) AS evidence,
  {", ".join(f"v.value_{name}" for name in counts)},
  count(*) AS value_transfers, sum(h.amount) AS value_total
FROM (SELECT * FROM episodes WHERE hit AND NOT was_hit) AS c
JOIN hops AS h ON {" AND ".join(f"h.{key} = c.{key}" for key in keys)} AND h.ep = c.ep
JOIN episode_values AS v ON {" AND ".join(f"v.{key} = c.{key}" for key in keys)} AND v.ep = c.ep
GROUP BY {closing_c}, {", ".join(f"v.value_{name}" for name in counts)}
"""
