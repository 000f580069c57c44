"""The Spark engine against the oracle on random sequence (with and without the account view),
dormancy and deviation rules.

The rules and events are those of the kinds' own DuckDB-vs-oracle property tests (coarse time
grid, ties, exact window edges, NULLs, self-transfers, peer groups); fewer examples, since each
one is a Spark job.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import HAVE_SPARK, ev, write_rule
from hypothesis import HealthCheck, given, settings
from kind_strategies import kind_events, ledger_events
from rule_strategies import entities
from test_kind_deviation import deviation_rule
from test_kind_dormancy import dormancy_rule
from test_kind_sequence import accounts_rule, sequence_rule

from flagstone.rules import load_rules
from flagstone.rules.oracle import run_rule

pytestmark = pytest.mark.skipif(not HAVE_SPARK, reason="pyspark is not installed")

SETTINGS = settings(max_examples=18, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _run(spark: Any, rule: Any, evs: list[dict[str, Any]], ents: dict[str, Any] | None = None) -> list[Any]:
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import create_views

    create_views(spark, evs, ents or {})
    return sorted(SparkEngine(spark).run(rule), key=lambda f: (f.group, f.fire))


def spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, name: str, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    path = tmp_path_factory.getbasetemp() / f"spark_{name}" / "rule.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    rule = load_rules([path]).rules[0]
    assert _run(spark, rule, evs, ents) == sorted(run_rule(rule, evs, ents), key=lambda f: (f.group, f.fire))


@SETTINGS
@given(text=sequence_rule(), evs=kind_events(), ents=entities)
def test_sequence_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    spark_equals_oracle(spark, tmp_path_factory, "sequence", text, evs, ents)


@SETTINGS
@given(text=accounts_rule(), evs=ledger_events(), ents=entities)
def test_account_view_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    spark_equals_oracle(spark, tmp_path_factory, "accounts", text, evs, ents)


@SETTINGS
@given(text=dormancy_rule(), evs=kind_events(), ents=entities)
def test_dormancy_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    spark_equals_oracle(spark, tmp_path_factory, "dormancy", text, evs, ents)


@SETTINGS
@given(text=deviation_rule(), evs=kind_events(), ents=entities)
def test_deviation_spark_equals_oracle(
    spark: Any, tmp_path_factory: Any, text: str, evs: list[dict[str, Any]], ents: dict[str, Any]
) -> None:
    spark_equals_oracle(spark, tmp_path_factory, "deviation", text, evs, ents)


def test_sequence_showing_the_earlier_event_identity(spark: Any, tmp_path: Path) -> None:
    # `then` reads A's source and event_id, shown as a_source / a_event_id: the names of the
    # statement's own columns for A's identity, which must not clash with them.
    rule = write_rule(
        tmp_path,
        kind="sequence",
        group_by=["actor"],
        first="amount >= 5",
        within="3h",
        then="source = a.source and event_id > a.event_id and amount < a.amount",
    )
    evs = [ev("e1", 0, amount=9), ev("e2", 1, amount=10), ev("e3", 2, amount=3), ev("e4", 9, amount=1)]
    [found] = _run(spark, rule, evs)
    assert found == run_rule(rule, evs, {})[0]
    assert found.values_dict["a_event_id"] == "e2" and found.values_dict["earlier_events"] == 2
    assert found.evidence == (("s", "e1"), ("s", "e2"), ("s", "e3"))


def test_deviation_even_history_peers_and_nulls(spark: Any, tmp_path: Path) -> None:
    # Peer history at v1 before e5: 10, 13, 20, 30 (e2 has no value): median 16.5, deviations
    # 6.5, 3.5, 3.5, 13.5 -> MAD 5.0.
    rule = write_rule(tmp_path, kind="deviation", history="10h", min_history=4, having="z >= 3", peer_by="place")
    evs = [
        ev("e0", 0, actor="a", place="v1", amount=10),
        ev("e1", 1, actor="c", place="v1", amount=13),
        ev("e2", 2, actor="a", place="v1", amount=None),
        ev("e3", 2, actor="c", place="v1", amount=20),
        ev("e4", 3, actor="a", place="v2", amount=1000),
        ev("e4b", 3, actor="d", place="v1", amount=30),
        ev("e5", 4, actor="b", place="v1", amount=100),
    ]
    [found] = _run(spark, rule, evs)
    assert found == run_rule(rule, evs, {})[0]
    assert found.values_dict == {
        "value": 100.0,
        "median": 16.5,
        "mad": 5.0,
        "z": 83.5 / (1.4826 * 5.0),
        "history_count": 4,
    }
    assert [e for _, e in found.evidence] == ["e0", "e1", "e3", "e4b", "e5"]


def test_dormancy_values_and_evidence(spark: Any, tmp_path: Path) -> None:
    rule = write_rule(tmp_path, kind="dormancy", dormant="10h", awake="4h", value="amount", having="total >= 100")
    evs = [
        ev("e0", 0, amount=1),
        ev("e1", 30, amount="60.5"),
        ev("e2", 31, amount=None),
        ev("e3", 33, amount=40),
        ev("e4", 35, amount=500),
    ]
    [found] = _run(spark, rule, evs)
    assert found == run_rule(rule, evs, {})[0]
    assert found.values_dict == {"dormant_days": 1.25, "events": 3, "total": Decimal("100.5")}
    assert [e for _, e in found.evidence] == ["e0", "e1", "e2", "e3"]
