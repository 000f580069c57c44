"""The steps the sequence, deviation and dormancy oracles share: groups in event order, and one
finding per episode (the test holds at an event and did not at the group's previous one)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, Protocol

from flagstone.rules import ir
from flagstone.rules.evaluator import Context, Entities, Event, evaluate, order_key
from flagstone.rules.finding import Finding

# test(seq, i) -> (holds, evidence in event order, values in value_names order)
Test = Callable[[list[Event], int], tuple[bool, list[Event], dict[str, Any]]]


class GroupedRule(Protocol):
    @property
    def meta(self) -> ir.RuleMeta: ...
    @property
    def match(self) -> ir.Expr: ...
    @property
    def group_by(self) -> tuple[str, ...]: ...


def ordered_groups(
    rule: GroupedRule, events: list[Event], entities: Entities
) -> list[tuple[tuple[Any, ...], list[Event]]]:
    """Each group's matched events in ``(ts, event_id, source)`` order; NULL groups left out."""
    groups: dict[tuple[Any, ...], list[Event]] = defaultdict(list)
    for event in events:
        key = tuple(event.get(g) for g in rule.group_by)
        if None in key or evaluate(rule.match, Context(event, entities)) is not True:
            continue
        groups[key].append(event)
    return [(key, sorted(groups[key], key=order_key)) for key in sorted(groups)]


def run_tests(
    rule: GroupedRule,
    events: list[Event],
    entities: Entities,
    test: Test,
    episode: Callable[[list[Event]], dict[str, Any]] | None = None,
) -> list[Finding]:
    """One finding per episode. With ``episode`` (values from evidence), the evidence is the union
    of the evidence of the episode's tests, from the firing one while the test keeps holding."""
    findings: list[Finding] = []
    for key, seq in ordered_groups(rule, events, entities):
        was_hit = False
        results = [test(seq, i) for i in range(len(seq))]
        for i, event in enumerate(seq):
            hit, evidence, values = results[i]
            if hit and not was_hit and episode is not None:
                union = {(e["source"], e["event_id"]): e for j in _run(results, i) for e in results[j][1]}
                evidence = sorted(union.values(), key=order_key)
                values = episode(evidence)
            if hit and not was_hit:
                findings.append(
                    Finding(
                        rule_id=rule.meta.id,
                        rule_version=rule.meta.version,
                        group=tuple(zip(rule.group_by, key, strict=True)),
                        fire=(event["source"], event["event_id"]),
                        first_ts=evidence[0]["ts"],
                        last_ts=event["ts"],
                        evidence=tuple((e["source"], e["event_id"]) for e in evidence),
                        values=tuple(values.items()),
                    )
                )
            was_hit = hit
    return findings


def _run(results: list[tuple[bool, list[Event], dict[str, Any]]], i: int) -> range:
    """Positions from ``i`` while the test holds."""
    j = i
    while j < len(results) and results[j][0]:
        j += 1
    return range(i, j)


def micros(delta: Any) -> int:
    """A timedelta as whole microseconds (exact, unlike total_seconds())."""
    return int(delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds)
