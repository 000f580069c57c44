"""The ``graph`` kind's layered typologies (``bipartite``, ``stack``): DuckDB equals the plain-Python
oracle on random small transfer graphs, and worked examples of their exact semantics."""

from __future__ import annotations

import json
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, engines_agree, ev, load_duckdb, write_rule
from graph_strategies import _VALID, AMOUNTS, BASE, FLOW_ACCOUNTS, transfers
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from flagstone.engines import DuckDBEngine
from flagstone.errors import RuleError
from flagstone.rules.kinds.graph.rule import MAX_CYCLE
from flagstone.rules.oracle import run_rule


@st.composite
def layered_rules(draw: st.DrawFn) -> str:
    typology = draw(st.sampled_from(["bipartite", "stack"]))
    doc: dict[str, Any] = {
        "id": "t.graph",
        "version": 1,
        "title": "graph",
        "severity": "low",
        "kind": "graph",
        "typology": typology,
        "window": f"{draw(st.integers(min_value=1, max_value=5))}h",  # often exactly a hop gap
    }
    if draw(st.booleans()):
        doc["match"] = "kind = 'transfer'"
    if typology == "bipartite":
        doc["min_counterparties"] = draw(st.sampled_from([1, 2, 2, 2, 3]))
    else:
        low = draw(st.sampled_from([2, 3, 3, 4]))
        doc["min_length"] = low
        doc["max_length"] = draw(st.integers(min_value=low, max_value=5))
        tol = draw(st.sampled_from([None, None, 0, 0.1, 0.25]))
        if tol is not None:
            doc["amount_tolerance"] = tol
    degree = draw(st.sampled_from([None, None, None, 5, 9]))
    if degree is not None:
        doc["max_degree"] = degree
    return json.dumps(doc)


@st.composite
def layered_flows(draw: st.DrawFn, max_size: int = 28) -> list[dict[str, Any]]:
    """Random transfers with a few complete bipartite blocks (senders x receivers) or chains
    planted among them, so that both typologies, near misses and window edges are frequent. A
    planted edge may still be broken by a bad amount, its kind or its order in time."""
    evs = draw(transfers(max_size=max_size, accounts=FLOW_ACCOUNTS, min_size=4))
    i = 0
    while i < len(evs) and draw(st.sampled_from([True, True, True, False])):
        if draw(st.booleans()):  # a bipartite block: every sender pays every receiver
            senders = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
            receivers = draw(st.lists(st.sampled_from(["c", "d", "e", "f"]), min_size=1, max_size=3, unique=True))
            pairs = draw(st.permutations([(s, r) for s in senders for r in receivers if s != r]))
        else:  # a chain passing one amount on
            accounts = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=2, max_size=6))
            pairs = list(pairwise(accounts))
        amount = draw(st.sampled_from([*_VALID, *AMOUNTS]))
        hours = draw(st.integers(min_value=0, max_value=3))
        for actor, counterparty in pairs:
            if i >= len(evs):
                break
            e = evs[i]
            e["actor"], e["counterparty"], e["kind"] = actor, counterparty, "transfer"
            e["ts"] = BASE + timedelta(hours=hours)
            e["amount"] = amount if draw(st.booleans()) else draw(st.sampled_from(AMOUNTS))
            hours += draw(st.sampled_from([0, 0, 1, 1, 2]))
            i += 1
    return evs


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=layered_rules(), evs=layered_flows())
def test_layered_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    found = engines_agree(con, tmp_path_factory.getbasetemp() / "layered_rule.yaml", rule_text, evs)
    target(float(min(found, 4)))


def _t(eid: str, hours: float, actor: str, cp: str, amount: float = 100) -> dict[str, Any]:
    return ev(eid, hours, kind="transfer", actor=actor, counterparty=cp, amount=amount)


def _ids(f: Any) -> list[str]:
    return [e for _, e in f.evidence]


def test_bipartite_fires_when_k_senders_share_k_receivers(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="bipartite", window="10h", min_counterparties=2)
    evs = [
        _t("1", 0, "s1", "y"),
        _t("2", 1, "s1", "z"),
        _t("3", 2, "s2", "z"),  # z is paid by s1 and s2, but s2 has not paid y yet
        _t("4", 3, "s2", "s2"),  # self-transfer: not an edge
        _t("5", 3, "s3", "w", 0),  # zero amount: not an edge
        _t("6", 4, "s2", "y"),  # S = {s1, s2}, D = {y, z}: fires
        _t("7", 5, "s3", "z"),  # s3 is no sender to y: not seen
        _t("8", 6, "s3", "y"),  # same episode; now s3 -> z is seen too
        _t("9", 7, "s1", "q"),  # q is paid by one sender only
    ]
    y, z = sorted(runner(rule, evs, None), key=lambda f: f.group)
    assert (y.group, y.fire, _ids(y)) == ((("counterparty", "y"),), ("s", "6"), ["1", "2", "3", "6", "7", "8"])
    assert y.values_dict == {"senders": 3, "receivers": 2, "transfers": 6, "total": 600}
    # The same block seen from z: at "7" z has three senders, which also pay y (s1, s2).
    assert (z.group, z.fire, _ids(z)) == ((("counterparty", "z"),), ("s", "7"), ["1", "2", "3", "6", "7"])
    assert (y.first_ts, y.last_ts) == (evs[0]["ts"], evs[5]["ts"])
    # One receiver only (y): no bipartite, however many senders.
    assert runner(rule, [_t("1", 0, "s1", "y"), _t("2", 1, "s2", "y"), _t("3", 2, "s3", "y")], None) == []


def test_bipartite_window_ties_and_episodes(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="bipartite", window="3h", min_counterparties=2)
    block = [_t("1", 0, "s1", "z"), _t("2", 1, "s2", "z"), _t("3", 2, "s1", "y"), _t("4", 3, "s2", "y")]
    # s1 -> z at 0h is exactly W before the test point at 3h: outside, so z has one sender.
    assert runner(rule, block, None) == []
    # At one instant the order rests on event_id: "4" comes after "3" and sees it.
    tied = [_t("1", 1, "s1", "z"), _t("2", 1, "s2", "z"), _t("3", 2, "s1", "y"), _t("4", 2, "s2", "y")]
    (f,) = runner(rule, tied, None)
    assert f.fire == ("s", "4")
    assert _ids(f) == ["1", "2", "3", "4"]
    # Ordered the other way round ("0" before "3"), s2 -> y comes first: not yet two senders at it,
    # and at "3" the window still holds it, so "3" fires.
    (g,) = runner(rule, [*tied[:3], _t("0", 2, "s2", "y")], None)
    assert g.fire == ("s", "3")
    # The episode ends at y's next test point that fails (the block has left the window) and a
    # later block fires again.
    again = [*tied, _t("5", 6, "s3", "y"), _t("6", 7, "s1", "z"), _t("7", 7, "s2", "z"), _t("8", 8, "s1", "y")]
    results = runner(rule, [*again, _t("9", 8, "s2", "y")], None)
    assert [f.fire for f in results] == [("s", "4"), ("s", "9")]
    assert _ids(results[1]) == ["5", "6", "7", "8", "9"]  # s3 -> y: s3 is a sender again


def test_stack_follows_the_flow_from_each_first_hop(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="stack", window="10h", min_length=3, max_length=4)
    evs = [
        _t("1", 0, "x", "a"),
        _t("2", 1, "a", "b"),
        _t("3", 1, "a", "c", -5),  # negative amount: not an edge
        _t("4", 2, "b", "x"),  # back to the origin: no chain from x (but a -> b -> x is one from a)
        _t("5", 3, "b", "c"),  # x -> a -> b -> c: three hops, fires
        _t("6", 3, "a", "d"),  # a second branch of x's flow
        _t("7", 4, "d", "e"),  # x -> a -> d -> e: also three hops, later
        _t("8", 5, "c", "e"),  # fourth hop of the first branch
        _t("9", 6, "e", "f"),  # fourth hop of the second; a fifth of the first: beyond max_length
    ]
    results = sorted(runner(rule, evs, None), key=lambda f: (f.group, f.last_ts, f.fire))
    assert [(f.group[0][1], f.fire[1], _ids(f)) for f in results] == [
        ("a", "8", ["2", "4", "5", "8", "9"]),  # a -> b -> c -> e fires; the flow of "2" also holds b -> x
        ("a", "9", ["6", "7", "9"]),  # a second first hop of a: a finding of its own
        ("b", "9", ["5", "8", "9"]),
        ("x", "5", ["1", "2", "5", "6", "7", "8", "9"]),  # the flow reaches past the firing edge
    ]
    x = results[3]
    assert x.values_dict == {"depth": 4, "accounts": 7, "transfers": 7, "total": 700}
    assert (x.first_ts, x.last_ts) == (evs[0]["ts"], evs[4]["ts"])
    assert results[0].values_dict == {"depth": 4, "accounts": 6, "transfers": 5, "total": 500}


def test_stack_window_ties_tolerance_and_simple_paths(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(
        tmp_path, kind="graph", typology="stack", window="3h", min_length=3, max_length=3, amount_tolerance=0.1
    )
    # The third hop at 3h is exactly W after the first hop: outside.
    assert runner(rule, [_t("1", 0, "x", "a"), _t("2", 1, "a", "b"), _t("3", 3, "b", "c")], None) == []
    # Hops at one instant follow event_id order.
    tied = [_t("1", 2, "x", "a"), _t("2", 2, "a", "b"), _t("3", 2, "b", "c", 109)]
    (f,) = runner(rule, tied, None)
    assert (f.fire, f.values_dict) == (("s", "3"), {"depth": 3, "accounts": 4, "transfers": 3, "total": 309})
    assert runner(rule, [*tied[:2], _t("0", 2, "b", "c")], None) == []
    # A hop outside ±10 % of the first hop's amount breaks the chain.
    assert runner(rule, [*tied[:2], _t("3", 2, "b", "c", 111)], None) == []
    # No account twice: x -> a -> b -> a is no chain.
    assert runner(rule, [*tied[:2], _t("3", 2, "b", "a")], None) == []


def test_stack_defaults_and_validation(tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="stack", window="1d")
    assert (rule.min_length, rule.max_length, rule.group_by) == (3, 6, ("actor",))  # type: ignore[union-attr]
    bip = write_rule(tmp_path, kind="graph", typology="bipartite", window="1d")
    assert bip.group_by == ("counterparty",)
    with pytest.raises(RuleError, match="above max_length"):
        write_rule(tmp_path, kind="graph", typology="stack", window="1d", max_length=2)
    with pytest.raises(RuleError, match="max_length must be a whole number"):
        write_rule(tmp_path, kind="graph", typology="stack", window="1d", max_length=MAX_CYCLE + 1)


def test_oracle_comparison_is_not_vacuous(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    evs = [_t("1", 0, "a", "b"), _t("2", 1, "c", "b"), _t("3", 2, "a", "d"), _t("4", 3, "c", "d")]
    evs.append(_t("5", 4, "d", "e"))
    load_duckdb(con, evs, {})
    for typology in ("bipartite", "stack"):
        rule = write_rule(tmp_path, kind="graph", typology=typology, window="1d", min_length=2)
        expected = sorted(run_rule(rule, evs, {}), key=lambda f: (f.group, f.fire))
        assert sorted(DuckDBEngine(con).run(rule), key=lambda f: (f.group, f.fire)) == expected != []


def test_stack_first_hops_firing_at_one_edge_make_one_finding(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(tmp_path, kind="graph", typology="stack", window="1d", min_length=3)
    # a pays b twice; both first hops reach d through the same chain and fire at c->d.
    evs = [_t("1", 0, "a", "b"), _t("2", 1, "a", "b"), _t("3", 2, "b", "c"), _t("4", 3, "c", "d")]
    (f,) = runner(rule, evs, None)
    assert f.group == (("actor", "a"),) and f.fire == ("s", "4")
    assert [e for _, e in f.evidence] == ["1", "2", "3", "4"]
    assert f.first_ts == evs[0]["ts"]
    assert f.values_dict["depth"] == 3 and f.values_dict["transfers"] == 4
