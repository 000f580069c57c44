"""Intermediate form of the ``dormancy`` rule kind: a quiet group wakes up with large activity."""

from __future__ import annotations

from dataclasses import dataclass

from flagstone.rules import ir

DORMANCY_VALUES = ("dormant_days", "events", "total")


@dataclass(frozen=True)
class DormancyRule:
    """A matched event *wakes* its group when the group's previous matched event is at least
    ``dormant_us`` earlier. An event is *awake* when the latest wake at or before it (in event
    order) is less than ``awake_us`` earlier; ``total`` sums ``value`` over the events from that
    wake up to it, ``events`` counts them, ``dormant_days`` is the quiet gap before the wake. The
    test is ``awake and having`` (``having`` reads those three names and the event's fields).
    """

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    dormant_us: int
    awake_us: int
    value: ir.Expr
    having: ir.Expr
    dormant_text: str = ""
    awake_text: str = ""

    @property
    def value_names(self) -> tuple[str, ...]:
        return DORMANCY_VALUES
