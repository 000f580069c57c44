"""Scanning a real store file: alerts stored once, explained, exported; the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import REPO, ev, load_duckdb
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

AML = REPO / "packs" / "aml"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    st = Store(tmp_path / "flagstone.duckdb")
    events = [
        ev("d1", 0, kind="cash_deposit", amount="9500.00"),
        ev("d2", 30, kind="cash_deposit", amount="9900.00"),
        ev("d3", 60, kind="cash_deposit", amount="9100.00"),
        ev("d4", 61, kind="cash_deposit", amount="9999.99"),  # same episode: no second alert
        # a near miss: two deposits only
        ev("n1", 0, actor="b", kind="cash_deposit", amount="9500.00"),
        ev("n2", 1, actor="b", kind="cash_deposit", amount="9500.00"),
    ]
    load_duckdb(st.con, events, {})
    yield st
    st.close()


def test_scan_stores_explained_alerts_once(store: Store) -> None:
    rules = load_rules([AML])
    first = scan_store(store, rules, progress=False)
    assert first.alerts == 1
    row = store.con.execute(
        'SELECT rule_id, rule_version, severity, group_key, fire_event_id, evidence, "values", reason, '
        "first_ts, last_ts FROM alerts"
    ).fetchall()[0]
    rule_id, version, severity, group, fire, evidence, values, reason, first_ts, last_ts = row
    assert (rule_id, version, severity, group, fire) == ("aml.structuring", 1, "high", "actor=a", "d3")
    assert evidence == ["d1", "d2", "d3"]
    assert json.loads(values) == {"deposits": 3, "total": "28500"}
    assert reason == "3 cash deposits totalling 28,500.00 within 7d, each just under the 10,000 threshold"
    assert (last_ts - first_ts).total_seconds() == 60 * 3600

    again = scan_store(store, rules, progress=False)
    assert again.alerts == 1 and sum(o.new for o in again.outcomes) == 0
    assert store.scalar("SELECT count(*) FROM alerts") == 1
    assert store.scalar("SELECT count(*) FROM scans WHERE finished_at IS NOT NULL") == 2


def test_thresholds_are_configurable(store: Store) -> None:
    rules = load_rules([AML], overrides=["aml.structuring.min_deposits=2"])
    scan_store(store, rules, progress=False)
    fired = store.con.execute("SELECT group_key, fire_event_id FROM alerts ORDER BY 1").fetchall()
    assert fired == [("actor=a", "d2"), ("actor=b", "n2")]


def test_cli_scan_and_export(store: Store, tmp_path: Path) -> None:
    path = str(store.path)
    store.close()
    cli = CliRunner()
    result = cli.invoke(app, ["scan", "--rules", str(AML), "--store", path])
    assert result.exit_code == 0, result.output
    assert "aml.structuring v1: 1 alerts" in result.output

    result = cli.invoke(app, ["alerts", "--format", "jsonl", "--store", path])
    assert result.exit_code == 0, result.output
    (line,) = result.stdout.strip().splitlines()
    alert = json.loads(line)
    assert alert["rule_id"] == "aml.structuring" and alert["evidence"] == ["d1", "d2", "d3"]
    assert alert["values"] == {"deposits": 3, "total": "28500"}

    out = tmp_path / "alerts.parquet"
    result = cli.invoke(app, ["alerts", "--format", "parquet", "--out", str(out), "--store", path])
    assert result.exit_code == 0, result.output
    assert pq.read_table(out).column("fire_event_id").to_pylist() == ["d3"]


def test_cli_reports_rule_errors_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nversion: 1\ntitle: t\nseverity: low\nkind: condition\ncondition: amount >> 3\n")
    result = CliRunner().invoke(app, ["scan", "--rules", str(bad), "--store", str(tmp_path / "s.duckdb")])
    assert result.exit_code == 2
    assert f"{bad}:6" in result.output and "condition" in result.output


@pytest.mark.parametrize("command", [["alerts"], ["scan", "--rules", str(AML)]])
def test_missing_store_is_a_clear_error(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "none.duckdb"
    result = CliRunner().invoke(app, [*command, "--store", str(missing)])
    assert result.exit_code == 2 and "no such store" in result.output
    assert not missing.exists()


def test_parameters_are_part_of_what_identifies_alerts(store: Store, tmp_path: Path) -> None:
    # Re-scanning with other thresholds keeps the first alerts but does not mix them in: evaluate
    # and report count one parameter set per rule, the latest, unless told which.
    from flagstone.evaluate import current_alerts_sql, evaluate_store

    labels = tmp_path / "labels.csv"
    labels.write_text(
        "scenario_id,rule_id,label,source,event_id\ns1,aml.structuring,suspicious,s,d1\n"
        "s2,aml.structuring,suspicious,s,n1\n"
    )
    own = load_rules([AML])
    scan_store(store, own, progress=False)
    first = {a for (a,) in store.con.execute("SELECT alert_id FROM alerts").fetchall()}
    assert own.by_id("aml.structuring").meta.param_set == ""  # the file's own: ids as they always were

    two = load_rules([AML], overrides=["aml.structuring.min_deposits=2"])
    set_id = two.by_id("aml.structuring").meta.param_set
    assert len(set_id) == 12
    result = scan_store(store, two, progress=False)
    assert f"aml.structuring v1 (parameter set {set_id}): 2 alerts (2 new)" in "\n".join(result.summary_lines())
    # The same finding (actor a) under other parameters is another alert; both are kept.
    assert store.scalar("SELECT count(*) FROM alerts WHERE rule_id = 'aml.structuring'") == 3

    def current(param_sets: dict[str, str] | None = None) -> set[str]:
        sql = current_alerts_sql(param_sets)
        return {
            a
            for (a,) in store.con.execute(f"SELECT alert_id FROM ({sql}) WHERE rule_id = 'aml.structuring'").fetchall()
        }

    latest = current()
    assert len(latest) == 2 and not latest & first
    assert current({"aml.structuring": ""}) == first  # told otherwise: the file's own
    (score,) = [s for s in evaluate_store(store, labels) if s.rule_id == "aml.structuring"]
    assert (score.alerts, score.detected) == (2, 2)
    (score,) = [
        s for s in evaluate_store(store, labels, param_sets={"aml.structuring": ""}) if s.rule_id == "aml.structuring"
    ]
    assert (score.alerts, score.detected) == (1, 1)

    # Back to the file's own: nothing new is stored, and those are current again.
    again = scan_store(store, own, progress=False)
    assert sum(o.new for o in again.outcomes) == 0 and current() == first

    cli = CliRunner()
    path = str(store.path)
    store.close()
    shown = cli.invoke(
        app, ["evaluate", "--store", path, "--labels", str(labels), "--param-set", f"aml.structuring={set_id}"]
    )
    assert shown.exit_code == 0, shown.output
    row = next(line.split() for line in shown.output.splitlines() if line.strip().startswith("aml.structuring"))
    assert row[1:5] == ["2", "2", "1.00", "2"]
    bad = cli.invoke(app, ["evaluate", "--store", path, "--labels", str(labels), "--param-set", "nonsense"])
    assert bad.exit_code != 0 and "--param-set" in bad.output
