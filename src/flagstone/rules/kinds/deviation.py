"""The ``deviation`` rule kind: an event's value far above the group's own recent history (or its
peer group's). Its typed form, its keys and its plain-Python definition (the oracle)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flagstone.rules import ir
from flagstone.rules.episodes import micros, ordered_groups, run_tests
from flagstone.rules.evaluator import Context, Entities, Event, evaluate, order_key
from flagstone.rules.expressions import convert, parse_text, to_predicate
from flagstone.rules.finding import Finding
from flagstone.rules.reader import Common, RuleKind, RuleReader, read_count, read_duration, read_number_expr

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


def _peer_by(r: RuleReader, params: dict[str, ir.ParamValue]) -> ir.Expr | None:
    if "peer_by" not in r.data:
        return None
    scope = r.scope("peer_by", params)
    text = r.text("peer_by")
    node, typ = convert(parse_text(text, scope), scope)
    if typ not in ("string", "null"):
        raise scope.error(f"peer_by must be text (a field, attrs.<key> or actor.<attr>), but {text!r} is a {typ}", text)
    return node


def build_deviation(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    history_text, history_us = read_duration(r, "history", c.params)
    value = read_number_expr(r, "value", c.params, "amount")
    min_history = read_count(r, "min_history", c.params)
    types: dict[str, ir.ValueType] = {name: "number" for name in DEVIATION_VALUES}
    having = to_predicate(r.text("having"), r.scope("having", c.params, aggregates=types))
    rule = DeviationRule(
        c.meta, c.match, c.group_by, value, history_us, min_history, having, history_text, _peer_by(r, c.params)
    )
    return rule, set(DEVIATION_VALUES)


def median(values: list[float]) -> float | None:
    """The middle value; for an even count the mean of the two middle values, ``(a + b) / 2``."""
    if not values:
        return None
    s = sorted(values)
    k = len(s) // 2
    return s[k] if len(s) % 2 else (s[k - 1] + s[k]) / 2


def run_deviation(rule: DeviationRule, events: list[Event], entities: Entities) -> list[Finding]:
    def as_float(e: Event) -> float | None:
        v = evaluate(rule.value, Context(e, entities))
        return None if v is None else float(v)

    # With peer_by, the history is drawn from every matched event, in the global event order.
    everyone = sorted((e for _, seq in ordered_groups(rule, events, entities) for e in seq), key=order_key)
    position = {(e["source"], e["event_id"]): n for n, e in enumerate(everyone)}

    def peer(e: Event) -> Any:
        return evaluate(rule.peer_by, Context(e, entities)) if rule.peer_by is not None else None

    def before(seq: list[Event], i: int) -> list[Event]:
        event = seq[i]
        if rule.peer_by is None:
            return seq[:i]
        key = peer(event)
        earlier = everyone[: position[(event["source"], event["event_id"])]]
        return [] if key is None else [e for e in earlier if peer(e) == key]

    def test(seq: list[Event], i: int) -> tuple[bool, list[Event], dict[str, Any]]:
        event = seq[i]
        # History: strictly before the event in event order, inside (t - H, t], with a value.
        history = [
            e for e in before(seq, i) if micros(event["ts"] - e["ts"]) < rule.history_us and as_float(e) is not None
        ]
        past = [v for e in history if (v := as_float(e)) is not None]
        x = as_float(event)
        m = median(past)
        mad = None if m is None else median([abs(v - m) for v in past])
        scale = None if mad is None else MAD_SCALE * mad
        z = None if x is None or m is None or not scale else (x - m) / scale
        values = {"value": x, "median": m, "mad": mad, "z": z, "history_count": len(past)}
        hit = (
            x is not None
            and len(past) >= rule.min_history
            and evaluate(rule.having, Context(event, entities, values)) is True
        )
        return hit, [*history, event], values

    return run_tests(rule, events, entities, test)


KIND = RuleKind(
    "deviation",
    DeviationRule,
    {
        "value": "number compared with its own history (expression); default amount",
        "history": "how far back the history reaches, e.g. 90d",
        "min_history": "fewest earlier non-NULL values needed before the rule can fire",
        "having": "test over value, median, mad, z, history_count and the event's fields",
        "peer_by": "history from the peer group sharing this text value (e.g. actor.country), not the group's own",
    },
    build_deviation,
    run_deviation,
)
