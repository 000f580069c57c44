"""The Spark engine's path typologies of the ``graph`` kind (``cycle``, ``stack``) against the oracle on
random small transfer graphs: the same strategies as the DuckDB property tests, fewer examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import HAVE_SPARK, write_rule
from graph_strategies import graph_rules, transfers
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st
from test_kind_graph import long_cycles
from test_kind_graph_layered import layered_flows, layered_rules

from flagstone.rules import load_rules
from flagstone.rules.finding import Finding
from flagstone.rules.ir import Rule
from flagstone.rules.oracle import run_rule

pytestmark = pytest.mark.skipif(not HAVE_SPARK, reason="pyspark is not installed")


def _order(f: Finding) -> tuple[Any, ...]:
    return (f.group, f.fire, f.evidence)


def _agree(spark: Any, rule: Rule, evs: list[dict[str, Any]]) -> list[Finding]:
    """Run ``rule`` on the oracle and on Spark: the findings must be the same (in any order)."""
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import create_views

    expected = sorted(run_rule(rule, evs, {}), key=_order)
    create_views(spark, evs, {})
    assert sorted(SparkEngine(spark).run(rule), key=_order) == expected
    return expected


def _load(folder: Path, rule_text: str) -> Rule:
    path = folder / "spark_graph_rule.yaml"
    path.write_text(rule_text)
    return load_rules([path]).rules[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=graph_rules().filter(lambda text: '"cycle"' in text), evs=transfers())
def test_spark_cycles_equal_the_oracle(
    spark: Any, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    expected = _agree(spark, _load(tmp_path_factory.getbasetemp(), rule_text), evs)
    target(float(min(len(expected), 4)))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    evs=long_cycles(),
    lengths=st.sampled_from([(2, 6), (6, 10), (7, 9), (8, 8)]),
    tolerance=st.sampled_from([None, 0.05]),
)
def test_spark_long_cycles_equal_the_oracle(
    spark: Any, tmp_path_factory: Any, evs: list[dict[str, Any]], lengths: tuple[int, int], tolerance: float | None
) -> None:
    extra = {} if tolerance is None else {"amount_tolerance": tolerance}
    body = {"typology": "cycle", "window": "10h", "min_length": lengths[0], "max_length": lengths[1], **extra}
    expected = _agree(spark, write_rule(tmp_path_factory.getbasetemp(), kind="graph", **body), evs)
    target(float(max((len(f.evidence) for f in expected), default=0)))  # a cycle's length


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=layered_rules().filter(lambda text: '"stack"' in text), evs=layered_flows())
def test_spark_stacks_equal_the_oracle(
    spark: Any, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    expected = _agree(spark, _load(tmp_path_factory.getbasetemp(), rule_text), evs)
    target(float(min(len(expected), 4)))
