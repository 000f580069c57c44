"""The ``deviation`` kind: oracle equality on random inputs, and its documented semantics by case."""

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
    "z >= 1",
    "z >= 0",
    "z > 2.5",
    "true",
    "value >= median",
    "z < 0",
    "value > median",
    "value >= 2 * median",
    "mad = 0",
    "z is null",
    "history_count >= 3",
    "median is null",
    "kind = 'x'",
    "value - median > 1",
    "actor.pep",
]


@st.composite
def deviation_rule(draw: st.DrawFn) -> str:
    tests = draw(st.lists(st.sampled_from(TESTS), min_size=1, max_size=3))
    peer = draw(st.sampled_from([None, None, "kind", "actor.country", "place", "attrs.tag", "counterparty"]))
    return rule_text(
        kind="deviation",
        **({} if peer is None else {"peer_by": peer}),
        # Mostly permissive choices, so that many examples fire and the values are compared.
        match=draw(st.one_of(st.just("true"), st.just("amount is not null"), predicate(1))),
        group_by=draw(st.sampled_from([["actor"], ["place"], ["actor", "kind"]])),
        value=draw(
            st.sampled_from(["amount", "amount", "quantity", "amount * quantity", "amount / quantity", "-amount"])
        ),
        history=draw(st.sampled_from(["1h", "3h", "5h", "12h", "1d", "1d"])),
        min_history=draw(st.integers(1, 3)),
        having=f" {draw(st.sampled_from(['and', 'or']))} ".join(f"({t})" for t in tests),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=deviation_rule(), evs=kind_events(), ents=entities)
def test_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    found = check_equal(con, tmp_path_factory.getbasetemp() / "deviation", text, evs, ents)
    target(float(min(found, 5)))


def z_rule(tmp: Path, having: str = "z >= 3", min_history: int = 3, history: str = "10h") -> Any:
    return write_rule(tmp, kind="deviation", history=history, min_history=min_history, having=having)


def test_robust_z_on_median_and_mad(runner: Runner, tmp_path: Path) -> None:
    # History 10, 12, 14, 20: median 13, deviations 3, 1, 1, 7 -> MAD 2; z(40) = 27 / 2.9652.
    events = [ev(f"e{i}", i, amount=a) for i, a in enumerate([10, 12, 14, 20, 40])]
    [found] = runner(z_rule(tmp_path), events)
    assert found.fire == ("s", "e4")
    assert found.values_dict == {
        "value": 40.0,
        "median": 13.0,
        "mad": 2.0,
        "z": 27 / (1.4826 * 2.0),
        "history_count": 4,
    }
    assert found.evidence == tuple(("s", f"e{i}") for i in range(5))


def test_min_history_and_history_edge(runner: Runner, tmp_path: Path) -> None:
    events = [ev("e0", 0, amount=10), ev("e1", 1, amount=11), ev("e2", 2, amount=12), ev("e3", 3, amount=500)]
    assert len(runner(z_rule(tmp_path), events)) == 1
    assert runner(z_rule(tmp_path, min_history=4), events) == []
    # An event exactly H before is outside the history: e0 drops out at H = 3h.
    assert runner(z_rule(tmp_path, history="3h"), events) == []


def test_mad_zero_gives_null_z(runner: Runner, tmp_path: Path) -> None:
    events = [ev(f"e{i}", i, amount=50) for i in range(4)] + [ev("e9", 5, amount=5000)]
    assert runner(z_rule(tmp_path), events) == []
    [found] = runner(z_rule(tmp_path, having="mad = 0 and value >= 10 * median"), events)
    assert found.values_dict["z"] is None and found.values_dict["mad"] == 0.0


def test_null_values_are_ignored_and_never_fire(runner: Runner, tmp_path: Path) -> None:
    events = [
        ev("e0", 0, amount=10),
        ev("e1", 1, amount=None),
        ev("e2", 2, amount=12),
        ev("e3", 3, amount=14),
        ev("e4", 4, amount=None),
        ev("e5", 5, amount=90),
    ]
    [found] = runner(z_rule(tmp_path, having="history_count >= 3"), events)
    assert found.fire == ("s", "e5")  # e4 has no value, so it cannot fire
    assert found.evidence == (("s", "e0"), ("s", "e2"), ("s", "e3"), ("s", "e5"))


def test_having_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="unknown field 'score'"):
        z_rule(tmp_path, having="score > 3")
    with pytest.raises(RuleError, match="min_history"):
        z_rule(tmp_path, min_history=0)


def test_peer_group_history_and_null_peers(runner: Runner, tmp_path: Path) -> None:
    # Peers by place: actor b's large amount is compared with everyone's earlier amounts at v1.
    rule = write_rule(tmp_path, kind="deviation", history="10h", min_history=3, having="z >= 3", peer_by="place")
    events = [
        ev("e0", 0, actor="a", place="v1", amount=10),
        ev("e1", 1, actor="c", place="v1", amount=12),
        ev("e2", 2, actor="a", place="v1", amount=14),
        ev("e3", 3, actor="b", place="v1", amount=90),
        ev("e4", 3, actor="b", place="v2", amount=900),
    ]  # no peers at v2 yet
    [found] = runner(rule, events)
    assert (found.group, found.fire) == ((("actor", "b"),), ("s", "e3"))
    assert found.evidence == (("s", "e0"), ("s", "e1"), ("s", "e2"), ("s", "e3"))
    # Events without a peer value have no history, so they never fire.
    no_place = [{**e, "place": None} for e in events]
    assert runner(rule, no_place) == []
