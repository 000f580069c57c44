"""Spark statement for the ``stack`` typology of the ``graph`` kind, a translation of
``engines/duckdb/stack.py``: money passed on through layers of accounts, anchored at its origin.

Chains grow hop by hop from every edge (its *first hop* ``h``, which names the flow), one CTE per
length: hop j+1 is an edge sent by hop j's receiver, later in the global order, less than W after
the first hop, to an account not yet on the chain (an array of the chain's accounts). Every hop
lies in the first hop's time bucket of width W or the next one, so each step is a hash join on
(account, bucket). Chains with the same first hop, last edge and set of accounts (the array kept
sorted) extend alike, so each length keeps one of them. Every edge of a chain ends one of its
prefixes, so a flow is the set of last edges over all lengths.

Edges are named and ordered by the struct ``ord = (ts_us, event_id, source)``, as in
``engines/spark/cycle.py``. Spark
inlines the per-length CTEs wherever they are used; identical shuffles are usually reused. Cost
grows with the number of chains, about edges × d^(L−1) for d edges sent per account within W and
L = ``max_length``; ``max_degree`` bounds d.
"""

from __future__ import annotations

from flagstone.engines.spark.cycle import ORD
from flagstone.engines.spark.edges import edge_ctes
from flagstone.rules.kinds.graph.rule import GraphRule


def _chains(rule: GraphRule, j: int) -> str:
    """``p<j>``: chains of ``j`` hops as (first hop h, its time, bucket and amount, last edge r,
    its receiver c, the accounts on the chain)."""
    if j == 1:
        return (
            "p1 AS (\n  SELECT ord AS h, ts_us AS t1, b AS b1, amount AS m1, ord AS r, "
            "counterparty AS c, array(actor, counterparty) AS accounts FROM hops\n)"
        )
    on = [
        "e.actor = p.c",
        "e.b = p.nb",
        "e.ord > p.r",
        f"e.ts_us < p.t1 + {rule.window_us}",
        "NOT array_contains(p.accounts, e.counterparty)",
    ]
    if rule.amount_tolerance is not None:
        on.append(f"abs(e.amount - p.m1) <= {format(rule.amount_tolerance, 'f')} * p.m1")
    return (
        f"p{j} AS (\n  SELECT DISTINCT p.h, p.t1, p.b1, p.m1, e.ord AS r, e.counterparty AS c, "
        f"array_sort(concat(p.accounts, array(e.counterparty))) AS accounts\n"
        f"  FROM (SELECT *, explode(array(b1, b1 + 1)) AS nb FROM p{j - 1}) AS p JOIN hops AS e\n"
        f"    ON {' AND '.join(on)}\n)"
    )


def stack_sql(rule: GraphRule, events: str, entities: str) -> str:
    chains = ",\n".join(_chains(rule, j) for j in range(1, rule.max_length + 1))
    ends = "\n    UNION ALL\n".join(f"    SELECT h, r, {j} AS depth FROM p{j}" for j in range(1, rule.max_length + 1))
    # ``fired``: a chain of min_length or more hops has a prefix of exactly min_length hops ending
    # earlier, so the firing edge is the first end of a min_length chain. ``merged``: first hops of
    # one origin that fire at the same edge make one finding, their flows merged.
    return f"""{edge_ctes(rule, events, entities)}, hops AS (
  SELECT source, event_id, ts, ts_us, ts_us DIV {rule.window_us} AS b, actor, counterparty, amount, {ORD} AS ord
  FROM edges
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
  FROM fired AS q JOIN hops AS hop ON hop.ord = q.h JOIN flow AS f ON f.h = q.h
  GROUP BY hop.actor, q.close, f.r
)
SELECT m.origin AS group_actor, c.source, c.event_id, c.ts, min(m.first_ts) AS first_ts,
  transform(sort_array(collect_list(e.ord)), x -> x.s) AS evidence_sources,
  transform(sort_array(collect_list(e.ord)), x -> x.e) AS evidence,
  max(m.depth) AS value_depth,
  size(array_distinct(concat(collect_list(e.actor), collect_list(e.counterparty)))) AS value_accounts,
  count(*) AS value_transfers, sum(e.amount) AS value_total
FROM merged AS m JOIN hops AS c ON c.ord = m.close JOIN hops AS e ON e.ord = m.r
GROUP BY m.origin, c.source, c.event_id, c.ts
"""
