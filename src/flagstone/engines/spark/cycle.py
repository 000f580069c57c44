"""Spark statement for the ``cycle`` typology of the ``graph`` kind, a translation of
``engines/duckdb/cycle.py``.

Paths grow hop by hop, one CTE per length: hop j+1 is an edge sent by hop j's receiver, later in the
global ``(ts, event_id, source)`` order and less than W after the first hop; a walk whose hop
returns to its first sender is a cycle. Every hop lies in the first hop's time bucket of width W or
the next one, so each growth step is a hash join on (account, bucket) instead of on the account
alone, which would pair every two edges of a busy account over all time. The chosen cycle per
closing edge (shortest, then latest hops) is picked with ``row_number()`` and its hops looked up
again by their order key.

An edge's place in the order is the struct ``ord = (ts_us, event_id, source)``, compared, sorted and
joined on as a whole (deterministic, like ``edge_ctes``' ``rnk``, since Spark may compute the edges
once per reference; it needs no numbering step at all). Spark inlines the per-length CTEs wherever they
are used; identical shuffles are usually reused. Cost: about (max_length - 1) joins of the paths
with the edges, i.e. events × (transfers per account within W) ^ (length − 1) path rows;
``max_degree`` and a short W bound it.
"""

from __future__ import annotations

from flagstone.engines.spark.edges import edge_ctes
from flagstone.rules.kinds.graph.rule import GraphRule

# An edge's place in the global (ts, event_id, source) order, as one comparable value.
ORD = "named_struct('t', ts_us, 'e', event_id, 's', source)"


def cycle_sql(rule: GraphRule, events: str, entities: str) -> str:
    paths = "".join(f",\n{_path(rule, j)}" for j in range(2, rule.max_length + 1))
    closings = "\n    UNION ALL\n".join(_closing(n) for n in range(rule.min_length, rule.max_length + 1))
    tolerance = ""
    if rule.amount_tolerance is not None:
        tol = format(rule.amount_tolerance, "f")
        tolerance = f", amount - {tol} * amount AS lo, amount + {tol} * amount AS hi"
    # A closing transfer fixes the first sender (its receiver), so cycles are chosen per closing
    # transfer: the shortest, then the latest hops (order keys compared as arrays, largest first).
    return f"""{edge_ctes(rule, events, entities)}, hops AS (
  SELECT source, event_id, ts, ts_us, ts_us DIV {rule.window_us} AS b, actor, counterparty, amount, {ORD} AS ord
  FROM edges
), p1 AS (
  SELECT actor AS x1, ord AS r1, ts_us AS t1, b AS b1{tolerance}, counterparty AS c FROM hops
){paths}, closings AS (
{closings}
), chosen AS (
  SELECT closing, value_length, explode(ranks) AS ord
  FROM (
    SELECT *, row_number() OVER (PARTITION BY closing ORDER BY value_length, ranks DESC) AS preference
    FROM closings
  )
  WHERE preference = 1
)
SELECT min_by(e.actor, e.ord) AS group_actor, max_by(e.source, e.ord) AS source,
  max_by(e.event_id, e.ord) AS event_id, max(e.ts) AS ts, min(e.ts) AS first_ts,
  transform(sort_array(collect_list(e.ord)), x -> x.s) AS evidence_sources,
  transform(sort_array(collect_list(e.ord)), x -> x.e) AS evidence,
  c.value_length, sum(e.amount) AS value_total, min(e.amount) AS value_min_amount,
  max(e.amount) AS value_max_amount
FROM chosen AS c JOIN hops AS e ON e.ord = c.ord
GROUP BY c.closing, c.value_length
"""


def _path(rule: GraphRule, j: int) -> str:
    """``p<j>``: time-ordered walks of ``j`` hops through distinct accounts, each either open
    (receiver ``c`` not yet visited) or a cycle (``c = x1``): one join gives both. The next length
    grows the open ones; the last length keeps only cycles. Hop j's bucket ``nb`` is the first
    hop's bucket or the next one."""
    carried = [*(f"p.x{i}" for i in range(1, j)), *(f"p.r{i}" for i in range(1, j)), "p.t1", "p.b1"]
    on = [
        "e.actor = p.c",
        "e.b = p.nb",
        f"e.ord > p.r{j - 1}",
        f"e.ts_us < p.t1 + {rule.window_us}",
    ]
    if rule.amount_tolerance is not None:
        carried += ["p.lo", "p.hi"]
        on.append("e.amount BETWEEN p.lo AND p.hi")
    on += [f"e.counterparty <> p.x{i}" for i in range(2, j)]
    if j == rule.max_length:
        on.append("e.counterparty = p.x1")
    elif j < rule.min_length:
        on.append("e.counterparty <> p.x1")  # too short a cycle to report
    grown = "p1" if j == 2 else f"p{j - 1} WHERE c <> x1"
    return (
        f"p{j} AS (\n  SELECT {', '.join(carried)}, p.c AS x{j}, e.ord AS r{j}, e.counterparty AS c\n"
        f"  FROM (SELECT *, explode(array(b1, b1 + 1)) AS nb FROM {grown}) AS p JOIN hops AS e\n"
        f"    ON {' AND '.join(on)}\n)"
    )


def _closing(n: int) -> str:
    """Cycles of exactly ``n`` hops: the ``n``-hop walks whose last transfer returns to the first sender."""
    ranks = ", ".join(f"r{i}" for i in range(1, n + 1))
    return f"    SELECT r{n} AS closing, {n} AS value_length, array({ranks}) AS ranks FROM p{n} WHERE c = x1"
