"""Intermediate form of the ``graph`` rule kind (money-flow typologies over transfers)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from flagstone.rules import ir

Typology = Literal["fan_out", "fan_in", "cycle", "scatter_gather", "gather_scatter"]
TYPOLOGIES: tuple[Typology, ...] = ("fan_out", "fan_in", "cycle", "scatter_gather", "gather_scatter")
MAX_CYCLE = 6
FAN_VALUES = ("counterparties", "transfers", "total")
CYCLE_VALUES = ("length", "total", "min_amount", "max_amount")
SCATTER_VALUES = ("intermediaries", "transfers", "total")
GATHER_VALUES = ("sources", "destinations", "transfers", "total")


@dataclass(frozen=True)
class GraphRule:
    """A typology over the transfer graph within a time window ``window_us``.

    ``group_by`` is the anchor account's field: ``actor`` for fan-out and cycles (the cycle's first
    sender), ``counterparty`` for fan-in, ``(actor, counterparty)`` = (source, destination) for
    scatter-gather, ``actor`` (the hub, sender of the second hops) for gather-scatter.
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
        return CYCLE_VALUES if self.typology == "cycle" else FAN_VALUES
