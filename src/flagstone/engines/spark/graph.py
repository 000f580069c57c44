"""Spark SQL statements for the ``graph`` kind: fans are lowered to window rules (as on DuckDB),
every other typology has its own builder module, listed in ``TYPOLOGIES``."""

from __future__ import annotations

from collections.abc import Callable

from flagstone.engines.graph import lower_fan
from flagstone.engines.spark.bipartite import bipartite_sql
from flagstone.engines.spark.cycle import cycle_sql
from flagstone.engines.spark.scatter import two_hop_sql
from flagstone.engines.spark.stack import stack_sql
from flagstone.engines.spark.window import window_sql
from flagstone.rules.kinds.graph.rule import GraphRule


def fan_sql(rule: GraphRule, events: str, entities: str) -> str:
    return window_sql(lower_fan(rule), events, entities)


# Typology -> the builder of its statement from (rule, events view, entities view).
TYPOLOGIES: dict[str, Callable[[GraphRule, str, str], str]] = {
    "fan_out": fan_sql,
    "fan_in": fan_sql,
    "scatter_gather": two_hop_sql,
    "gather_scatter": two_hop_sql,
    "bipartite": bipartite_sql,
    "cycle": cycle_sql,
    "stack": stack_sql,
}


def graph_sql(rule: GraphRule, events: str, entities: str) -> str:
    return TYPOLOGIES[rule.typology](rule, events, entities)
