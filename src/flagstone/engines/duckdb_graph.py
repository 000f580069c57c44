"""DuckDB statements for the ``graph`` kind.

Fan-out and fan-in are lowered to a window rule (distinct counterparties per anchor in a sliding
window), so they share its exact tie and edge handling. Cycles grow paths hop by hop (one
materialised table per path length): hop j+1 joins the transfers sent by hop j's receiver that
come later in the global ``(ts, event_id, source)`` order and start less than W after the first
hop; a cycle of n hops is a path of n - 1 hops plus an edge back to its first sender. Cost grows with the
number of paths, i.e. with events × (transfers per account within W) ^ (length − 1); ``max_degree``
bounds it.
"""

from __future__ import annotations

from flagstone.engines.sql import to_sql
from flagstone.rules import ir
from flagstone.rules.ir_graph import MAX_CYCLE, GraphRule

ORDER = "ts, event_id, source"


def edge_predicate(rule: GraphRule) -> ir.Expr:
    """The rule's match narrowed to transfers: an actor, a different counterparty, amount > 0."""
    test: ir.Expr = rule.match
    for part in (
        ir.IsNull(ir.Field("actor"), negated=True),
        ir.IsNull(ir.Field("counterparty"), negated=True),
        ir.Compare("!=", ir.Field("actor"), ir.Field("counterparty")),
        ir.Compare(">", ir.Field("amount"), ir.Literal(0)),
    ):
        test = part if test == ir.TRUE else ir.Logical("and", test, part)
    return test


def lower_fan(rule: GraphRule) -> ir.WindowRule:
    """Fan-out / fan-in as a window rule over the anchor's transfers (engine-neutral rewrite)."""
    other = "actor" if rule.group_by == ("counterparty",) else "counterparty"
    aggregates = (
        ("counterparties", ir.Aggregate("count_distinct", ir.Field(other))),
        ("transfers", ir.Aggregate("count", None)),
        ("total", ir.Aggregate("sum", ir.Field("amount"))),
    )
    having = ir.Compare(">=", ir.AggregateRef("counterparties"), ir.Literal(rule.min_counterparties))
    return ir.WindowRule(
        rule.meta, edge_predicate(rule), rule.group_by, rule.window_us, aggregates, having, rule.window_text
    )


def edge_ctes(rule: GraphRule, events: str, entities: str) -> str:
    """``WITH raw AS (...), edges AS (...)``: the usable edges, each with its rank ``rnk`` in order."""
    from flagstone.engines.duckdb import _entity_join, _entity_roles, _event_leaf

    match = to_sql(edge_predicate(rule), _event_leaf).sql(dialect="duckdb")
    joins = " ".join(_entity_join(r, entities) for r in _entity_roles(rule.match))
    degree = ""
    if rule.max_degree is not None:
        degree = f"""
    WHERE actor NOT IN (SELECT actor FROM raw GROUP BY actor HAVING count(*) > {rule.max_degree})
      AND counterparty NOT IN (SELECT actor FROM raw GROUP BY actor HAVING count(*) > {rule.max_degree})"""
    return f"""
WITH raw AS (
  SELECT e.source, e.event_id, e.ts, e.actor, e.counterparty, e.amount
  FROM {events} AS e {joins}
  WHERE coalesce({match}, FALSE)
), edges AS MATERIALIZED (
  SELECT *, row_number() OVER (ORDER BY {ORDER}) AS rnk FROM raw{degree}
)"""


def graph_sql(rule: GraphRule, events: str, entities: str) -> str:
    from flagstone.engines.duckdb import SQL_BUILDERS

    if rule.typology in ("scatter_gather", "gather_scatter"):
        from flagstone.engines.duckdb_scatter import two_hop_sql

        return two_hop_sql(rule, events, entities)
    if rule.typology != "cycle":
        return SQL_BUILDERS[ir.WindowRule](lower_fan(rule), events, entities)
    top = rule.max_length - 1
    paths = "".join(f",\n{_path(rule, j)}" for j in range(1, top + 1))
    closings = "\nUNION ALL\n".join(_closing(rule, n) for n in range(rule.min_length, rule.max_length + 1))
    ranks = ", ".join(f"r{i} DESC" for i in range(1, MAX_CYCLE))
    # Paths are materialised hop by hop so that each join pairs one path with the next edges only
    # (an inlined chain lets the planner join e1 with a later hop on time alone, a range join that
    # explodes).
    return f"""{edge_ctes(rule, events, entities)}{paths}, cycles AS (
{closings}
), chosen AS (
  SELECT *, row_number() OVER (PARTITION BY group_actor, closing ORDER BY value_length, {ranks}) AS pick
  FROM cycles
)
SELECT * EXCLUDE (pick, closing, {", ".join(f"r{i}" for i in range(1, MAX_CYCLE))})
FROM chosen
WHERE pick = 1
"""


def _hop_cols(j: int) -> list[str]:
    return [f"x{j}", f"s{j}", f"id{j}", f"r{j}", f"m{j}"]


def _next_hop(rule: GraphRule, j: int) -> list[str]:
    """Conditions for edge ``e`` to follow path ``p`` of ``j - 1`` hops."""
    on = ["e.actor = p.c", f"e.rnk > p.r{j - 1}", f"e.ts < p.t1 + INTERVAL '{rule.window_us} microseconds'"]
    if rule.amount_tolerance is not None:
        on.append(f"abs(e.amount - p.m1) <= {format(rule.amount_tolerance, 'f')} * p.m1")
    return on


def _path(rule: GraphRule, j: int) -> str:
    """Time-ordered simple paths of ``j`` hops, the receiver of the last not yet on the path."""
    if j == 1:
        return (
            "p1 AS (\n  SELECT actor AS x1, source AS s1, event_id AS id1, rnk AS r1, amount AS m1, "
            "ts AS t1, counterparty AS c FROM edges\n)"
        )
    keep = ", ".join(f"p.{c}" for i in range(1, j) for c in _hop_cols(i))
    on = [*_next_hop(rule, j), *(f"e.counterparty <> p.x{i}" for i in range(1, j))]
    return (
        f"p{j} AS MATERIALIZED (\n  SELECT {keep}, p.t1, e.actor AS x{j}, e.source AS s{j}, e.event_id AS id{j}, "
        f"e.rnk AS r{j}, e.amount AS m{j}, e.counterparty AS c\n  FROM p{j - 1} AS p JOIN edges AS e "
        f"ON {' AND '.join(on)}\n)"
    )


def _closing(rule: GraphRule, n: int) -> str:
    """Cycles of exactly ``n`` hops: a path of ``n - 1`` hops and an edge back to its first sender."""
    on = [*_next_hop(rule, n), "e.counterparty = p.x1"]
    before = range(1, n)
    amounts = [*(f"p.m{i}" for i in before), "e.amount"]
    ranks = ", ".join(f"p.r{j} AS r{j}" if j < n else f"0 AS r{j}" for j in range(1, MAX_CYCLE))
    return f"""  SELECT p.x1 AS group_actor, e.source, e.event_id, e.ts, p.t1 AS first_ts,
    [{", ".join([*(f"p.s{i}" for i in before), "e.source"])}] AS evidence_sources,
    [{", ".join([*(f"p.id{i}" for i in before), "e.event_id"])}] AS evidence,
    {n} AS value_length, {" + ".join(amounts)} AS value_total,
    least({", ".join(amounts)}) AS value_min_amount, greatest({", ".join(amounts)}) AS value_max_amount,
    e.rnk AS closing, {ranks}
  FROM p{n - 1} AS p JOIN edges AS e ON {" AND ".join(on)}"""
