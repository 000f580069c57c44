"""Queue measures on hand-made queues whose answers are known."""

from __future__ import annotations

from flagstone.evaluate import AlertTruth
from flagstone.triage.measure import queue_measures, queue_order


def truth(*rows: tuple[str, bool, set[str]]) -> dict[str, AlertTruth]:
    return {a: AlertTruth(a, t, frozenset(f)) for a, t, f in rows}


def test_read_share_stops_when_every_found_pattern_is_found() -> None:
    t = truth(("a", False, set()), ("b", True, {"p1"}), ("c", True, {"p2"}), ("d", True, {"p1"}), ("e", True, set()))
    ids = ["a", "b", "c", "d", "e"]
    m = queue_measures(ids, [0.9, 0.8, 0.7, 0.1, 0.0], t)
    assert (m.alerts, m.goal, m.per_pattern, m.read) == (5, 2, True, 3)  # a, b, c
    assert m.read_share == 3 / 5
    assert m.top_precision == 0.0 and m.precision == 4 / 5  # the top 10 % of 5 is one alert: a
    perfect = queue_measures(ids, [0.0, 1.0, 0.9, 0.1, 0.1], t)
    assert perfect.read == 2 and perfect.top_precision == 1.0


def test_per_scenario_the_goal_is_every_true_alert_and_ties_go_by_id() -> None:
    t = truth(("a", True, set()), ("b", False, set()), ("c", True, set()))
    assert queue_order(["c", "b", "a"], [0.5, 0.5, 0.5]) == ["a", "b", "c"]
    m = queue_measures(["c", "b", "a"], [0.5, 0.5, 0.5], t)
    assert (m.goal, m.per_pattern, m.read) == (2, False, 3)
    assert queue_measures([], [], {}).read_share == 0.0
