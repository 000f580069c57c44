"""Intermediate form of the ``deviation`` rule kind: a value far from the group's own history."""

from __future__ import annotations

from dataclasses import dataclass

from flagstone.rules import ir

# The names ``having`` may use, in the order findings carry them.
DEVIATION_VALUES = ("value", "median", "mad", "z", "history_count")
MAD_SCALE = 1.4826  # makes the MAD estimate the standard deviation of normal data


@dataclass(frozen=True)
class DeviationRule:
    """At each matched event, ``value`` (as a float) is compared with the same expression over
    the group's history: its matched events strictly before it with ``ts > ts(event) - H``.

    ``median`` and ``mad`` (median absolute deviation from that median) are over the history's
    non-NULL values; ``z = (value - median) / (MAD_SCALE * mad)``, NULL when ``mad`` is 0. The
    test is ``history_count >= min_history and having``.
    """

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    value: ir.Expr
    history_us: int
    min_history: int
    having: ir.Expr
    history_text: str = ""
    # With a peer group, the history is every matched event (of any group) with the same
    # ``peer_by`` value instead of the group's own events; NULL peer values have no history.
    peer_by: ir.Expr | None = None

    @property
    def value_names(self) -> tuple[str, ...]:
        return DEVIATION_VALUES
