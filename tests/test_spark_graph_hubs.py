"""The Spark engine against the oracle on the ``graph`` kind's hub typologies: ``scatter_gather``
and ``gather_scatter`` (two-hop legs) and ``bipartite`` (senders x receivers blocks), on random
small transfer graphs, plus what Spark's plan adds to DuckDB's: time buckets of width W around
the epoch, and adaptive execution over several partitions"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import HAVE_SPARK, ev, write_rule
from graph_strategies import BASE, flows, scatter_rules
from hypothesis import HealthCheck, given, settings, target
from test_kind_graph_layered import layered_flows, layered_rules

from flagstone.rules import load_rules
from flagstone.rules.finding import Finding
from flagstone.rules.oracle import run_rule

pytestmark = pytest.mark.skipif(not HAVE_SPARK, reason="pyspark is not installed")


def _order(f: Finding) -> tuple[Any, ...]:
    return (f.group, f.fire, f.evidence)


def _run(spark: Any, rule: Any, evs: list[dict[str, Any]]) -> list[Finding]:
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import create_views

    create_views(spark, evs, {})
    return sorted(SparkEngine(spark).run(rule), key=_order)


def _agree(spark: Any, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]) -> None:
    """Spark's findings equal the oracle's; hypothesis is steered towards examples with findings."""
    path = tmp_path_factory.getbasetemp() / "spark_hubs" / "rule.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rule_text)
    rule = load_rules([path]).rules[0]
    expected = sorted(run_rule(rule, evs, {}), key=_order)
    assert _run(spark, rule, evs) == expected
    target(float(min(len(expected), 4)))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=scatter_rules(), evs=flows())
def test_two_hop_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    _agree(spark, tmp_path_factory, rule_text, evs)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=layered_rules().filter(lambda text: json.loads(text)["typology"] == "bipartite"), evs=layered_flows())
def test_bipartite_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]]
) -> None:
    _agree(spark, tmp_path_factory, rule_text, evs)


def _t(eid: str, at: datetime, actor: str, cp: str, amount: float = 100) -> dict[str, Any]:
    e = ev(eid, 0, kind="transfer", actor=actor, counterparty=cp, amount=amount)
    e["ts"] = at
    return e


EPOCH = datetime(1970, 1, 1)


@pytest.mark.parametrize("typology", ["scatter_gather", "gather_scatter", "bipartite"])
def test_windows_across_the_epoch(spark: Any, tmp_path: Path, typology: str) -> None:
    # Times just before and after 1970-01-01: the time buckets of width W must not fold at zero.
    rule = write_rule(tmp_path, kind="graph", typology=typology, window="3h", min_counterparties=2)
    h = timedelta(hours=1)
    step = timedelta(minutes=30)
    blocks = {
        "scatter_gather": [("s", "m1"), ("m1", "d"), ("s", "m2"), ("m2", "d"), ("s", "m3"), ("m3", "d")],
        "gather_scatter": [("x1", "h"), ("x2", "h"), ("h", "y1"), ("h", "y2"), ("x3", "h"), ("h", "y3")],
        "bipartite": [("s1", "z"), ("s2", "z"), ("s1", "y"), ("s2", "y"), ("s3", "y"), ("s3", "z")],
    }[typology]
    for start in (EPOCH - 4 * h, EPOCH - 2 * h, EPOCH - h, EPOCH + h):
        evs = [_t(str(i), start + i * step, a, c) for i, (a, c) in enumerate(blocks)]
        expected = sorted(run_rule(rule, evs, {}), key=_order)
        assert _run(spark, rule, evs) == expected
        assert expected != []  # not vacuous


ADAPTIVE_RULES = {
    "scatter_gather": {"min_counterparties": 3},
    "gather_scatter": {"min_counterparties": 3},
    "bipartite": {"min_counterparties": 3},
    "cycle": {"min_length": 3, "max_length": 5},
    "stack": {"min_length": 3, "max_length": 4},
}


@pytest.mark.parametrize("typology", ADAPTIVE_RULES)
def test_adaptive_execution_on_many_partitions(spark: Any, tmp_path: Path, typology: str) -> None:
    # Adaptive execution plans the shuffles of each reference to the edges on its own: the ranks
    # must still agree between references (the session fixture turns it off for speed).
    rnd = random.Random(7)
    accounts = [f"a{i}" for i in range(12)]
    evs = []
    for _ in range(400):
        actor, counterparty = rnd.sample(accounts, 2)
        at = BASE + timedelta(minutes=rnd.randrange(24 * 60))
        evs.append(_t(f"{rnd.randrange(10**6):06d}", at, actor, counterparty))
    rule = write_rule(tmp_path, kind="graph", typology=typology, window="2h", **ADAPTIVE_RULES[typology])
    expected = sorted(run_rule(rule, evs, {}), key=_order)
    saved = {key: spark.conf.get(key) for key in ("spark.sql.adaptive.enabled", "spark.sql.shuffle.partitions")}
    spark.conf.set("spark.sql.adaptive.enabled", "true")
    spark.conf.set("spark.sql.shuffle.partitions", "5")
    try:
        assert _run(spark, rule, evs) == expected != []
    finally:
        for key, value in saved.items():
            spark.conf.set(key, value)
