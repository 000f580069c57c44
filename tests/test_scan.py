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
