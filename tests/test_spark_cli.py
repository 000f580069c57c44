"""``flagstone scan --engine spark``: a scan of an export folder gives the DuckDB scan's alerts."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from conftest import REPO, exported_demo
from typer.testing import CliRunner

from flagstone.alerts import alert_rows
from flagstone.cli import app
from flagstone.engines import DuckDBEngine
from flagstone.rules import load_rules
from flagstone.store import Store

# A few packs of cheap kinds keep this quick; tests/test_spark_differential.py runs every pack rule.
PACKS = [str(REPO / "packs" / p) for p in ("aml", "precursors")]
RULE_ARGS = [arg for pack in PACKS for arg in ("--rules", pack)]
# Everything an alert says, apart from the scan it came from.
COMPARED = ["alert_id", "rule_id", "rule_version", "severity", "group_key", "first_ts", "last_ts",
            "fire_source", "fire_event_id", "evidence_sources", "evidence", "values", "reason"]  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    yield from exported_demo(tmp_path_factory.mktemp("spark_cli"), 3_000, 3)


def comparable(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in COMPARED) for r in rows)


def test_spark_scan_of_an_export_equals_the_duckdb_scan(
    spark: Any, exported: tuple[Store, Path], tmp_path: Path
) -> None:
    store, export = exported
    out = tmp_path / "alerts"
    result = CliRunner().invoke(
        app,
        ["scan", "--engine", "spark", "--events", str(export), *RULE_ARGS, "--out", str(out), "--master", "local[1]"],
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    ran = {line.split(" v")[0] for line in lines if " alerts in " in line}
    skipped = {line.split(":")[0] for line in lines if ": not supported on spark (" in line}
    ruleset = load_rules(PACKS)
    assert ran == {r.meta.id for r in ruleset} and not skipped

    expected = [
        row for rule in ruleset if rule.meta.id in ran for row in alert_rows(rule, DuckDBEngine(store.con).run(rule), 0)
    ]
    assert expected, "the demo data fires no supported rule"
    table = pq.read_table(out)  # hive partitions: date=YYYY-MM-DD/
    got = table.to_pylist()
    assert comparable(got) == comparable(expected)
    assert all(str(r["last_ts"].date()) == str(r["date"]) for r in got)
    assert lines[-1] == f"wrote {len(expected)} alerts to {out} (Parquet, partitioned by date)"
    for rule_id in ran:  # each rule's own count
        count = sum(r["rule_id"] == rule_id for r in expected)
        assert any(line.startswith(f"{rule_id} v") and f": {count} alerts in " in line for line in lines)
    assert spark.range(3).count() == 3  # the caller's session is left running


def test_explicit_events_and_entities_paths(spark: Any, exported: tuple[Store, Path], tmp_path: Path) -> None:
    store, export = exported
    out = tmp_path / "alerts"
    args = ["scan", "--engine", "spark", "--events", str(export / "events"), "--entities",
            str(export / "entities.parquet"), "-r", str(REPO / "packs" / "pep"), "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (rule,) = load_rules([REPO / "packs" / "pep"])
    expected = alert_rows(rule, DuckDBEngine(store.con).run(rule), 0)
    got = pq.read_table(out).to_pylist() if out.exists() and any(out.iterdir()) else []
    assert comparable(got) == comparable(expected)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "spark", "--out", "x"], "--engine spark needs --events"),
        (["--engine", "spark", "--events", "x"], "--engine spark needs --events"),
        (["--engine", "spark", "--events", "x", "--out", "y", "--store", "s"], "--store does not apply"),
        (["--out", "x"], "--out only apply to --engine spark"),
        (["--events", "x", "--master", "local[2]"], "--events, --master only apply to --engine spark"),
        (["--conf", "a=b", "--overwrite"], "--conf, --overwrite only apply to --engine spark"),
        (["--engine", "spark", "--events", "x", "--out", "y", "--conf", "nonsense"], "expected KEY=VALUE"),
    ],
)
def test_bad_combinations_are_one_line_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["scan", "-r", str(REPO / "packs" / "aml"), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


def test_missing_pyspark_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # import pyspark now raises ImportError
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    args = ["scan", "--engine", "spark", "--events", str(tmp_path), "--out", str(tmp_path / "a"),
            "-r", str(REPO / "packs" / "aml")]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "pip install 'flagstone[spark]'" in " ".join(result.output.split())


def test_help_explains_the_engines() -> None:
    text = " ".join(CliRunner().invoke(app, ["scan", "--help"]).output.split())
    for word in ("--engine", "--events", "--entities", "--out", "--master", "--conf", "--overwrite", "s3a://",
                 "spark-submit", "Parquet", "flagstone[spark]"):  # fmt: skip
        assert word in text, word


def test_export_folder_as_a_uri_and_a_rule_spark_cannot_run(
    spark: Any, exported: tuple[Store, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flagstone.engines import spark as spark_engine
    from flagstone.rules import ConditionRule

    # As if condition rules had no Spark builder: the one in the pack is reported, the others run.
    monkeypatch.delitem(spark_engine.BUILDERS, ConditionRule)
    store, export = exported
    out = (tmp_path / "alerts").as_uri()
    args = ["scan", "--engine", "spark", "--events", export.as_uri(), "-r", PACKS[1], "--out", out]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "precursors.large_quantity: not supported on spark (the condition rule kind)" in lines
    ran = [line.split(" v")[0] for line in lines if " alerts in " in line]
    assert sorted(ran) == ["precursors.basket"]
    # The export's entities were found through the URI too: the same alerts as DuckDB.
    expected = [
        row for rule in load_rules([PACKS[1]]) if rule.meta.id in ran
        for row in alert_rows(rule, DuckDBEngine(store.con).run(rule), 0)
    ]  # fmt: skip
    assert expected and comparable(pq.read_table(tmp_path / "alerts").to_pylist()) == comparable(expected)

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2
    assert "alerts are already there; pass --overwrite" in " ".join(again.output.split())
    assert CliRunner().invoke(app, [*args, "--overwrite"]).exit_code == 0


def test_missing_events_name_the_path(spark: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    args = ["scan", "--engine", "spark", "--events", str(missing), "-r", PACKS[0], "--out", str(tmp_path / "a")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "no events there" in text and "nowhere" in text


def test_the_documented_spark_submit_command(exported: tuple[Store, Path], tmp_path: Path) -> None:
    # docs/scale.md: the driver runs flagstone's __main__ under spark-submit; the master and the
    # settings come from spark-submit, not from flagstone's options.
    import flagstone.__main__ as entry

    store, export = exported
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    submit = Path(sys.executable).with_name("spark-submit")
    command = [str(submit), "--master", "local[1]", "--conf", "spark.sql.shuffle.partitions=2", entry.__file__,
               "scan", "--engine", "spark", "--events", str(export), "-r", PACKS[0],
               "--out", str(tmp_path / "a")]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rules = load_rules([PACKS[0]])
    expected = [row for rule in rules for row in alert_rows(rule, DuckDBEngine(store.con).run(rule), 0)]
    assert f"wrote {len(expected)} alerts to {tmp_path / 'a'}" in done.stdout
    assert comparable(pq.read_table(tmp_path / "a").to_pylist()) == comparable(expected)
