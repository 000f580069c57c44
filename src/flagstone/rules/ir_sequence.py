"""Intermediate form of the ``sequence`` rule kind: event A, then event B, linked, within T."""

from __future__ import annotations

from dataclasses import dataclass

from flagstone.events import IDENTIFIER_FIELDS
from flagstone.rules import ir

# In ``then``, ``a.<field>`` is an ``ir.AggregateRef`` named with this prefix: like an aggregate in
# ``having``, it is a value the kind supplies for each candidate pair; every back end already maps
# AggregateRef through its leaf function.
EARLIER = "a."


@dataclass(frozen=True)
class SequenceRule:
    """Fires at a matched event B when an earlier matched event A of the same group satisfies
    ``first`` and ``then`` (A and B together) and lies in B's window ``(ts(B) - T, ts(B)]``.

    ``then`` reads B's fields as ``ir.Field`` / ``ir.Attr`` / ``ir.EntityField`` and A's as
    ``ir.AggregateRef('a.<field>')``. ``earlier_read`` / ``later_read`` are the event fields
    ``then`` reads of A / B; all but identifiers are shown as ``a_<field>`` / ``b_<field>``.
    """

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    first: ir.Expr
    then: ir.Expr
    within_us: int
    earlier_read: tuple[str, ...] = ()
    later_read: tuple[str, ...] = ()
    within_text: str = ""

    @property
    def earlier_shown(self) -> tuple[str, ...]:
        return tuple(f for f in self.earlier_read if f not in IDENTIFIER_FIELDS)

    @property
    def later_shown(self) -> tuple[str, ...]:
        return tuple(f for f in self.later_read if f not in IDENTIFIER_FIELDS)

    @property
    def value_names(self) -> tuple[str, ...]:
        return (
            *(f"a_{f}" for f in self.earlier_shown),
            *(f"b_{f}" for f in self.later_shown),
            "gap_hours",
            "earlier_events",
        )
