"""The ``dormancy`` kind: oracle equality on random inputs, and its documented semantics by case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, ev, write_rule
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from kind_strategies import check_equal, kind_events, rule_text
from rule_strategies import entities, predicate

from flagstone.errors import RuleError

TESTS = [
    "total >= 5",
    "total > 0",
    "events >= 2",
    "dormant_days > 0.1",
    "total is null",
    "kind = 'y'",
    "total >= 2 * dormant_days",
    "actor.country = 'SE'",
    "true",
]


@st.composite
def dormancy_rule(draw: st.DrawFn) -> str:
    tests = draw(st.lists(st.sampled_from(TESTS), min_size=1, max_size=3))
    return rule_text(
        kind="dormancy",
        match=draw(st.one_of(st.just("true"), predicate(1))),
        group_by=draw(st.sampled_from([["actor"], ["place"], ["actor", "kind"]])),
        dormant=draw(st.sampled_from(["1h", "2h", "3h", "1us", "5h"])),
        awake=draw(st.sampled_from(["1h", "2h", "4h", "1d"])),
        value=draw(st.sampled_from(["amount", "quantity", "amount * quantity"])),
        having=f" {draw(st.sampled_from(['and', 'or']))} ".join(f"({t})" for t in tests),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=dormancy_rule(), evs=kind_events(), ents=entities)
def test_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    found = check_equal(con, tmp_path_factory.getbasetemp() / "dormancy", text, evs, ents)
    target(float(min(found, 5)))


def wake_rule(tmp: Path, dormant: str = "10h", awake: str = "4h", having: str = "total >= 100") -> Any:
    return write_rule(tmp, kind="dormancy", dormant=dormant, awake=awake, having=having)


def test_wakes_after_a_gap_and_sums_while_awake(runner: Runner, tmp_path: Path) -> None:
    events = [ev("e0", 0, amount=5), ev("e1", 10, amount=60), ev("e2", 12, amount=50), ev("e3", 13, amount=1)]
    [found] = runner(wake_rule(tmp_path), events)
    assert found.fire == ("s", "e2")
    # The evidence starts with the last event before the quiet gap.
    assert found.evidence == (("s", "e0"), ("s", "e1"), ("s", "e2"))
    assert found.values_dict == {"dormant_days": 10 / 24, "events": 2, "total": 110}


def test_gap_of_exactly_d_wakes_and_awake_window_is_half_open(runner: Runner, tmp_path: Path) -> None:
    rule = wake_rule(tmp_path)
    assert len(runner(rule, [ev("e0", 0), ev("e1", 9.999, amount=500)])) == 0
    assert len(runner(rule, [ev("e0", 0), ev("e1", 10, amount=500)])) == 1
    # An event exactly A after the wake is no longer awake.
    assert runner(rule, [ev("e0", 0), ev("e1", 10, amount=50), ev("e2", 14, amount=50)]) == []


def test_first_event_of_a_group_is_not_a_wake(runner: Runner, tmp_path: Path) -> None:
    assert runner(wake_rule(tmp_path), [ev("e0", 0, amount=500)]) == []


def test_one_alert_per_episode_then_rearm(runner: Runner, tmp_path: Path) -> None:
    events = [
        ev("e0", 0),
        ev("e1", 10, amount=100),
        ev("e2", 11, amount=100),  # e1 fires, e2 continues
        ev("e3", 14, amount=1),  # no longer awake: the test fails and the rule re-arms
        ev("e4", 30, amount=100),
    ]  # a new wake: a new alert
    found = runner(wake_rule(tmp_path), events)
    assert [f.fire for f in found] == [("s", "e1"), ("s", "e4")]


def test_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="field 'awake'"):
        write_rule(tmp_path, kind="dormancy", dormant="30d", having="total > 1")
    with pytest.raises(RuleError, match=r"field 'value'.*must be a number"):
        write_rule(tmp_path, kind="dormancy", dormant="30d", awake="1d", value="kind", having="total > 1")
