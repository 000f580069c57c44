"""The account view (``ir.AccountView``) in real time: each event's legs as it arrives.

The legs of one event follow from the event alone, except that a payee's two incoming legs of one
movement (its own booking and the one derived from the payer's) are paired and the later left
out. Both bookings of a movement share its time, so in time order the pair's first leg has
already arrived when the second does: it is the earlier, and the second is left out at once,
exactly as in a batch scan. Only the unpaired incoming legs of the newest instant are kept, so the
state is a few legs, and a leg costs one dictionary look-up.

An event older than that instant (late) is not paired: it keeps its legs, where a batch scan might
leave one out. The batch scan is the reference for late events, as everywhere in this engine.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flagstone.engines.realtime.decision import Event
from flagstone.engines.realtime.expr import Entities, compile_expr
from flagstone.rules import ir

Movement = tuple[Any, ...]  # (account, other, amount, currency) of an incoming leg at the instant


class Legs:
    def __init__(self, view: ir.AccountView, entities: Entities) -> None:
        self.incoming = compile_expr(view.incoming, entities)
        self.instant: datetime | None = None
        # Per movement of the newest instant: which kind of leg is unpaired (own: True) and how many.
        self.unpaired: dict[Movement, tuple[bool, int]] = {}
        self.tentative = False
        self.saved: tuple[datetime | None, dict[Movement, tuple[bool, int]]] | None = None

    def split(self, event: Event) -> list[dict[str, Any]]:
        """The legs of one matched event that stand, in the order of ``rules/legs.py``."""
        booked_in = self.incoming(event, {}) is True
        actor, other = event.get("actor"), event.get("counterparty")
        legs: list[dict[str, Any]] = []
        if actor is not None:
            leg = {**event, "account": actor, "other": other, "direction": "in" if booked_in else "out"}
            if not booked_in or self._stands(leg, own=True):
                legs.append(leg)
        if not booked_in and other is not None and other != actor:
            leg = {**event, "account": other, "other": actor, "direction": "in"}
            if self._stands(leg, own=False):
                legs.append(leg)
        return legs

    def _stands(self, leg: dict[str, Any], *, own: bool) -> bool:
        """False for the later incoming leg of a pair (own and derived, one movement)."""
        ts = leg["ts"]
        if leg["other"] is None or (self.instant is not None and ts < self.instant):
            return True
        self._remember()
        if self.instant is None or ts > self.instant:
            self.instant, self.unpaired = ts, {}
        movement = (leg["account"], leg["other"], leg.get("amount"), leg.get("currency"))
        kind, n = self.unpaired.get(movement, (own, 0))
        if kind != own:  # pairs with the earliest unpaired leg of the other kind, which came first
            if n > 1:
                self.unpaired[movement] = (kind, n - 1)
            else:
                del self.unpaired[movement]
            return False
        self.unpaired[movement] = (own, n + 1)
        return True

    def _remember(self) -> None:
        if self.tentative and self.saved is None:
            self.saved = (self.instant, dict(self.unpaired))

    def begin(self) -> None:
        self.tentative, self.saved = True, None

    def commit(self) -> None:
        self.tentative, self.saved = False, None

    def undo(self) -> None:
        if self.saved is not None:
            self.instant, self.unpaired = self.saved
        self.tentative, self.saved = False, None
