"""Plain-Python definition of the ``deviation`` kind (see ``ir_deviation.DeviationRule``)."""

from __future__ import annotations

from typing import Any

from flagstone.rules.finding import Finding
from flagstone.rules.ir_deviation import MAD_SCALE, DeviationRule
from flagstone.rules.oracle import Context, Entities, Event, evaluate, order_key
from flagstone.rules.oracle_steps import micros, ordered_groups, run_tests


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
