"""The ``sequence`` kind: oracle equality on random inputs, and its documented semantics by case."""

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

LINKS = [
    "amount >= 0.9 * a.amount",
    "b.amount > a.amount",
    "counterparty != a.counterparty",
    "b.counterparty = a.counterparty",
    "kind != a.kind",
    "a.amount is null",
    "place = a.place and quantity >= a.quantity",
    "amount + a.amount >= 10",
    "amount / a.amount > 0.5",
    "true",
    "category like 'c%'",
    "actor.pep",
    "attrs.tag = 'p'",
]


@st.composite
def sequence_rule(draw: st.DrawFn) -> str:
    links = draw(st.lists(st.sampled_from(LINKS), min_size=1, max_size=3))
    return rule_text(
        kind="sequence",
        match=draw(st.one_of(st.just("true"), predicate(1))),
        group_by=draw(st.sampled_from([["actor"], ["actor", "kind"], ["counterparty"]])),
        first=draw(st.one_of(st.just("true"), predicate(1))),
        then=f" {draw(st.sampled_from(['and', 'or']))} ".join(f"({x})" for x in links),
        within=draw(st.sampled_from(["1h", "2h", "3h", "6h", "90m", "1us"])),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=sequence_rule(), evs=kind_events(), ents=entities)
def test_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    found = check_equal(con, tmp_path_factory.getbasetemp() / "sequence", text, evs, ents)
    target(float(min(found, 5)))


def pass_through(tmp: Path, within: str = "48h") -> Any:
    return write_rule(
        tmp,
        kind="sequence",
        first="kind = 'in'",
        then="kind = 'out' and amount >= 0.9 * a.amount and counterparty != a.counterparty",
        within=within,
    )


def test_fires_at_b_with_the_pair_as_evidence(runner: Runner, tmp_path: Path) -> None:
    events = [
        ev("e1", 0, kind="in", amount=1000, counterparty="k1"),
        ev("e2", 10, kind="out", amount=950, counterparty="k2"),
    ]
    [found] = runner(pass_through(tmp_path), events)
    assert found.fire == ("s", "e2")
    assert found.evidence == (("s", "e1"), ("s", "e2"))
    assert found.values_dict == {
        "a_amount": 1000,
        "b_kind": "out",
        "b_amount": 950,
        "gap_hours": 10.0,
        "earlier_events": 1,
    }


def test_a_exactly_t_before_b_is_outside(runner: Runner, tmp_path: Path) -> None:
    rule = pass_through(tmp_path, within="2h")
    a = ev("e1", 0, kind="in", amount=100, counterparty="k1")
    assert len(runner(rule, [a, ev("e2", 1.999, kind="out", amount=95, counterparty="k2")])) == 1
    assert runner(rule, [a, ev("e2", 2, kind="out", amount=95, counterparty="k2")]) == []


def test_link_conditions_and_nulls(runner: Runner, tmp_path: Path) -> None:
    rule = pass_through(tmp_path)
    events = [
        ev("e1", 0, kind="in", amount=1000, counterparty="k1"),
        ev("e2", 1, kind="out", amount=899, counterparty="k2"),  # under 90%
        ev("e3", 2, kind="out", amount=1000, counterparty="k1"),  # back to the sender
        ev("e4", 3, kind="out", amount=1000, counterparty=None),  # NULL link: not a match
    ]
    assert runner(rule, events) == []


def test_same_instant_orders_by_event_id(runner: Runner, tmp_path: Path) -> None:
    # B must come after A in (ts, event_id, source) order, even at the same instant.
    rule = pass_through(tmp_path)
    before = [ev("b", 5, kind="in", amount=10, counterparty="k1"), ev("a", 5, kind="out", amount=10, counterparty="k2")]
    after = [ev("a", 5, kind="in", amount=10, counterparty="k1"), ev("b", 5, kind="out", amount=10, counterparty="k2")]
    assert runner(rule, before) == []
    assert [f.fire for f in runner(rule, after)] == [("s", "b")]


def test_one_alert_per_episode_and_all_qualifying_a_in_evidence(runner: Runner, tmp_path: Path) -> None:
    rule = pass_through(tmp_path)
    events = [
        ev("e1", 0, kind="in", amount=100, counterparty="k1"),
        ev("e2", 1, kind="in", amount=90, counterparty="k1"),
        ev("e3", 2, kind="out", amount=95, counterparty="k2"),  # fires: e1 and e2 qualify
        ev("e4", 3, kind="out", amount=95, counterparty="k2"),  # same episode
        ev("e5", 4, kind="in", amount=5, counterparty="k1"),  # test false here: re-armed
        ev("e6", 5, kind="out", amount=95, counterparty="k2"),  # a new episode
    ]
    found = runner(rule, events)
    assert [f.fire for f in found] == [("s", "e3"), ("s", "e6")]
    assert found[0].evidence == (("s", "e1"), ("s", "e2"), ("s", "e3"))
    assert found[0].values_dict["a_amount"] == 90  # the latest qualifying A
    assert found[0].values_dict["earlier_events"] == 2


def test_a_refs_outside_then_are_errors(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="field 'first'"):
        write_rule(tmp_path, kind="sequence", first="a.amount > 1", then="true", within="1h")
    with pytest.raises(RuleError, match="earlier event A"):
        write_rule(tmp_path, kind="sequence", first="true", then="a.actor.pep", within="1h")
    with pytest.raises(RuleError, match="cannot compare"):
        write_rule(tmp_path, kind="sequence", first="true", then="a.amount = 'x'", within="1h")
