"""The typed form of the ``graph`` rule kind (money-flow typologies over transfers)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from flagstone.rules import ir

Typology = Literal["fan_out", "fan_in", "cycle", "scatter_gather", "gather_scatter", "bipartite", "stack"]
TYPOLOGIES: tuple[Typology, ...] = (
    "fan_out",
    "fan_in",
    "cycle",
    "scatter_gather",
    "gather_scatter",
    "bipartite",
    "stack",
)
MAX_CYCLE = 10  # most hops a cycle (or stack) may have
CYCLE_LENGTHS = (2, 6)  # default (min_length, max_length) of a cycle
FAN_VALUES = ("counterparties", "transfers", "total")
CYCLE_VALUES = ("length", "total", "min_amount", "max_amount")
SCATTER_VALUES = ("intermediaries", "transfers", "total")
GATHER_VALUES = ("sources", "destinations", "transfers", "total")
BIPARTITE_VALUES = ("senders", "receivers", "transfers", "total")
STACK_VALUES = ("depth", "accounts", "transfers", "total")
STACK_LENGTHS = (3, 6)  # default (min_length, max_length) of a stack


@dataclass(frozen=True)
class GraphRule:
    """A typology over the transfer graph within a time window ``window_us``.

    ``group_by`` is the anchor account's field: ``actor`` for fan-out and cycles (the cycle's first
    sender), ``counterparty`` for fan-in, ``(actor, counterparty)`` = (source, destination) for
    scatter-gather, ``actor`` (the hub, sender of the second hops) for gather-scatter,
    ``counterparty`` (the receiver the senders share) for bipartite, ``actor`` (the origin) for stack.
    """

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    typology: Typology
    window_us: int
    min_counterparties: int = 2
    min_length: int = 2
    max_length: int = 2
    amount_tolerance: Decimal | None = None
    max_degree: int | None = None
    window_text: str = ""

    @property
    def value_names(self) -> tuple[str, ...]:
        if self.typology == "scatter_gather":
            return SCATTER_VALUES
        if self.typology == "gather_scatter":
            return GATHER_VALUES
        if self.typology == "bipartite":
            return BIPARTITE_VALUES
        if self.typology == "stack":
            return STACK_VALUES
        return CYCLE_VALUES if self.typology == "cycle" else FAN_VALUES
