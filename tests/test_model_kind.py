"""The ``model`` rule kind (a model-based detector): the same candidates, features, scores and
alerts from the plain-Python definition, DuckDB and Spark; features from data up to each
candidate's firing event only; rule files checked like any other."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import SCHEMA as STORE_SCHEMA
from conftest import load_duckdb
from detector_model import tiny_detector
from hypothesis import HealthCheck, given, settings
from rule_strategies import events

from flagstone.engines.detector import candidate_sql
from flagstone.engines.duckdb import DuckDBEngine
from flagstone.errors import RuleError
from flagstone.rules import load_rules
from flagstone.rules.kinds.model import FEATURE_NAMES, ModelRule, candidates
from flagstone.rules.oracle import run_rule

pytest.importorskip("lightgbm")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
ALL = "(SELECT source, event_id, ts, actor, counterparty, amount, kind, channel FROM events)"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("detector")


def rule(folder: Path, threshold: float = 0.0, **extra: Any) -> ModelRule:
    model = tiny_detector(folder / "model")
    path = folder / f"rule-{threshold}-{len(extra)}.yaml"
    body = {"id": "t.model", "version": 1, "title": "t", "severity": "low", "kind": "model",
            "model": str(model), "threshold": threshold, **extra}  # fmt: skip
    path.write_text(json.dumps(body))
    loaded = load_rules([path], protected=[]).rules[0]
    assert isinstance(loaded, ModelRule)
    return loaded


def con_with(evs: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(STORE_SCHEMA)
    load_duckdb(con, evs, {})
    return con


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for r in rows:
        r = dict(r)
        keys = sorted(zip(r.pop("evidence_ts"), r.pop("evidence"), r.pop("evidence_sources"), strict=True))
        out[(r["account"], r["win"])] = {**r, "evidence": keys}
    return out


def same_rows(got: dict[Any, dict[str, Any]], want: dict[Any, dict[str, Any]]) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        for name, value in w.items():
            g = got[k][name]
            if isinstance(value, float) and isinstance(g, float):
                assert g == pytest.approx(value, rel=1e-12, abs=1e-12), (k, name)
            else:
                assert g == value, (k, name, g, value)


@SETTINGS
@given(evs=events(max_size=25))
def test_duckdb_candidates_equal_the_oracle(folder: Path, evs: list[dict[str, Any]]) -> None:
    r = rule(folder)
    got = con_with(evs).sql(candidate_sql(ALL, r.window_us)).to_arrow_table().to_pylist()
    want = candidates(evs, {}, r.match, r.window_us).to_pylist()
    same_rows(by_key(got), by_key(want))


@SETTINGS
@given(evs=events(max_size=25))
def test_duckdb_alerts_equal_the_oracle(folder: Path, evs: list[dict[str, Any]]) -> None:
    for threshold in (0.0, 0.5):
        r = rule(folder, threshold)
        got = sorted(DuckDBEngine(con_with(evs)).run(r), key=lambda f: (f.group, f.fire))
        want = sorted(run_rule(r, evs, {}), key=lambda f: (f.group, f.fire))
        assert got == want
        for f in got:
            values = f.values_dict
            assert isinstance(values["priority"], float) and values["priority"] >= threshold
            assert isinstance(values["explanation"], str) and values["explanation"]
            assert f.fire == f.evidence[-1] and f.group[0][0] == "account"


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(evs=events(max_size=25))
def test_spark_gives_the_same_alerts(spark: Any, folder: Path, evs: list[dict[str, Any]]) -> None:
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import create_views

    r = rule(folder)
    create_views(spark, evs, {})
    got = sorted(SparkEngine(spark).run(r), key=lambda f: (f.group, f.fire))
    assert got == sorted(run_rule(r, evs, {}), key=lambda f: (f.group, f.fire))


@SETTINGS
@given(evs=events(max_size=25))
def test_a_later_event_changes_no_earlier_candidate(folder: Path, evs: list[dict[str, Any]]) -> None:
    r = rule(folder)
    before = by_key(candidates(evs, {}, r.match, r.window_us).to_pylist())
    if not evs:
        return
    last = max(e["ts"] for e in evs)
    # A big payment after every event, between accounts already seen: it would move most features.
    planted = {**evs[0], "event_id": "zz-late", "ts": last + timedelta(hours=3), "actor": "a", "counterparty": "k1"}
    after = by_key(candidates([*evs, planted], {}, r.match, r.window_us).to_pylist())
    late = {k for k, row in after.items() if any(eid == "zz-late" for _, eid, _ in row["evidence"])}
    same_rows({k: v for k, v in after.items() if k not in late}, before)


def test_rule_files_are_checked(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="threshold is a priority from 0 to 1"):
        rule(folder, 1.5)
    with pytest.raises(RuleError, match="groups by account"):
        rule(folder, 0.5, group_by=["actor"])
    with pytest.raises(RuleError, match="cannot use the model") as info:
        path = tmp_path / "r.yaml"
        path.write_text("id: t.m\nversion: 1\ntitle: t\nseverity: low\nkind: model\nmodel: nowhere\nthreshold: 0.5\n")
        load_rules([path], protected=[])
    assert info.value.field == "model" and str(path) in str(info.value)
    # A deployment that marks a field the features read protected refuses the rule.
    r = rule(folder, 0.5)
    with pytest.raises(RuleError, match="channel"):
        load_rules([Path(r.meta.path)], protected=["channel"])
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES))
