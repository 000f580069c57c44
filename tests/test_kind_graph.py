"""The ``graph`` kind: DuckDB equals the plain-Python oracle on random small transfer graphs, and
worked examples of each typology's exact semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, ev, load_duckdb, write_rule
from graph_strategies import graph_rules, transfers
from hypothesis import HealthCheck, given, settings, target

from flagstone.engines import DuckDBEngine
from flagstone.errors import RuleError
from flagstone.rules import load_rules
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
    assert [e for _, e in f.evidence] == ["1", "2", "5", "6"]
    assert f.values_dict["counterparties"] == 3


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
        write_rule(tmp_path, kind="graph", typology="cycle", window="1d", max_length=7)
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
