"""DuckDB must agree exactly with the pure-Python oracle on random events and rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from conftest import load_duckdb
from hypothesis import HealthCheck, given, settings, target
from rule_strategies import entities, events, rules

from flagstone.engines import DuckDBEngine
from flagstone.rules import load_rules
from flagstone.rules.oracle import run_rule


def rule_from(text: str, tmp: Path) -> Any:
    tmp.mkdir(parents=True, exist_ok=True)
    path = tmp / "rule.yaml"
    path.write_text(text)
    return load_rules([path]).rules[0]


def canonical(findings: list[Any]) -> list[Any]:
    return sorted(findings, key=lambda f: (f.group, f.fire))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=rules, evs=events(), ents=entities)
def test_duckdb_equals_oracle(
    con: duckdb.DuckDBPyConnection,
    tmp_path_factory: Any,
    rule_text: str,
    evs: list[dict[str, Any]],
    ents: dict[str, dict[str, Any]],
) -> None:
    rule = rule_from(rule_text, tmp_path_factory.getbasetemp() / "oracle")
    load_duckdb(con, evs, ents)
    expected = canonical(run_rule(rule, evs, ents))
    # Steer the search towards rules that fire, where the semantics are exercised.
    target(float(min(len(expected), 5)))
    got = canonical(DuckDBEngine(con).run(rule))
    assert got == expected
