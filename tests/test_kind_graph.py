"""The ``graph`` kind: DuckDB equals the plain-Python oracle on random small transfer graphs, and
worked examples of each typology's exact semantics."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, ev, load_duckdb, write_rule
from graph_strategies import BASE, graph_rules, transfers
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from flagstone.engines import DuckDBEngine
from flagstone.errors import RuleError
from flagstone.rules import load_rules
from flagstone.rules.kinds.graph.rule import MAX_CYCLE
from flagstone.rules.oracle import run_rule


def _canonical(findings: list[Any]) -> list[Any]:
    return sorted(findings, key=lambda f: (f.group, f.fire, f.evidence))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=graph_rules(), evs=transfers())
def test_duckdb_equals_oracle_on_random_graphs(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    path = tmp_path_factory.getbasetemp() / "graph_rule.yaml"
    path.write_text(rule_text)
    rule = load_rules([path]).rules[0]
    load_duckdb(con, evs, {})
    expected = _canonical(run_rule(rule, evs, {}))
    target(float(min(len(expected), 4)))
    assert _canonical(DuckDBEngine(con).run(rule)) == expected


def _t(eid: str, hours: float, actor: str, cp: str, amount: float = 100) -> dict[str, Any]:
    return ev(eid, hours, kind="transfer", actor=actor, counterparty=cp, amount=amount)


def test_fan_out_counts_distinct_counterparties_once_per_episode(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="fan_out", window="10h", min_counterparties=3)
    evs = [
        _t("1", 0, "a", "x"),
        _t("2", 1, "a", "x"),  # repeated edge: still one counterparty
        _t("3", 2, "a", "a"),  # self-transfer: not an edge
        _t("4", 3, "a", "y", 0),  # zero amount: not an edge
        _t("5", 4, "a", "y"),
        _t("6", 5, "a", "z"),  # third distinct counterparty: fires
        _t("7", 6, "a", "w"),  # same episode
    ]
    (f,) = runner(rule, evs, None)
    assert f.group == (("actor", "a"),)
    assert f.fire == ("s", "6")
    # The evidence is the whole episode: 7 still holds, so it joins; the values describe it all.
    assert [e for _, e in f.evidence] == ["1", "2", "5", "6", "7"]
    assert f.values_dict == {"counterparties": 4, "transfers": 5, "total": 500}


def test_fan_episode_ends_when_the_fan_stops_holding(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="fan_in", window="3h", min_counterparties=2)
    evs = [
        _t("1", 0, "p", "m"),
        _t("2", 1, "q", "m"),  # fires: p, q
        _t("3", 2, "r", "m"),  # holds: p, q, r
        _t("4", 6, "s", "m"),  # alone in its window: the episode ended at 3
        _t("5", 7, "t", "m"),  # a second episode
    ]
    first, second = runner(rule, evs, None)
    assert [e for _, e in first.evidence] == ["1", "2", "3"] and first.fire == ("s", "2")
    assert [e for _, e in second.evidence] == ["4", "5"] and second.values_dict["counterparties"] == 2


def test_fan_in_is_anchored_on_the_receiver(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="fan_in", window="3h", min_counterparties=2)
    evs = [_t("1", 0, "p", "m"), _t("2", 3, "q", "m"), _t("3", 4, "r", "m")]  # 1 leaves the window at 3h
    (f,) = runner(rule, evs, None)
    assert f.group == (("counterparty", "m"),)
    assert [e for _, e in f.evidence] == ["2", "3"]


def test_cycle_hops_must_follow_in_time_ties_broken_by_event_id(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="cycle", window="1d", amount_tolerance=0.1)
    same_time = [_t("1", 0, "a", "b"), _t("2", 0, "b", "c", 95), _t("3", 0, "c", "a", 108)]
    (f,) = runner(rule, same_time, None)
    assert f.group == (("actor", "a"),) and f.fire == ("s", "3") and f.values_dict["length"] == 3
    # At one instant the order is b->c (1), a->b (2), c->a (3): no rotation follows it, no cycle.
    assert runner(rule, [_t("2", 0, "a", "b"), _t("1", 0, "b", "c"), _t("3", 0, "c", "a")], None) == []
    # Outside the tolerance: no cycle.
    assert runner(rule, [_t("1", 0, "a", "b"), _t("2", 1, "b", "a", 111)], None) == []


def test_cycle_reported_once_per_closing_transfer(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="cycle", window="1d")
    evs = [_t("1", 0, "a", "b"), _t("2", 1, "a", "b"), _t("3", 2, "b", "a")]
    (f,) = runner(rule, evs, None)  # the latest first hop is kept
    assert [e for _, e in f.evidence] == ["2", "3"]


def test_bad_graph_parameters_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="max_length"):
        write_rule(tmp_path, kind="graph", typology="cycle", window="1d", max_length=MAX_CYCLE + 1)
    with pytest.raises(RuleError, match="typology"):
        write_rule(tmp_path, kind="graph", typology="spiral", window="1d")


def test_oracle_test_can_fail(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A wrong engine result is noticed: the comparison is not vacuous."""
    rule = write_rule(tmp_path, kind="graph", typology="cycle", window="1d")
    evs = [_t("1", 0, "a", "b"), _t("2", 1, "b", "a")]
    load_duckdb(con, evs, {})
    assert DuckDBEngine(con).run(rule) == run_rule(rule, evs, {}) != []


def test_cycle_prefers_the_latest_middle_hop_and_stays_simple(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="cycle", window="1d", max_length=4)
    evs = [_t("1", 0, "a", "b"), _t("2", 1, "b", "c"), _t("3", 2, "b", "c"), _t("4", 3, "c", "a")]
    (f,) = runner(rule, evs, None)
    assert [e for _, e in f.evidence] == ["1", "3", "4"]
    # a->b->a->b->a holds only 2-hop cycles: an account is never visited twice.
    back_and_forth = [_t("1", 0, "a", "b"), _t("2", 1, "b", "a"), _t("3", 2, "a", "b"), _t("4", 3, "b", "a")]
    assert {f.values_dict["length"] for f in runner(rule, back_and_forth, None)} == {2}
    long_only = write_rule(tmp_path, kind="graph", typology="cycle", window="1d", min_length=4, max_length=4)
    assert runner(long_only, back_and_forth, None) == []


LONG_ACCOUNTS = [f"k{i}" for i in range(MAX_CYCLE)]


@st.composite
def long_cycles(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random transfers among ten accounts plus a planted chain of 6 to 10 hops back to its start,
    mostly one hop an hour: two hops in one hour are ordered by their random event ids (so the chain
    may break), a zero amount breaks it, two-hour gaps may push it beyond W."""
    evs = draw(transfers(max_size=12, accounts=LONG_ACCOUNTS))
    length = draw(st.integers(min_value=6, max_value=MAX_CYCLE))
    ring = draw(st.permutations(LONG_ACCOUNTS))[:length]
    hour = 0
    for i in range(length):
        hour += draw(st.sampled_from([1, 1, 0, 2]))
        evs.append(
            {
                **{k: None for k in ("item", "category", "quantity", "place", "channel", "attrs")},
                "source": "s1",
                "event_id": f"{draw(st.integers(min_value=0, max_value=30)):02d}-p{i}",
                "ts": BASE + timedelta(hours=hour),
                "kind": "transfer",
                "actor": ring[i],
                "counterparty": ring[(i + 1) % length],
                "amount": Decimal(draw(st.sampled_from(["100", "104", "100", "100", "120", "90.5", "0"]))),
                "currency": "EUR",
            }
        )
    return evs


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    evs=long_cycles(),
    lengths=st.sampled_from([(2, 6), (6, 10), (7, 9), (2, 10), (8, 8)]),
    window=st.sampled_from(["7h", "10h", "1d"]),
    tolerance=st.sampled_from([None, 0.05]),
)
def test_long_cycles_equal_the_oracle(
    con: duckdb.DuckDBPyConnection,
    tmp_path_factory: Any,
    evs: list[dict[str, Any]],
    lengths: tuple[int, int],
    window: str,
    tolerance: float | None,
) -> None:
    extra = {} if tolerance is None else {"amount_tolerance": tolerance}
    body = {"typology": "cycle", "window": window, "min_length": lengths[0], "max_length": lengths[1], **extra}
    rule = write_rule(tmp_path_factory.getbasetemp(), kind="graph", **body)
    load_duckdb(con, evs, {})
    expected = _canonical(run_rule(rule, evs, {}))
    target(float(max((f.values_dict["length"] for f in expected), default=0)))  # longer cycles are rarer
    assert _canonical(DuckDBEngine(con).run(rule)) == expected


def test_eight_hop_cycle_needs_max_length_eight(tmp_path: Path, runner: Runner) -> None:
    ring = ["a", "b", "c", "d", "e", "f", "g", "h"]
    evs = [_t(str(i + 1), i, ring[i], ring[(i + 1) % 8], 100 + i) for i in range(8)]
    evs.append(_t("9", 3.5, "d", "h"))  # a shortcut d -> h makes a 5-hop cycle closed by the same transfer
    default = write_rule(tmp_path, kind="graph", typology="cycle", window="1d", min_length=6)
    assert runner(default, evs, None) == []  # 8 hops is beyond the default max_length of 6
    rule = write_rule(tmp_path, kind="graph", typology="cycle", window="1d", min_length=6, max_length=10)
    (f,) = runner(rule, evs, None)
    assert f.group == (("actor", "a"),) and f.fire == ("s", "8")
    assert [e for _, e in f.evidence] == ["1", "2", "3", "4", "5", "6", "7", "8"]
    assert f.values_dict == {"length": 8, "total": 828, "min_amount": 100, "max_amount": 107}
    # With shorter cycles allowed, the 5-hop one through the shortcut wins for the same closing transfer.
    short = write_rule(tmp_path, kind="graph", typology="cycle", window="1d", max_length=10)
    (f,) = runner(short, evs, None)
    assert [e for _, e in f.evidence] == ["1", "2", "3", "9", "8"] and f.values_dict["length"] == 5
    # The whole ring must fit in the window: 7 hours from first to last hop.
    tight = write_rule(tmp_path, kind="graph", typology="cycle", window="7h", min_length=6, max_length=10)
    assert runner(tight, evs, None) == []
