"""The ``sequence`` kind in real time: per group, the candidate events A of the last T.

A matched event that passes ``first`` becomes a candidate of its group. At each matched event B
the group's candidates older than T are dropped, ``then`` is evaluated with each remaining one
(all come before B in event order, since events arrive in that order), and the rule fires where
some A qualifies and none did at the group's previous event, with the evidence and values of
``docs/rules.md``. With the account view (``legs.py``) the same runs over each event's legs.

Cost per event: one evaluation of ``then`` per candidate of its group within T (per leg, with the
account view: at most two), so a selective ``first`` keeps it small, as in a batch scan. Memory:
the candidates within T (plus the lateness allowed) and one flag per group whose test held at its
latest event; groups with nothing left are forgotten.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flagstone.engines.realtime.decision import Decision, Event, OrderKey, finding, order_key
from flagstone.engines.realtime.expr import Entities, compile_expr
from flagstone.engines.realtime.legs import Legs
from flagstone.rules.episodes import micros
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.sequence import EARLIER, SequenceRule


@dataclass(frozen=True)
class _Candidate:
    key: OrderKey
    earlier: dict[str, Any]  # the a.<field> values ``then`` reads of this A


@dataclass
class _Group:
    last: OrderKey | None = None
    hit: bool = False
    candidates: list[_Candidate] = field(default_factory=list)


class SequenceScorer:
    """One sequence rule's state over all its groups (the ``Scorer`` of ``engine.py``)."""

    def __init__(self, rule: SequenceRule, entities: Entities) -> None:
        self.rule = rule
        self.match = compile_expr(rule.match, entities)
        self.first = compile_expr(rule.first, entities)
        self.then = compile_expr(rule.then, entities)
        self.within = timedelta(microseconds=rule.within_us)
        self.legs = None if rule.accounts is None else Legs(rule.accounts, entities)
        self.groups: dict[tuple[Any, ...], _Group] = {}
        # While tentative: each touched group as it was (candidates are never changed in place).
        self.saved: dict[tuple[Any, ...], tuple[OrderKey | None, bool, tuple[_Candidate, ...]] | None] | None = None

    def score(self, event: Event, late: bool, decision: Decision) -> None:
        if self.match(event, {}) is not True:
            return
        for leg in [event] if self.legs is None else self.legs.split(event):
            self._score(leg, late, decision)

    def _score(self, event: Event, late: bool, decision: Decision) -> None:
        key = tuple(event.get(g) for g in self.rule.group_by)
        if None in key:
            return
        group = self.groups.get(key)
        if self.saved is not None and key not in self.saved:
            self.saved[key] = None if group is None else (group.last, group.hit, tuple(group.candidates))
        if group is None:
            group = self.groups[key] = _Group()
        ok = order_key(event)
        late = late or (group.last is not None and ok <= group.last)
        decision.late = decision.late or late
        if late:  # joins the candidates of later events, is not tested itself
            if group.last is None or ok[0] > group.last[0] - self.within:
                self._add(group, event, ok)
            return
        start = ok[0] - self.within
        group.candidates = [c for c in group.candidates if c.key[0] > start]
        qualifying = [c for c in group.candidates if self.then(event, c.earlier) is True]
        hit = bool(qualifying)
        if hit and not group.hit:
            decision.fired.append(self._finding(key, event, qualifying))
        group.hit = hit
        self._add(group, event, ok)
        group.last = ok

    def _add(self, group: _Group, event: Event, ok: OrderKey) -> None:
        if self.first(event, {}) is not True:
            return
        candidate = _Candidate(ok, {EARLIER + f: event.get(f) for f in self.rule.earlier_read})
        # A new list, so that a saved tuple of the old one stays as it was.
        group.candidates = [*group.candidates]
        group.candidates.insert(bisect.bisect([c.key for c in group.candidates], ok), candidate)

    def _finding(self, key: tuple[Any, ...], b: Event, qualifying: list[_Candidate]) -> Finding:
        a = qualifying[-1]  # the latest qualifying A gives the values
        values: dict[str, Any] = {f"a_{f}": a.earlier[EARLIER + f] for f in self.rule.earlier_shown}
        values.update({f"b_{f}": b.get(f) for f in self.rule.later_shown})
        values["gap_hours"] = micros(b["ts"] - a.key[0]) / 3_600_000_000
        values["earlier_events"] = len(qualifying)
        evidence = [*(c.key for c in qualifying), order_key(b)]
        return finding(self.rule.meta, self.rule.group_by, key, b, evidence, values)

    def begin(self) -> None:
        self.saved = {}
        if self.legs is not None:
            self.legs.begin()

    def commit(self) -> None:
        self.saved = None
        if self.legs is not None:
            self.legs.commit()

    def undo(self) -> None:
        for key, before in (self.saved or {}).items():
            if before is None:
                self.groups.pop(key, None)
            else:
                self.groups[key] = _Group(before[0], before[1], list(before[2]))
        self.saved = None
        if self.legs is not None:
            self.legs.undo()

    def evict(self, horizon: datetime) -> None:
        """Drop candidates no event at or after ``horizon`` can see; forget groups with nothing left."""
        start = horizon - self.within
        for key in list(self.groups):
            group = self.groups[key]
            if group.candidates and group.candidates[0].key[0] <= start:
                group.candidates = [c for c in group.candidates if c.key[0] > start]
            seen_before = group.last is not None and group.last[0] >= horizon  # still decides lateness
            if not group.candidates and not group.hit and not seen_before:
                del self.groups[key]

    def state_events(self) -> int:
        return sum(len(g.candidates) for g in self.groups.values())
