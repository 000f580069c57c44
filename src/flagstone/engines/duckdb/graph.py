"""DuckDB statements for the ``graph`` kind, one module per typology.

Fan-out and fan-in are lowered to a window rule (distinct counterparties per anchor in a sliding
window), so they share its exact tie and edge handling; each other typology has its own module.
"""

from __future__ import annotations

from flagstone.engines.duckdb.bipartite import bipartite_sql
from flagstone.engines.duckdb.cycle import cycle_sql
from flagstone.engines.duckdb.scatter import two_hop_sql
from flagstone.engines.duckdb.stack import stack_sql
from flagstone.engines.duckdb.window import window_sql
from flagstone.engines.graph import lower_fan
from flagstone.rules.kinds.graph import GraphRule


def graph_sql(rule: GraphRule, events: str, entities: str) -> str:
    if rule.typology in ("scatter_gather", "gather_scatter"):
        return two_hop_sql(rule, events, entities)
    if rule.typology == "bipartite":
        return bipartite_sql(rule, events, entities)
    if rule.typology == "stack":
        return stack_sql(rule, events, entities)
    if rule.typology != "cycle":
        return window_sql(lower_fan(rule), events, entities)
    return cycle_sql(rule, events, entities)
