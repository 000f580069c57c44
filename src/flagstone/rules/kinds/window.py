"""The ``window`` rule kind: sliding-window aggregates per group, tested by ``having``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from flagstone.events import EVENT_FIELDS
from flagstone.rules import ir
from flagstone.rules.episodes import run_tests
from flagstone.rules.evaluator import Context, Entities, Event, aggregate, evaluate
from flagstone.rules.expressions import Scope, to_aggregate, to_predicate
from flagstone.rules.finding import Finding
from flagstone.rules.reader import Common, RuleKind, RuleReader, read_window

EVIDENCE_KEY = "window (default): the firing window; episode: every event of the episode's windows"


@dataclass(frozen=True)
class WindowRule:
    """Sliding-window aggregates per group, tested by ``having``. Baskets compile to this."""

    meta: ir.RuleMeta
    match: ir.Expr
    group_by: tuple[str, ...]
    window_us: int
    aggregates: tuple[tuple[str, ir.Aggregate], ...]
    having: ir.Expr
    window_text: str = ""
    # "window": the evidence and values are the firing event's window. "episode": every event in
    # the windows of the episode's events (from the firing one while ``having`` keeps holding),
    # with the aggregates recomputed over them.
    evidence: Literal["window", "episode"] = "window"

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.aggregates)


def build_window(c: Common) -> tuple[ir.Rule, set[str]]:
    window_text, window_us = read_window(c.reader, c.params)
    aggregates, having = _aggregates(c.reader, c.params, c.group_by)
    rule = WindowRule(c.meta, c.match, c.group_by, window_us, aggregates, having, window_text, read_evidence(c.reader))
    return rule, {name for name, _ in aggregates} | {"window"}


def read_evidence(r: RuleReader) -> Literal["window", "episode"]:
    value = r.data.get("evidence", "window")
    if value not in ("window", "episode"):
        raise r.error("evidence", "evidence must be 'window' or 'episode'", value)
    return value  # type: ignore[no-any-return]


def _aggregates(
    r: RuleReader, params: dict[str, ir.ParamValue], group_by: tuple[str, ...]
) -> tuple[tuple[tuple[str, ir.Aggregate], ...], ir.Expr]:
    raw = r.data.get("aggregates")
    if not isinstance(raw, dict) or not raw:
        raise r.error("aggregates", "aggregates must map names to aggregates, e.g. total: sum(amount)", raw)
    aggregates: list[tuple[str, ir.Aggregate]] = []
    types: dict[str, ir.ValueType] = {}
    for name, text in raw.items():
        key = f"aggregates.{name}"
        if not re.match(r"^[a-z_][a-z0-9_]*$", str(name)) or name in EVENT_FIELDS or name in ("window", "group"):
            raise r.error(key, f"aggregate name {name!r} must be lower_case and not a field name", name)
        scope = Scope(path=r.path, line=r.doc.line("aggregates", name), field=key, params=params)
        agg, typ = to_aggregate(str(text), scope)
        aggregates.append((str(name), agg))
        types[str(name)] = typ
    having = to_predicate(r.text("having"), r.scope("having", params, aggregates=types, group_only=group_by))
    return tuple(aggregates), having


def run_window(rule: WindowRule, events: list[Event], entities: Entities) -> list[Finding]:
    """The oracle: every window recomputed from scratch at each matched event, one finding per
    episode."""

    def test(seq: list[Event], i: int) -> tuple[bool, list[Event], dict[str, Any]]:
        event = seq[i]
        start = event["ts"] - timedelta(microseconds=rule.window_us)
        window = [e for e in seq[: i + 1] if e["ts"] > start]
        values = {name: aggregate(agg, window, entities) for name, agg in rule.aggregates}
        hit = evaluate(rule.having, Context(event, entities, values)) is True
        return hit, window, values

    episode = None
    if rule.evidence == "episode":

        def episode(evidence: list[Event]) -> dict[str, Any]:
            return {name: aggregate(agg, evidence, entities) for name, agg in rule.aggregates}

    return run_tests(rule, events, entities, test, episode)


KIND = RuleKind(
    "window",
    WindowRule,
    {
        "window": "length W of the sliding window, e.g. 7d, 24h, 30m",
        "aggregates": "name: aggregate, e.g. total: sum(amount)",
        "having": "expression over the aggregates that makes the rule fire",
        "evidence": EVIDENCE_KEY,
    },
    build_window,
    run_window,
)
