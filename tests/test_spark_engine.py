"""The Spark engine against the oracle: random condition, window and basket rules on random events,
a few worked examples with exact evidence, and clear errors for what Spark does not run yet."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import EVENT_COLS, HAVE_SPARK, T0, ev, load_duckdb, write_rule
from hypothesis import HealthCheck, given, settings
from rule_strategies import entities, events, rules

from flagstone.engines import DuckDBEngine
from flagstone.errors import UnsupportedError
from flagstone.rules import ir, load_rules
from flagstone.rules.finding import Finding
from flagstone.rules.oracle import run_rule
from flagstone.store import SCHEMA

pytestmark = pytest.mark.skipif(not HAVE_SPARK, reason="pyspark is not installed")


def _run(spark: Any, rule: Any, evs: list[dict[str, Any]], ents: dict[str, Any] | None = None) -> list[Finding]:
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import create_views

    create_views(spark, evs, ents or {})
    return sorted(SparkEngine(spark).run(rule), key=lambda f: (f.group, f.fire))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rule_text=rules, evs=events(max_size=20), ents=entities)
def test_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, rule_text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    path = tmp_path_factory.getbasetemp() / "spark" / "rule.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rule_text)
    rule = load_rules([path]).rules[0]
    expected = sorted(run_rule(rule, evs, ents), key=lambda f: (f.group, f.fire))
    assert _run(spark, rule, evs, ents) == expected


def test_window_episode_evidence_and_exact_values(spark: Any, tmp_path: Path) -> None:
    rule = write_rule(
        tmp_path,
        kind="window",
        group_by=["actor"],
        window="2h",
        aggregates={"n": "count(*)", "total": "sum(amount)", "mean": "avg(amount)"},
        having="n >= 2",
        evidence="episode",
    )
    evs = [
        ev("e1", 0, amount="1.10"),
        ev("e2", 1, amount="2.20"),
        ev("e3", 2, amount="3.30"),  # e1 is exactly 2h earlier: outside e3's window
        ev("e4", 5, amount="9"),  # alone: the episode ends
    ]
    (finding,) = _run(spark, rule, evs)
    assert finding.fire == ("s", "e2")
    assert finding.evidence == (("s", "e1"), ("s", "e2"), ("s", "e3"))
    assert (finding.first_ts, finding.last_ts) == (T0, evs[1]["ts"])
    # Episode values are recomputed over the evidence: an exact decimal sum, avg = sum / count.
    assert finding.values_dict == {"n": 3, "total": Decimal("6.6"), "mean": 6.6 / 3}


def test_condition_with_attrs_like_and_entities(spark: Any, tmp_path: Path) -> None:
    rule = write_rule(
        tmp_path,
        kind="condition",
        group_by=["actor"],
        match="category like 'a\\%'",
        condition="attrs.tag = 'p' and actor.pep and amount / quantity > 1",
    )
    evs = [
        ev("e1", 0, category="a\\x", attrs={"tag": "p"}, amount="5", quantity="2"),
        ev("e2", 1, category="a\\y", attrs={"tag": "p"}, amount="5", quantity="0"),  # 5 / 0 is NULL
        ev("e3", 2, category="a\\z", attrs={"tag": "p"}, amount="5", quantity="1"),
        ev("e4", 3, category="b", attrs={"tag": "p"}, amount="5", quantity="1"),  # not matched
    ]
    found = _run(spark, rule, evs, {"a": {"pep": True}})
    assert [f.fire for f in found] == [("s", "e1"), ("s", "e3")]
    assert found == sorted(run_rule(rule, evs, {"a": {"pep": True}}), key=lambda f: (f.group, f.fire))


def test_unsupported_features_name_rule_feature_and_engine(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark import graph as spark_graph

    rule = write_rule(tmp_path, kind="condition", condition="amount > 1")
    odd = dataclasses.replace(rule, condition=ir.Compare("=", ir.Attr("a-b"), ir.Literal("x")))
    with pytest.raises(UnsupportedError) as info:
        SparkEngine(spark).run(odd)
    assert (info.value.rule_id, info.value.engine) == ("t.rule", "spark")
    feature = "the attribute key 'a-b' (not a plain name)"
    assert str(info.value) == f"rule 't.rule': {feature} is not supported by the spark engine"

    # A graph typology without a Spark builder is refused before anything runs.
    cycle = write_rule(tmp_path, kind="graph", typology="cycle", window="1d")
    monkeypatch.delitem(spark_graph.TYPOLOGIES, "cycle")
    with pytest.raises(UnsupportedError, match="the cycle typology is not supported by the spark engine"):
        SparkEngine(spark).run(cycle)


def test_window_is_exact_whatever_the_session_time_zone(spark: Any, tmp_path: Path) -> None:
    # Timestamps are TIMESTAMP_NTZ: a daylight-saving change in the session's zone moves nothing.
    rule = write_rule(
        tmp_path, kind="window", group_by=["actor"], window="1h", aggregates={"n": "count(*)"}, having="n >= 2"
    )
    base = datetime(2024, 3, 10, 1, 30)  # 02:00-03:00 does not exist in New York that night
    evs = [ev("e1", 0, ts=base), ev("e2", 0, ts=base + timedelta(minutes=59, seconds=59, microseconds=999_999))]
    evs.append(ev("e3", 0, ts=base + timedelta(hours=3)))
    evs.append(ev("e4", 0, ts=base + timedelta(hours=4)))  # exactly 1h after e3: outside its window
    zone = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        found = _run(spark, rule, evs)
    finally:
        spark.conf.set("spark.sql.session.timeZone", zone)
    assert [(f.fire, f.evidence, f.first_ts) for f in found] == [(("s", "e2"), (("s", "e1"), ("s", "e2")), base)]
    assert found == run_rule(rule, evs)


def test_scan_of_a_parquet_export(spark: Any, tmp_path: Path) -> None:
    # The route of a real deployment: DuckDB's events written as Parquet, read by Spark.
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import entities_schema, events_schema

    rule = write_rule(
        tmp_path,
        kind="window",
        group_by=["actor"],
        window="3h",
        aggregates={"total": "sum(amount)", "tags": "count_distinct(attrs.tag)"},
        having="total > 10 and tags >= 2",
    )
    evs = [
        ev("e1", 0, amount="4.0001", attrs={"tag": "p"}),
        ev("e2", 1, amount="6", attrs={"tag": "q"}),
        ev("e3", 2, amount="0.0001", attrs={"tag": "q"}),  # the episode goes on: no second alert
    ]
    con = duckdb.connect()
    con.execute(SCHEMA)
    load_duckdb(con, evs, {})
    parquet = tmp_path / "events.parquet"
    con.execute(f"COPY (SELECT {', '.join(EVENT_COLS)} FROM events) TO '{parquet}' (FORMAT parquet)")
    spark.read.schema(events_schema()).parquet(str(parquet)).createOrReplaceTempView("pq_events")
    spark.createDataFrame([], entities_schema()).createOrReplaceTempView("pq_entities")
    found = SparkEngine(spark, events="pq_events", entities="pq_entities").run(rule)
    assert found == DuckDBEngine(con).run(rule) == run_rule(rule, evs)
    assert [(f.fire, f.values_dict) for f in found] == [(("s", "e2"), {"total": Decimal("10.0001"), "tags": 2})]
