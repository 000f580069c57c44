"""Rule ``profiles``: per-account counts over the scanned events, read as actor.<name> /
counterparty.<name>. DuckDB equals the oracle on random transfers and rules of several kinds, and
worked examples pin the exact values (counts, truncated ratios to the median, NULL median 0)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import Runner, engines_agree, ev, load_duckdb, write_rule
from graph_strategies import transfers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstone.engines import DuckDBEngine
from flagstone.engines.duckdb import compile_rule
from flagstone.errors import RuleError
from flagstone.rules.evaluator import with_profiles

PROFILE = {"busy": {"match": "kind = 'x'", "relative": True}, "pays": {"match": "amount > 100"}}


@st.composite
def profiled_rules(draw: st.DrawFn) -> str:
    threshold = draw(st.sampled_from(["0.5", "0.75", "1", "1.5", "2"]))
    test = draw(
        st.sampled_from(
            [
                f"actor.busy < {threshold}",
                f"actor.busy <= {threshold} and counterparty.busy <= {threshold}",
                "counterparty.pays >= 1",
                f"actor.busy * 2 > {threshold} or actor.pays = 0",
                "actor.busy is null",
            ]
        )
    )
    kind = draw(st.sampled_from(["condition", "window", "graph"]))
    doc: dict[str, Any] = {"id": "t.p", "version": 1, "title": "p", "severity": "low", "kind": kind}
    doc["profiles"] = PROFILE
    if kind == "condition":
        doc |= {"match": "kind = 'transfer'", "condition": test}
    elif kind == "window":
        doc |= {"match": f"kind = 'transfer' and ({test})", "window": "3h", "aggregates": {"n": "count(*)"}}
        doc["having"] = "n >= 2"
    else:
        doc |= {"match": f"kind = 'transfer' and ({test})", "window": "4h", "min_counterparties": 2}
        doc["typology"] = draw(st.sampled_from(["fan_in", "fan_out", "cycle"]))
    return json.dumps(doc)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=profiled_rules(), evs=transfers())
def test_profiles_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    engines_agree(con, tmp_path_factory.getbasetemp() / "profile_rule.yaml", rule_text, evs)


def _pay(eid: str, actor: str) -> dict[str, Any]:
    return ev(eid, 0, kind="payment", actor=actor, amount=10)


def _t(eid: str, actor: str, cp: str) -> dict[str, Any]:
    return ev(eid, 1, kind="transfer", actor=actor, counterparty=cp, amount=50)


def test_values_are_counts_and_truncated_ratios_to_the_median(tmp_path: Path, runner: Runner) -> None:
    # Payments: a 1, b 3, c 3, d 0 (d acts only in a transfer) -> counts over actors a, b, c, d
    # are 1, 3, 3, 0: median 2. a's ratio 0.5, b's 1.5; e never acts: count 0, ratio 0.
    pays = [_pay("p1", "a"), *(_pay(f"p{i}", "b") for i in (2, 3, 4)), *(_pay(f"q{i}", "c") for i in (2, 3, 4))]
    evs = [*pays, _t("t1", "a", "e"), _t("t2", "b", "c"), _t("t3", "d", "a")]
    rule = write_rule(
        tmp_path,
        kind="condition",
        profiles={
            "activity": {"match": "kind = 'payment'", "relative": True},
            "payments": {"match": "kind = 'payment'"},
        },
        match="kind = 'transfer'",
        condition="actor.activity < 1 and counterparty.payments < 2",
    )
    fired = {f.fire[1] for f in runner(rule, evs, None)}
    assert fired == {"t1", "t3"}
    values = with_profiles(rule, evs, {})
    assert values["a"]["activity"] == Decimal("0.5") and values["b"]["activity"] == Decimal("1.5")
    assert values["e"] == {"activity": Decimal(0), "payments": 0}


def test_ratio_is_truncated_to_four_places_and_null_when_the_median_is_zero(tmp_path: Path, runner: Runner) -> None:
    rule = write_rule(
        tmp_path,
        kind="condition",
        profiles={"activity": {"match": "kind = 'payment'", "relative": True}},
        match="kind = 'transfer'",
        condition="actor.activity > 0.6666",
    )
    # Counts a 2, b 3, c 3 -> median 3; a's ratio 2/3 = 0.6666 (truncated), not above 0.6666.
    evs = [*(_pay(f"a{i}", "a") for i in range(2)), *(_pay(f"b{i}", "b") for i in range(3))]
    evs += [*(_pay(f"c{i}", "c") for i in range(3)), _t("t1", "a", "b"), _t("t2", "b", "a")]
    assert [f.fire[1] for f in runner(rule, evs, None)] == ["t2"]
    no_payments = write_rule(
        tmp_path,
        kind="condition",
        profiles={"activity": {"match": "kind = 'payment'", "relative": True}},
        match="kind = 'transfer' and actor.activity is null",
        condition="true",
    )
    # Counts a 0, b 0, c 1: median 0, so no ratio.
    quiet = [_t("t1", "a", "b"), _t("t2", "b", "a"), _pay("p", "c")]
    assert [f.fire[1] for f in runner(no_payments, quiet, None)] == ["t1", "t2"]


def test_profile_errors_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match=r"profiles\.pep"):
        write_rule(tmp_path, kind="condition", profiles={"pep": {"match": "true"}}, condition="true")
    with pytest.raises(RuleError, match="event fields and attrs only"):
        write_rule(tmp_path, kind="condition", profiles={"p": {"match": "actor.pep"}}, condition="true")
    with pytest.raises(RuleError, match="relative"):
        write_rule(tmp_path, kind="condition", profiles={"p": {"match": "true", "relative": "yes"}}, condition="true")
    with pytest.raises(RuleError, match="unknown actor attribute 'p2'"):
        write_rule(tmp_path, kind="condition", profiles={"p": {"match": "true"}}, condition="actor.p2 > 1")


def test_inline_counts_equal_the_engines_stored_counts(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """An engine stores each profile's counts once per scan; a statement compiled on its own (as in
    the golden files) counts inline. Both give the same findings."""
    rule = write_rule(
        tmp_path,
        kind="graph",
        typology="fan_out",
        window="1d",
        profiles={"activity": {"match": "kind = 'payment'", "relative": True}},
        match="kind = 'transfer' and actor.activity < 1.5 and counterparty.activity < 1.5",
    )
    evs = [_pay("p1", "a"), _pay("p2", "b"), _pay("p3", "b"), _t("t1", "a", "b"), _t("t2", "a", "c")]
    load_duckdb(con, evs, {})
    cursor = con.execute(compile_rule(rule))
    names = [d[0] for d in cursor.description]
    inline = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    stored = DuckDBEngine(con).run(rule)
    assert len(inline) == len(stored) == 1
    assert [e for _, e in stored[0].evidence] == ["t1", "t2"] == inline[0]["evidence"]
