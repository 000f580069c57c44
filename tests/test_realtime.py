"""The real-time scorer against the oracle: random rules and events replayed in time order must
give exactly the batch findings; late events, eviction and unsupported rules behave as documented."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, ev, write_rule
from hypothesis import HealthCheck, given, settings
from rule_strategies import entities, events, rules

from flagstone.engines.realtime import RealtimeEngine, replay
from flagstone.errors import UnsupportedError
from flagstone.rules import load_rules
from flagstone.rules.oracle import run_rule


def _key(f: Any) -> Any:
    return (f.group, f.fire)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=rules, evs=events(max_size=25), ents=entities)
def test_replay_equals_oracle(
    tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    path = tmp_path_factory.getbasetemp() / "realtime" / "rule.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rule_text)
    rule = load_rules([path]).rules[0]
    expected = sorted(run_rule(rule, evs, ents), key=_key)
    assert sorted(replay([rule], evs, ents), key=_key) == expected


def _window_rule(tmp: Path, evidence: str = "window") -> Any:
    return write_rule(
        tmp,
        kind="window",
        group_by=["actor"],
        window="2h",
        aggregates={"n": "count(*)", "total": "sum(amount)"},
        having="n >= 3",
        evidence=evidence,
    )


def test_decisions_one_event_at_a_time(tmp_path: Path) -> None:
    engine = RealtimeEngine([_window_rule(tmp_path)])
    first = [engine.score(ev(f"e{i}", i * 0.5, amount=10)) for i in range(3)]
    assert [len(d.fired) for d in first] == [0, 0, 1]
    finding = first[2].fired[0]
    assert finding.evidence == (("s", "e0"), ("s", "e1"), ("s", "e2"))
    assert finding.values_dict == {"n": 3, "total": 30}
    # The test keeps holding: same episode, no second alert; after a gap it re-arms.
    assert not engine.score(ev("e3", 1.6, amount=1)).fired
    assert not engine.score(ev("e4", 9, amount=1)).fired
    again = [engine.score(ev(f"f{i}", 10 + i * 0.1, amount=1)) for i in range(2)]
    assert [len(d.fired) for d in again] == [0, 1]


def test_episode_alert_grows_while_the_test_holds(tmp_path: Path) -> None:
    engine = RealtimeEngine([_window_rule(tmp_path, "episode")])
    decisions = [engine.score(ev(f"e{i}", i * 0.5, amount=10)) for i in range(5)]
    assert len(decisions[2].fired) == 1 and not decisions[2].updated
    grown = decisions[4].updated[0]
    assert grown.fire == ("s", "e2")
    assert [e for _, e in grown.evidence] == ["e0", "e1", "e2", "e3", "e4"]
    assert grown.values_dict == {"n": 5, "total": 50}


def test_late_event_joins_later_windows_but_is_not_tested(tmp_path: Path) -> None:
    engine = RealtimeEngine([_window_rule(tmp_path)], lateness=timedelta(hours=1))
    engine.score(ev("e0", 0.0, amount=1))
    engine.score(ev("e2", 1.0, amount=1))
    late = engine.score(ev("e1", 0.5, amount=1))  # before e2 in its group: late
    assert late.late and not late.fired
    fired = engine.score(ev("e3", 1.5, amount=1)).fired
    assert [e for _, e in fired[0].evidence] == ["e0", "e1", "e2", "e3"]
    # Older than the newest event minus the allowed lateness: late for every group.
    assert engine.score(ev("x", 0.2, actor="b", amount=1)).late


def test_memory_is_bounded_by_the_longest_window(tmp_path: Path) -> None:
    """A year of hourly events for 50 actors: what is held never exceeds the window's share."""
    engine = RealtimeEngine([_window_rule(tmp_path)], lateness=timedelta(0), evict_every=100)
    most = 0
    for hour in range(24 * 30):
        for actor in range(50):
            engine.score(ev(f"{hour}-{actor}", hour, actor=f"a{actor}", amount=1))
        most = max(most, engine.state_events())
    # A 2-hour window of hourly events holds at most 2 per actor (the third has left).
    assert most <= 2 * 50
    assert engine.open_groups() <= 50


def test_unsupported_rules_name_rule_feature_and_engine(tmp_path: Path) -> None:
    rule = write_rule(
        tmp_path,
        kind="sequence",
        group_by=["actor"],
        first="kind = 'x'",
        then="kind = 'y'",
        within="1d",
    )
    with pytest.raises(UnsupportedError, match=r"t\.rule.*sequence.*realtime"):
        RealtimeEngine([rule])


def test_condition_rule_values_are_the_fields_it_reads(tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="condition", group_by=["actor"], condition="amount >= 100 and channel = 'atm'")
    engine = RealtimeEngine([rule])
    d = engine.score({**ev("e1", 0, amount=150), "channel": "atm"})
    assert d.fired[0].values_dict == {"amount": 150, "channel": "atm"}
    assert d.fired[0].first_ts == d.fired[0].last_ts == T0
