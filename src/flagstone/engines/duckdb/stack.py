"""DuckDB statement for the ``stack`` typology of the ``graph`` kind: money passed on through layers
of accounts, anchored at its origin.

Chains grow hop by hop from every edge (its *first hop*, whose rank ``h`` names the flow), one
materialised table per length as for cycles: hop j+1 is an edge sent by hop j's receiver, later in
the global order, less than W after the first hop, to an account not yet on the chain. Chains
with the same first hop, last edge and set of accounts extend alike, so each length keeps one of
them. Every edge of a chain ends one of its prefixes, so a flow is the set of last edges over all
lengths. Cost grows with the number of chains, about edges × d^(L−1) for d edges sent per
account within W and L = ``max_length``; ``max_degree`` bounds d.
"""

from __future__ import annotations

from flagstone.engines.duckdb.edges import edge_ctes
from flagstone.rules.kinds.graph.rule import GraphRule


def _chains(rule: GraphRule, j: int) -> str:
    """``p<j>``: chains of ``j`` hops as (first hop h, its ts, time bucket and amount, last edge r, its
    receiver c, the accounts on the chain). A later hop lies in the first hop's bucket of width W or
    the next one, so each hop is a hash join on (account, bucket)."""
    if j == 1:
        return (
            "p1 AS MATERIALIZED (\n  SELECT rnk AS h, ts AS t1, b AS b1, amount AS m1, rnk AS r, "
            "counterparty AS c, [actor, counterparty] AS accounts FROM bucketed\n)"
        )
    on = [
        "e.actor = p.c",
        "e.b = p.nb",
        "e.rnk > p.r",
        f"e.ts < p.t1 + INTERVAL '{rule.window_us} microseconds'",
        "NOT list_contains(p.accounts, e.counterparty)",
    ]
    if rule.amount_tolerance is not None:
        on.append(f"abs(e.amount - p.m1) <= {format(rule.amount_tolerance, 'f')} * p.m1")
    return (
        f"p{j} AS MATERIALIZED (\n  SELECT DISTINCT p.h, p.t1, p.b1, p.m1, e.rnk AS r, e.counterparty AS c, "
        f"list_sort(list_append(p.accounts, e.counterparty)) AS accounts\n"
        f"  FROM (SELECT *, unnest([b1, b1 + 1]) AS nb FROM p{j - 1}) AS p JOIN bucketed AS e ON {' AND '.join(on)}\n)"
    )


def stack_sql(rule: GraphRule, events: str, entities: str) -> str:
    # ``merged``: first hops of one origin that fire at the same edge make one finding, flows merged.
    chains = ",\n".join(_chains(rule, j) for j in range(1, rule.max_length + 1))
    ends = "\n  UNION ALL\n".join(f"  SELECT h, r, {j} AS depth FROM p{j}" for j in range(1, rule.max_length + 1))
    # A chain of min_length or more hops has a prefix of exactly min_length hops ending earlier.
    return f"""{edge_ctes(rule, events, entities)}, bucketed AS MATERIALIZED (
  SELECT *, epoch_us(ts) // {rule.window_us} AS b FROM edges
),
{chains}, fired AS (
  SELECT h, min(r) AS close FROM p{rule.min_length} GROUP BY h
), flow AS (
  SELECT h, r, max(depth) AS depth FROM (
{ends}
  ) AS ends
  WHERE h IN (SELECT h FROM fired)
  GROUP BY h, r
), merged AS (
  SELECT hop.actor AS origin, q.close, f.r, max(f.depth) AS depth, min(hop.ts) AS first_ts
  FROM fired AS q JOIN edges AS hop ON hop.rnk = q.h JOIN flow AS f ON f.h = q.h
  GROUP BY hop.actor, q.close, f.r
)
SELECT m.origin AS group_actor, c.source, c.event_id, c.ts, min(m.first_ts) AS first_ts,
  list(e.source ORDER BY e.rnk) AS evidence_sources, list(e.event_id ORDER BY e.rnk) AS evidence,
  max(m.depth) AS value_depth,
  len(list_distinct(list_concat(list(e.actor), list(e.counterparty)))) AS value_accounts,
  count(*) AS value_transfers, sum(e.amount) AS value_total
FROM merged AS m JOIN edges AS c ON c.rnk = m.close JOIN edges AS e ON e.rnk = m.r
GROUP BY m.origin, c.source, c.event_id, c.ts
"""
