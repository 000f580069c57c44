"""DuckDB statement for the two-hop typologies of the ``graph`` kind: ``scatter_gather`` and
``gather_scatter``.

``legs`` joins each first hop X->M with the later transfers M->Y (Y ≠ X) that start less than W
after it; each distinct second hop is a closing transfer of its group ((X, Y) for scatter-gather,
the hub M for gather-scatter), tested against that group's legs in its window; an alert's evidence
is every leg seen by the tests of its episode. Cost grows with
events × (transfers per account within W) for ``legs``, times the group's legs within W for the
test; ``max_degree`` bounds both.
"""

from __future__ import annotations

from flagstone.engines.duckdb.edges import edge_ctes
from flagstone.rules.kinds.graph.rule import GraphRule

_HOP = ("source", "event_id", "rnk", "ts", "amount")


def two_hop_sql(rule: GraphRule, events: str, entities: str) -> str:
    w = f"INTERVAL '{rule.window_us} microseconds'"
    tolerance = ""
    if rule.amount_tolerance is not None:
        tolerance = f" AND abs(b.amount - a.amount) <= {format(rule.amount_tolerance, 'f')} * a.amount"
    if rule.typology == "scatter_gather":
        keys, counts = ["src", "dst"], {"intermediaries": "mid"}
    else:
        keys, counts = ["mid"], {"sources": "src", "destinations": "dst"}
    group = ", ".join(f"c.{k} AS group_{g}" for k, g in zip(keys, rule.group_by, strict=True))
    hop_a = ", ".join(f"a.{c} AS {c}_a" for c in _HOP)
    hop_b = ", ".join(f"b.{c} AS {c}_b" for c in _HOP)
    closing = [*keys, "source_b", "event_id_b", "rnk_b", "ts_b"]
    # A group's legs seen at a closing transfer c: second hop not after c, first hop in c's window.
    seen = " AND ".join([*(f"p.{k} = c.{k}" for k in keys), "p.rnk_b <= c.rnk_b", f"p.ts_a > c.ts_b - {w}"])
    # The legs seen at every test of an episode (its hit tests share the firing test's ``ep``).
    hops = "\n  UNION\n".join(
        f"  SELECT {', '.join(keys)}, ep, {', '.join(f'{col}_{h} AS {col}' for col in _HOP)} FROM episode_legs"
        for h in "ab"
    )
    k = rule.min_counterparties
    hit = " AND ".join(f"n_{name} >= {k}" for name in counts)
    by_episode = ", ".join([*keys, "ep"])
    enough = " AND ".join(f"count(DISTINCT {col}) >= {k}" for col in counts.values())
    return f"""{edge_ctes(rule, events, entities)}, all_legs AS MATERIALIZED (
  SELECT a.actor AS src, b.counterparty AS dst, b.actor AS mid, {hop_a}, {hop_b}
  FROM edges AS a JOIN edges AS b
    ON b.actor = a.counterparty AND b.counterparty <> a.actor AND b.rnk > a.rnk
   AND b.ts < a.ts + {w}{tolerance}
), legs AS MATERIALIZED (
  -- Only groups whose legs, all windows together, reach k can ever fire.
  SELECT l.* FROM all_legs AS l
  JOIN (SELECT {", ".join(keys)} FROM all_legs GROUP BY {", ".join(keys)} HAVING {enough}) AS g
    ON {" AND ".join(f"l.{k} = g.{k}" for k in keys)}
), closings AS (
  SELECT DISTINCT {", ".join(closing)} FROM legs
), tested AS (
  SELECT {", ".join(f"c.{c}" for c in closing)},
    {", ".join(f"count(DISTINCT p.{col}) AS n_{name}" for name, col in counts.items())}
  FROM closings AS c JOIN legs AS p ON {seen}
  GROUP BY {", ".join(f"c.{c}" for c in closing)}
), flagged AS (
  SELECT *, {hit} AS hit,
    coalesce(lag({hit}) OVER (PARTITION BY {", ".join(keys)} ORDER BY rnk_b), FALSE) AS was_hit
  FROM tested
), episodes AS (
  SELECT *, sum(CASE WHEN hit AND NOT was_hit THEN 1 ELSE 0 END)
    OVER (PARTITION BY {", ".join(keys)} ORDER BY rnk_b) AS ep
  FROM flagged
), episode_legs AS (
  SELECT DISTINCT c.ep, p.*
  FROM (SELECT * FROM episodes WHERE hit) AS c JOIN legs AS p ON {seen}
), hops AS (
{hops}
), episode_values AS (
  SELECT {by_episode}, {", ".join(f"count(DISTINCT {col}) AS value_{name}" for name, col in counts.items())}
  FROM episode_legs GROUP BY {by_episode}
)
SELECT {group}, c.source_b AS source, c.event_id_b AS event_id, c.ts_b AS ts, min(h.ts) AS first_ts,
  list(h.source ORDER BY h.rnk) AS evidence_sources, list(h.event_id ORDER BY h.rnk) AS evidence,
  {", ".join(f"v.value_{name}" for name in counts)},
  count(*) AS value_transfers, sum(h.amount) AS value_total
FROM (SELECT * FROM episodes WHERE hit AND NOT was_hit) AS c
JOIN hops AS h ON {" AND ".join(f"h.{k} = c.{k}" for k in keys)} AND h.ep = c.ep
JOIN episode_values AS v ON {" AND ".join(f"v.{k} = c.{k}" for k in keys)} AND v.ep = c.ep
GROUP BY {", ".join(f"c.{c}" for c in closing)}, {", ".join(f"v.value_{name}" for name in counts)}
"""
