"""The ``graph`` rule kind: money-flow typologies over transfers (fan-out, fan-in, cycles).

A transfer (an *edge*) is a matched event with an actor, a different counterparty and a positive
amount. ``docs/rules.md`` defines exactly what one finding of each typology is.
"""

from __future__ import annotations

from decimal import Decimal

from flagstone.rules import ir
from flagstone.rules.kinds.graph.rule import CYCLE_LENGTHS, MAX_CYCLE, STACK_LENGTHS, TYPOLOGIES, GraphRule
from flagstone.rules.reader import Common, param_value, read_window


def _whole(c: Common, key: str, low: int, high: int | None, default: int | None) -> int | None:
    r = c.reader
    value = r.resolve(key, c.params) if key in r.data else default
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise r.error(key, f"{key} must be a whole number {span}", value)
    return value


def build_graph(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    typology = r.text("typology")
    if typology not in TYPOLOGIES:
        raise r.error("typology", f"unknown typology '{typology}' (expected one of: {', '.join(TYPOLOGIES)})", typology)
    if "group_by" in r.data:
        raise r.error("group_by", "a graph rule's anchor follows from its typology; leave group_by out")
    window_text, window_us = read_window(r, c.params)
    k = _whole(c, "min_counterparties", 1, None, 2)
    default_len = STACK_LENGTHS if typology == "stack" else CYCLE_LENGTHS if typology == "cycle" else (2, 2)
    min_len = _whole(c, "min_length", 2, MAX_CYCLE, default_len[0])
    max_len = _whole(c, "max_length", 2, MAX_CYCLE, default_len[1])
    assert k is not None and min_len is not None and max_len is not None
    if min_len > max_len:
        raise r.error("min_length", f"min_length {min_len} is above max_length {max_len}", min_len)
    max_degree = _whole(c, "max_degree", 1, None, None)
    tolerance: Decimal | None = None
    if "amount_tolerance" in r.data:
        raw = param_value(r.resolve("amount_tolerance", c.params))
        if isinstance(raw, bool) or not isinstance(raw, int | Decimal) or raw < 0:
            raise r.error("amount_tolerance", "amount_tolerance must be a number >= 0, e.g. 0.2", raw)
        tolerance = Decimal(raw)
    group_by: tuple[str, ...] = ("counterparty",) if typology in ("fan_in", "bipartite") else ("actor",)
    if typology == "scatter_gather":
        group_by = ("actor", "counterparty")  # (source, destination)
    rule = GraphRule(
        c.meta, c.match, group_by, typology, window_us, k, min_len, max_len, tolerance, max_degree, window_text
    )
    return rule, set(rule.value_names) | {"window"}


KEYS = {
    "typology": "fan_out | fan_in | cycle | scatter_gather | gather_scatter | bipartite | stack",
    "window": "length W within which the whole pattern happens, e.g. 30d",
    "min_counterparties": "distinct accounts k that the typology counts (see docs/rules.md); default 2",
    "min_length": f"cycle, stack: fewest hops (2 to {MAX_CYCLE}); default 2 (stack: 3)",
    "max_length": f"cycle, stack: most hops (2 to {MAX_CYCLE}); default 6",
    "amount_tolerance": "cycle, stack, two-hop typologies: hops within ± this fraction of the first's; default any",
    "max_degree": "all but fan_out / fan_in: leave out accounts sending more than this many; default none",
}
