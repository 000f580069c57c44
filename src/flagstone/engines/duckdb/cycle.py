"""DuckDB statement for cycles of the ``graph`` kind.

Cycles grow paths hop by hop (one materialised table per path length): hop j+1 joins the transfers
sent by hop j's receiver that come later in the global ``(ts, event_id, source)`` order and start
less than W after the first hop; a walk whose hop returns to its first sender is a cycle. Cost: one
hash join of the paths with all edges per length, so about (max_length - 1) passes over the edges
plus the number of paths, i.e. events × (transfers per account within W) ^ (length − 1);
``max_degree`` and a short W bound it.
"""

from __future__ import annotations

from flagstone.engines.duckdb.edges import edge_ctes
from flagstone.rules.kinds.graph import GraphRule


def cycle_sql(rule: GraphRule, events: str, entities: str) -> str:
    """Cycles: narrow paths (integer accounts and ranks) grown hop by hop, then the chosen cycle's
    hops looked up again by rank for its evidence and values."""
    paths = "".join(f",\n{_path(rule, j)}" for j in range(2, rule.max_length + 1))
    closings = "\n  UNION ALL\n".join(_closing(n) for n in range(rule.min_length, rule.max_length + 1))
    tolerance = ""
    if rule.amount_tolerance is not None:
        tol = format(rule.amount_tolerance, "f")
        tolerance = f", amount - {tol} * amount AS lo, amount + {tol} * amount AS hi"
    # Accounts are numbered among the senders (joins on integers are cheaper than on text): a
    # transfer to an account that never sends is on no cycle, so the inner join drops it. A closing
    # transfer fixes the first sender (its receiver), so cycles are chosen per closing transfer:
    # the shortest, then the latest hops (largest ranks first).
    return f"""{edge_ctes(rule, events, entities)}, accounts AS MATERIALIZED (
  SELECT actor AS account, row_number() OVER () AS id FROM edges GROUP BY actor
), hops AS MATERIALIZED (
  SELECT e.rnk, e.ts, e.amount, a.id AS actor, c.id AS counterparty
  FROM edges AS e JOIN accounts AS a ON a.account = e.actor JOIN accounts AS c ON c.account = e.counterparty
), p1 AS (
  SELECT actor AS x1, rnk AS r1, ts AS t1{tolerance}, counterparty AS c FROM hops
){paths}, chosen AS (
  SELECT closing, value_length, unnest(ranks) AS rnk
  FROM (
{closings}
  )
  QUALIFY row_number() OVER (PARTITION BY closing ORDER BY value_length, ranks DESC) = 1
)
SELECT arg_min(e.actor, e.rnk) AS group_actor, arg_max(e.source, e.rnk) AS source,
  arg_max(e.event_id, e.rnk) AS event_id, max(e.ts) AS ts, min(e.ts) AS first_ts,
  list(e.source ORDER BY e.rnk) AS evidence_sources, list(e.event_id ORDER BY e.rnk) AS evidence,
  c.value_length, sum(e.amount) AS value_total, min(e.amount) AS value_min_amount,
  max(e.amount) AS value_max_amount
FROM chosen AS c JOIN edges AS e ON e.rnk = c.rnk
GROUP BY c.closing, c.value_length
"""


def _path(rule: GraphRule, j: int) -> str:
    """Time-ordered walks of ``j`` hops through distinct accounts, each either open (receiver ``c``
    not yet visited) or a cycle (``c = x1``): one join gives both, so each length probes the edges
    once. The next length grows the open ones; the last length keeps only cycles."""
    carried = [*(f"p.x{i}" for i in range(1, j)), *(f"p.r{i}" for i in range(1, j)), "p.t1"]
    on = ["e.actor = p.c", f"e.rnk > p.r{j - 1}", f"e.ts < p.t1 + INTERVAL '{rule.window_us} microseconds'"]
    if rule.amount_tolerance is not None:
        carried += ["p.lo", "p.hi"]
        on.append("e.amount BETWEEN p.lo AND p.hi")
    on += [f"e.counterparty <> p.x{i}" for i in range(2, j)]
    if j == rule.max_length:
        on.append("e.counterparty = p.x1")
    elif j < rule.min_length:
        on.append("e.counterparty <> p.x1")  # too short a cycle to report
    grown = "p1" if j == 2 else f"(SELECT * FROM p{j - 1} WHERE c <> x1)"
    return (
        f"p{j} AS MATERIALIZED (\n  SELECT {', '.join(carried)}, p.c AS x{j}, e.rnk AS r{j}, e.counterparty AS c\n"
        f"  FROM {grown} AS p JOIN hops AS e ON {' AND '.join(on)}\n)"
    )


def _closing(n: int) -> str:
    """Cycles of exactly ``n`` hops: the ``n``-hop walks whose last transfer returns to the first sender."""
    ranks = ", ".join(f"r{i}" for i in range(1, n + 1))
    return f"    SELECT r{n} AS closing, {n} AS value_length, [{ranks}] AS ranks FROM p{n} WHERE c = x1"
