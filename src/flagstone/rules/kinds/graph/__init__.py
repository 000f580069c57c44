"""The ``graph`` rule kind: money-flow typologies over transfers — fan-out, fan-in, cycles,
scatter-gather, gather-scatter, bipartite and stack.

``rule`` holds its typed form, ``keys`` its rule-file keys, and ``oracle`` (with ``edges``,
``scatter`` and ``layered``) its plain-Python definition; ``docs/rules.md`` defines exactly what
one finding of each typology is.
"""

from flagstone.rules.kinds.graph.keys import KEYS, build_graph
from flagstone.rules.kinds.graph.oracle import run_graph
from flagstone.rules.kinds.graph.rule import TYPOLOGIES, GraphRule
from flagstone.rules.reader import RuleKind

KIND = RuleKind("graph", GraphRule, KEYS, build_graph, run_graph)

__all__ = ["KIND", "TYPOLOGIES", "GraphRule"]
