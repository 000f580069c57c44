"""The real-time back end: rules evaluated incrementally, one event at a time, in memory.

For every rule and group the scorer keeps the matched events of the current window (and, for
``evidence: episode`` rules, the open episode), the running aggregates over them, and whether the
rule's test held at the group's latest event. A new event updates that state and is tested once,
so a decision costs the same however long the store's history is. Events in time order give
exactly the findings of a batch scan over the same events (``tests/test_realtime.py`` checks it
against the oracle, DuckDB and the HTTP service).

Two things differ from batch, on purpose:

- An event that is *late* (earlier than the latest event its group has seen, or more than
  ``lateness`` before the newest event of all) joins the windows of later events, so their
  decisions stay exact, but is not tested itself: decisions already given are not revised.
  The batch scan remains the reference for late data.
- Memory: events leave a group's window as soon as no event that is not late can see them
  (``evict``); what remains per rule is at most the rule's window of events plus ``lateness``,
  and one flag per group whose test held at its latest event (an open episode).

``begin``/``commit``/``rollback`` let a caller score a few events tentatively: the scoring service
scores a group of requests before it writes them to its log, and a group that cannot be written
must leave no trace. Undoing copies only the groups those events touched, never the whole state.

Sequence rules (with or without the account view) keep candidate events instead of a window;
they are scored by ``sequence.SequenceScorer``, the other kinds here.

Rules this back end cannot run (profiles, which count over all events; the deviation and dormancy
kinds and the path typologies of the graph kind) raise ``UnsupportedError``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from flagstone.engines.graph import lower_fan
from flagstone.engines.realtime.aggregates import Accumulator, accumulator
from flagstone.engines.realtime.decision import ENGINE, Decision, Event, OrderKey, finding, order_key
from flagstone.engines.realtime.expr import Compiled, Entities, compile_expr
from flagstone.engines.realtime.sequence import SequenceScorer
from flagstone.errors import UnsupportedError
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.rules.kinds.condition import ConditionRule, shown_leaf
from flagstone.rules.kinds.graph.rule import GraphRule
from flagstone.rules.kinds.sequence import SequenceRule
from flagstone.rules.kinds.window import WindowRule

Runnable = ConditionRule | WindowRule | SequenceRule


def check_supported(rule: ir.Rule) -> Runnable:
    """The rule in the form this back end runs, or ``UnsupportedError`` naming what it cannot."""
    if ir.rule_profiles(rule):
        raise UnsupportedError(rule.meta.id, "profiles (counted over all scanned events)", ENGINE)
    build = BUILDERS.get(type(rule))
    if build is None:
        raise UnsupportedError(rule.meta.id, f"rule kind {rule.meta.kind}", ENGINE)
    return build(rule)


def _fan(rule: GraphRule) -> WindowRule:
    if rule.typology not in ("fan_in", "fan_out"):
        raise UnsupportedError(rule.meta.id, f"graph typology {rule.typology}", ENGINE)
    return lower_fan(rule)


# Each kind this back end runs, in the form it runs it (fans are window rules); a registered kind
# missing here is refused with UnsupportedError (tests/test_kind_registry.py).
BUILDERS: dict[type, Callable[[Any], Runnable]] = {
    ConditionRule: lambda rule: rule,
    WindowRule: lambda rule: rule,
    GraphRule: _fan,
    SequenceRule: lambda rule: rule,
}


class Scorer(Protocol):
    """One rule's state over all its groups, as ``RealtimeEngine`` drives it."""

    groups: dict[tuple[Any, ...], Any]

    def score(self, event: Event, late: bool, decision: Decision) -> None:
        """Update the state with ``event`` (``late``: too old to be tested) and add what it did."""

    def begin(self) -> None:
        """Score tentatively from here: remember how each group touched from now on was."""

    def commit(self) -> None:
        """Keep what was scored since ``begin``."""

    def undo(self) -> None:
        """Put everything touched since ``begin`` back as it was."""

    def evict(self, horizon: datetime) -> None:
        """Drop what no event at or after ``horizon`` can see."""

    def state_events(self) -> int:
        """Events held in windows, candidates and open episodes."""


@dataclass
class _Entry:
    key: OrderKey
    args: tuple[Any, ...]  # each aggregate's argument value for this event


@dataclass
class _Episode:
    """An open episode of an ``evidence: episode`` rule: its alert, growing while the test holds."""

    fire: Event
    entries: list[_Entry]
    accumulators: list[Accumulator]


@dataclass
class _Group:
    last: OrderKey | None = None
    hit: bool = False
    window: deque[_Entry] = field(default_factory=deque)
    accumulators: list[Accumulator] = field(default_factory=list)
    episode: _Episode | None = None


@dataclass(frozen=True)
class _Saved:
    """A group as it was before a tentative event touched it. Entries are never changed once made,
    so copying the sequences is enough; accumulators are rebuilt from them on undo."""

    last: OrderKey | None
    hit: bool
    window: tuple[_Entry, ...]
    episode: tuple[Event, tuple[_Entry, ...]] | None


class _RuleScorer:
    """One rule's state over all its groups."""

    def __init__(self, rule: ConditionRule | WindowRule, entities: Entities) -> None:
        self.rule = rule
        self.meta = rule.meta
        self.match = compile_expr(rule.match, entities)
        self.group_by = rule.group_by
        self.groups: dict[tuple[Any, ...], _Group] = {}
        self.saved: dict[tuple[Any, ...], _Saved | None] | None = None  # while tentative (RealtimeEngine.begin)
        self.window = timedelta(microseconds=rule.window_us) if isinstance(rule, WindowRule) else None
        if isinstance(rule, ConditionRule):
            self.test = compile_expr(rule.condition, entities)
            self.shown = [(name, compile_expr(shown_leaf(name), entities)) for name in rule.shown_fields]
        else:
            self.test = compile_expr(rule.having, entities)
            self.names = [name for name, _ in rule.aggregates]
            self.aggregates = [agg for _, agg in rule.aggregates]
            self.args: list[Compiled | None] = [
                None if a.arg is None else compile_expr(a.arg, entities) for a in self.aggregates
            ]
            self.episodes = rule.evidence == "episode"

    def score(self, event: Event, late: bool, decision: Decision) -> None:
        key = tuple(event.get(g) for g in self.group_by)
        if None in key or self.match(event, {}) is not True:
            return
        group = self.groups.get(key)
        if self.saved is not None and key not in self.saved:
            self.saved[key] = None if group is None else self._save(group)
        if group is None:
            group = self.groups[key] = _Group(accumulators=self._accumulators())
        ok = order_key(event)
        late = late or (group.last is not None and ok <= group.last)
        decision.late = decision.late or late
        if self.window is None:
            if not late:
                self._condition(key, group, event, decision)
        elif late:
            self._insert_late(group, event, ok)
        else:
            self._advance(key, group, event, ok, decision)
        if not late:
            group.last = ok

    def _accumulators(self) -> list[Accumulator]:
        return [] if self.window is None else [accumulator(a) for a in self.aggregates]

    def begin(self) -> None:
        self.saved = {}

    def commit(self) -> None:
        self.saved = None

    @staticmethod
    def _save(group: _Group) -> _Saved:
        episode = None if group.episode is None else (group.episode.fire, tuple(group.episode.entries))
        return _Saved(group.last, group.hit, tuple(group.window), episode)

    def _filled(self, entries: Iterable[_Entry]) -> list[Accumulator]:
        accs = self._accumulators()
        for e in entries:
            for acc, v in zip(accs, e.args, strict=True):
                acc.add(v)
        return accs

    def undo(self) -> None:
        """Put every group touched since ``saved`` was set back as it was."""
        for key, before in (self.saved or {}).items():
            if before is None:
                self.groups.pop(key, None)
                continue
            episode = None
            if before.episode is not None:
                fire, entries = before.episode
                episode = _Episode(fire, list(entries), self._filled(entries))
            self.groups[key] = _Group(
                before.last, before.hit, deque(before.window), self._filled(before.window), episode
            )
        self.saved = None

    def _condition(self, key: tuple[Any, ...], group: _Group, event: Event, decision: Decision) -> None:
        hit = self.test(event, {}) is True
        if hit and not group.hit:
            values = {name: read(event, {}) for name, read in self.shown}
            decision.fired.append(self._finding(key, event, [order_key(event)], values))
        group.hit = hit

    def _advance(self, key: tuple[Any, ...], group: _Group, event: Event, ok: OrderKey, d: Decision) -> None:
        assert self.window is not None
        entry = _Entry(ok, tuple(None if a is None else a(event, {}) for a in self.args))
        window, accs = group.window, group.accumulators
        window.append(entry)
        for acc, v in zip(accs, entry.args, strict=True):
            acc.add(v)
        start = ok[0] - self.window
        while window[0].key[0] <= start:
            old = window.popleft()
            for acc, v in zip(accs, old.args, strict=True):
                acc.remove(v)
        values = {name: acc.value() for name, acc in zip(self.names, accs, strict=True)}
        hit = self.test(event, values) is True
        if hit and not group.hit:
            if self.episodes:
                group.episode = _Episode(event, list(window), [accumulator(a) for a in self.aggregates])
                for e in window:
                    self._add(group.episode, e)
                d.fired.append(self._episode_finding(key, group.episode))
            else:
                d.fired.append(self._finding(key, event, [e.key for e in window], values))
        elif hit and group.episode is not None:
            group.episode.entries.append(entry)
            self._add(group.episode, entry)
            d.updated.append(self._episode_finding(key, group.episode))
        if not hit:
            group.episode = None
        group.hit = hit

    @staticmethod
    def _add(episode: _Episode, entry: _Entry) -> None:
        for acc, v in zip(episode.accumulators, entry.args, strict=True):
            acc.add(v)

    def _insert_late(self, group: _Group, event: Event, ok: OrderKey) -> None:
        """A late event joins the window in its place (so later decisions see it); not tested."""
        assert self.window is not None
        if group.last is not None and ok[0] <= group.last[0] - self.window:
            return  # no later window of this group can reach back to it
        entry = _Entry(ok, tuple(None if a is None else a(event, {}) for a in self.args))
        keys = [e.key for e in group.window]
        group.window.insert(bisect.bisect(keys, ok), entry)
        group.accumulators = self._filled(group.window)

    def _episode_finding(self, key: tuple[Any, ...], episode: _Episode) -> Finding:
        values = {name: acc.value() for name, acc in zip(self.names, episode.accumulators, strict=True)}
        return self._finding(key, episode.fire, [e.key for e in episode.entries], values)

    def _finding(self, key: tuple[Any, ...], fire: Event, evidence: list[OrderKey], values: dict[str, Any]) -> Finding:
        return finding(self.meta, self.group_by, key, fire, evidence, values)

    def evict(self, horizon: datetime) -> None:
        """Drop what no event at or after ``horizon`` can see; forget groups with nothing left."""
        for key in list(self.groups):
            group = self.groups[key]
            if self.window is not None:
                start = horizon - self.window
                while group.window and group.window[0].key[0] <= start:
                    old = group.window.popleft()
                    for acc, v in zip(group.accumulators, old.args, strict=True):
                        acc.remove(v)
            seen_before = group.last is not None and group.last[0] >= horizon  # still decides lateness
            if not group.window and not group.hit and group.episode is None and not seen_before:
                del self.groups[key]

    def state_events(self) -> int:
        return sum(len(g.window) + (len(g.episode.entries) if g.episode else 0) for g in self.groups.values())


def _scorer(rule: Runnable, entities: Entities) -> Scorer:
    if isinstance(rule, SequenceRule):
        return SequenceScorer(rule, entities)
    return _RuleScorer(rule, entities)


class RealtimeEngine:
    """Scores events one at a time against a rule set; see the module docstring for semantics."""

    name = ENGINE

    def __init__(
        self,
        rules: Sequence[ir.Rule],
        entities: Entities | None = None,
        *,
        lateness: timedelta = timedelta(hours=1),
        evict_every: int = 10_000,
    ) -> None:
        self.entities: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (entities or {}).items()}
        self.rules = list(rules)
        self.scorers = [_scorer(check_supported(r), self.entities) for r in self.rules]
        self.lateness = lateness
        self.clock: datetime | None = None  # the newest event time seen
        self.evict_every = evict_every
        self._since_evict = 0
        self._begun: tuple[datetime | None, int] | None = None  # clock and count at begin()

    def score(self, event: Event) -> Decision:
        """Update the state with ``event`` and say what it fired."""
        ts = event["ts"]
        late = self.clock is not None and ts < self.clock - self.lateness
        decision = Decision(late=late)
        for scorer in self.scorers:
            scorer.score(event, late, decision)
        if self.clock is None or ts > self.clock:
            self.clock = ts
        self._since_evict += 1
        if self._since_evict >= self.evict_every and self._begun is None:  # not while tentative
            self.evict()
        return decision

    def begin(self) -> None:
        """Score tentatively from here: ``commit`` keeps what was scored, ``rollback`` forgets it."""
        self._begun = (self.clock, self._since_evict)
        for scorer in self.scorers:
            scorer.begin()

    def commit(self) -> None:
        self._begun = None
        for scorer in self.scorers:
            scorer.commit()
        if self._since_evict >= self.evict_every:
            self.evict()

    def rollback(self) -> None:
        """Back to the state at ``begin``, at the cost of the groups touched since."""
        if self._begun is None:
            return
        self.clock, self._since_evict = self._begun
        self._begun = None
        for scorer in self.scorers:
            scorer.undo()

    def evict(self) -> None:
        self._since_evict = 0
        if self.clock is not None:
            for scorer in self.scorers:
                scorer.evict(self.clock - self.lateness)

    def state_events(self) -> int:
        """Events held in windows and open episodes, summed over rules (the memory that grows)."""
        return sum(s.state_events() for s in self.scorers)

    def open_groups(self) -> int:
        return sum(len(s.groups) for s in self.scorers)


def replay(rules: Sequence[ir.Rule], events: Iterable[Event], entities: Entities | None = None) -> list[Finding]:
    """Every finding from scoring ``events`` in time order: episode alerts in their final form."""
    engine = RealtimeEngine(rules, entities)
    found: dict[tuple[str, tuple[Any, ...], tuple[str, str]], Finding] = {}
    for event in sorted(events, key=order_key):
        decision = engine.score(event)
        for f in [*decision.fired, *decision.updated]:
            found[(f.rule_id, f.group, f.fire)] = f
    return list(found.values())
