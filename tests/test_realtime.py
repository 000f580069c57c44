"""The real-time scorer against the oracle: random rules and events replayed in time order must
give exactly the batch findings; late events, eviction and unsupported rules behave as documented."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import T0, ev, write_rule
from hypothesis import HealthCheck, given, settings
from kind_strategies import kind_events, ledger_events
from rule_strategies import entities, events, rules
from test_kind_sequence import PASS_THROUGH, accounts_rule, credits, one_sided, sequence_rule

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


def _replay_equals_oracle(tmp: Path, rule_text: str, evs: list[dict[str, Any]], ents: dict[str, Any]) -> None:
    path = tmp / "rule.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rule_text)
    rule = load_rules([path]).rules[0]
    assert sorted(replay([rule], evs, ents), key=_key) == sorted(run_rule(rule, evs, ents), key=_key)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=sequence_rule(), evs=kind_events(), ents=entities)
def test_sequence_replay_equals_oracle(
    tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    _replay_equals_oracle(tmp_path_factory.getbasetemp() / "realtime_sequence", rule_text, evs, ents)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=accounts_rule(), evs=ledger_events(), ents=entities)
def test_account_view_replay_equals_oracle(
    tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    _replay_equals_oracle(tmp_path_factory.getbasetemp() / "realtime_accounts", rule_text, evs, ents)


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
    rule = write_rule(tmp_path, kind="deviation", history="1d", min_history=2, having="value > median")
    with pytest.raises(UnsupportedError, match=r"t\.rule.*deviation.*realtime"):
        RealtimeEngine([rule])


def test_condition_rule_values_are_the_fields_it_reads(tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="condition", group_by=["actor"], condition="amount >= 100 and channel = 'atm'")
    engine = RealtimeEngine([rule])
    d = engine.score({**ev("e1", 0, amount=150), "channel": "atm"})
    assert d.fired[0].values_dict == {"amount": 150, "channel": "atm"}
    assert d.fired[0].first_ts == d.fired[0].last_ts == T0


def test_pass_through_decides_at_the_outgoing_payment() -> None:
    engine = RealtimeEngine(load_rules([PASS_THROUGH]).rules)
    first, second = (engine.score(e) for e in one_sided())
    assert not first.fired
    [alert] = second.fired
    assert (alert.group_key, alert.evidence) == ("account=B", (("s", "t1"), ("s", "t2")))


def test_pass_through_two_sided_in_real_time() -> None:
    # Both bookings of each transfer, in time order: a credit and the transfer of the same instant
    # pair at once, and the later of the two is left out.
    engine = RealtimeEngine(load_rules([PASS_THROUGH]).rules)
    (t1, t2), (c1, c2) = one_sided(), credits("c")
    fired = [f for e in (c1, t1, c2, t2) for f in engine.score(e).fired]
    assert [(f.group_key, f.fire, f.evidence) for f in fired] == [
        ("account=B", ("s", "t2"), (("s", "c1"), ("s", "t2")))
    ]


def test_a_rolled_back_booking_leaves_no_trace() -> None:
    # Undone, B's credit neither pairs with A's transfer (which would then be left out) nor
    # remains a candidate.
    engine = RealtimeEngine(load_rules([PASS_THROUGH]).rules)
    (t1, t2), (c1, _) = one_sided(), credits("c")
    engine.begin()
    engine.score(c1)
    engine.rollback()
    fired = [f for e in (t1, t2) for f in engine.score(e).fired]
    assert [f.evidence for f in fired] == [(("s", "t1"), ("s", "t2"))]


def test_sequence_memory_is_bounded_by_within(tmp_path: Path) -> None:
    """A month of hourly transfers between 20 accounts: the candidates held never exceed those of
    the last 2 hours, and accounts with nothing left are forgotten."""
    rule = write_rule(
        tmp_path,
        kind="sequence",
        accounts={"incoming": "false"},
        first="direction = 'in'",
        then="direction = 'out' and amount >= a.amount",
        within="2h",
    )
    engine = RealtimeEngine([rule], lateness=timedelta(0), evict_every=100)
    most = 0
    for hour in range(24 * 30):
        for n in range(20):
            payee = f"a{(n + hour) % 20}" if n % 2 else None  # half the accounts receive, every hour
            engine.score(ev(f"{hour}-{n}", hour, kind="transfer", actor=f"a{n}", counterparty=payee, amount=1))
        most = max(most, engine.state_events())
    # Each hour holds 10 incoming legs; a 2-hour window holds at most two hours of them.
    assert most <= 2 * 10
    assert engine.open_groups() <= 20
