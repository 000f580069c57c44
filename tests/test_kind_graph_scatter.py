"""The ``graph`` kind's two-hop typologies (``scatter_gather``, ``gather_scatter``): DuckDB equals the
plain-Python oracle on random small transfer graphs, and worked examples of their exact semantics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from conftest import Runner, engines_agree, ev, load_duckdb, write_rule
from graph_strategies import flows, scatter_rules
from hypothesis import HealthCheck, given, settings, target

from flagstone.engines import DuckDBEngine
from flagstone.rules.oracle import run_rule


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=scatter_rules(), evs=flows())
def test_two_hop_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    found = engines_agree(con, tmp_path_factory.getbasetemp() / "scatter_rule.yaml", rule_text, evs)
    target(float(min(found, 4)))


def _t(eid: str, hours: float, actor: str, cp: str, amount: float = 100) -> dict[str, Any]:
    return ev(eid, hours, kind="transfer", actor=actor, counterparty=cp, amount=amount)


def test_fires_at_the_transfer_completing_the_kth_intermediary(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="scatter_gather", window="10h", min_counterparties=2)
    evs = [
        _t("1", 0, "m3", "d"),  # second hop before any first hop: not part of the pattern
        _t("2", 1, "s", "m1"),
        _t("3", 1, "s", "m2"),
        _t("4", 1, "s", "m3"),
        _t("5", 2, "m1", "d"),  # one intermediary
        _t("6", 3, "m2", "m2"),  # self-transfer: not an edge
        _t("7", 3, "m2", "d", 0),  # zero amount: not an edge
        _t("8", 4, "m2", "d"),  # second intermediary: fires
        _t("9", 5, "m3", "d"),  # same episode
    ]
    (f,) = runner(rule, evs, None)
    assert f.group == (("actor", "s"), ("counterparty", "d"))
    assert f.fire == ("s", "8")
    # The evidence is the whole episode: leg s->m3->d (9) comes while it still holds.
    assert [e for _, e in f.evidence] == ["2", "3", "4", "5", "8", "9"]
    assert f.values_dict == {"intermediaries": 3, "transfers": 6, "total": 600}


def test_window_ties_tolerance_and_no_return_to_the_source(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(
        tmp_path, kind="graph", typology="scatter_gather", window="3h", min_counterparties=2, amount_tolerance=0.1
    )
    # First hop s->m1 at 0h is exactly W before the closing transfer at 3h: outside the window.
    edge = [_t("1", 0, "s", "m1"), _t("2", 1, "m1", "d"), _t("3", 2, "s", "m2"), _t("4", 3, "m2", "d")]
    assert runner(rule, edge, None) == []
    # At one instant the order rests on event_id: m2->d ("4") comes after s->m2 ("3") and counts.
    tied = [_t("1", 1, "s", "m1"), _t("2", 1, "m1", "d"), _t("3", 2, "s", "m2"), _t("4", 2, "m2", "d", 109)]
    (f,) = runner(rule, tied, None)
    assert f.fire == ("s", "4")
    # Ordered the other way round ("0" before "3"), m2->d precedes its first hop: no pattern.
    assert runner(rule, [*tied[:3], _t("0", 2, "m2", "d")], None) == []
    # Second hop outside ±10 % of the first: m2 is not an intermediary.
    assert runner(rule, [*tied[:3], _t("4", 2, "m2", "d", 111)], None) == []
    # Sending back to the source is not a gather: (s, s) is never a pair.
    back = [_t("1", 0, "s", "m1"), _t("2", 1, "s", "m2"), _t("3", 2, "m1", "s"), _t("4", 2, "m2", "s")]
    assert runner(rule, back, None) == []


def test_oracle_comparison_is_not_vacuous(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="scatter_gather", window="1d", min_counterparties=1)
    evs = [_t("1", 0, "a", "b"), _t("2", 1, "b", "c")]
    load_duckdb(con, evs, {})
    assert DuckDBEngine(con).run(rule) == run_rule(rule, evs, {}) != []


def test_gather_scatter_needs_k_sources_then_k_destinations(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="gather_scatter", window="10h", min_counterparties=2)
    evs = [
        _t("1", 0, "h", "y0"),  # sent before anything arrived: not a leg
        _t("2", 1, "x1", "h"),
        _t("3", 2, "x2", "h"),
        _t("4", 3, "h", "x1"),  # back to a sender: a leg only with x2 as its source
        _t("5", 4, "h", "y1"),  # two sources and now two destinations: fires
        _t("6", 5, "h", "y2"),  # same episode
    ]
    (f,) = runner(rule, evs, None)
    assert f.group == (("actor", "h"),)
    assert f.fire == ("s", "5")
    assert [e for _, e in f.evidence] == ["2", "3", "4", "5", "6"]  # 6: later in the episode
    assert f.values_dict == {"sources": 2, "destinations": 3, "transfers": 5, "total": 500}
    # One source only: never fires, however many destinations.
    assert runner(rule, [_t("1", 0, "x1", "h"), _t("2", 1, "h", "y1"), _t("3", 2, "h", "y2")], None) == []
