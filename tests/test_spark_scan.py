"""A scan on Spark from a Parquet export of the store: the same alert rows as DuckDB's, written as
Parquet partitioned by date at any Spark path; rules Spark cannot run are reported, not fatal; existing
alerts are not overwritten by accident."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import EVENT_COLS, HAVE_SPARK, ev, load_duckdb, write_rule

from flagstone.alerts import _ARROW_SCHEMA, alert_rows
from flagstone.engines import DuckDBEngine
from flagstone.errors import InputError
from flagstone.rules import ir
from flagstone.store import SCHEMA

pytestmark = pytest.mark.skipif(not HAVE_SPARK, reason="pyspark is not installed")


def test_scan_parquet_matches_duckdb_and_writes_dated_partitions(spark: Any, tmp_path: Path) -> None:
    from flagstone.engines.spark.scan import scan_parquet

    window = write_rule(
        tmp_path,
        kind="window",
        group_by=["actor"],
        window="2h",
        aggregates={"n": "count(*)", "total": "sum(amount)"},
        having="n >= 2 and total > actor.monthly_income",
    )
    # A rule Spark cannot express exactly: an attribute key that is not a plain name.
    odd_key = dataclasses.replace(window, match=ir.Compare("=", ir.Attr("a-b"), ir.Literal("x")))
    odd_key = dataclasses.replace(odd_key, meta=dataclasses.replace(window.meta, id="t.odd"))
    evs = [ev("e1", 0, amount=5), ev("e2", 1, amount=7), ev("e3", 30, amount=3), ev("e4", 31, amount=20)]
    evs += [ev("b1", 2, actor="b", amount=1), ev("b2", 2.5, actor="b", amount=1)]
    entities = {"a": {"monthly_income": 10}, "b": {"monthly_income": 5}}

    con = duckdb.connect()
    con.execute(SCHEMA)
    load_duckdb(con, evs, entities)
    (tmp_path / "events").mkdir()
    part = tmp_path / "events" / "part-0.parquet"
    con.execute(f"COPY (SELECT {', '.join(EVENT_COLS)} FROM events) TO '{part}' (FORMAT parquet)")
    con.execute(f"COPY entities TO '{tmp_path}/entities.parquet' (FORMAT parquet)")

    result = scan_parquet(
        spark, tmp_path / "events", [odd_key, window], entities=tmp_path / "entities.parquet", out=tmp_path / "alerts"
    )
    assert result.unsupported == ["t.odd: the attribute key 'a-b' (not a plain name)"]
    assert [(o.rule.meta.id, o.alerts) for o in result.outcomes] == [("t.odd", 0), ("t.rule", 2)]
    expected = alert_rows(window, DuckDBEngine(con).run(window), 0)
    assert sorted(result.rows, key=lambda r: r["alert_id"]) == sorted(expected, key=lambda r: r["alert_id"])
    assert sorted((r["fire_event_id"], r["evidence"]) for r in expected) == [("e2", ["e1", "e2"]), ("e4", ["e3", "e4"])]

    written = pq.read_table(tmp_path / "alerts").to_pylist()
    assert sorted((str(r["date"]), r["fire_event_id"]) for r in written) == [("2024-01-01", "e2"), ("2024-01-02", "e4")]
    partitions = sorted(p.name for p in (tmp_path / "alerts").iterdir() if p.is_dir())
    assert partitions == ["date=2024-01-01", "date=2024-01-02"]


def test_alerts_go_to_any_spark_path_and_are_not_doubled(spark: Any, tmp_path: Path) -> None:
    # A file:// URI goes through Hadoop's file systems, as s3a:// and hdfs:// do on a cluster.
    from flagstone.engines.spark.scan import alerts_schema, scan_parquet

    rule = write_rule(
        tmp_path, kind="window", group_by=["actor"], window="2h", aggregates={"n": "count(*)"}, having="n >= 2"
    )
    con = duckdb.connect()
    con.execute(SCHEMA)
    load_duckdb(con, [ev("e1", 0), ev("e2", 1), ev("e3", 30)], {})
    con.execute(f"COPY (SELECT {', '.join(EVENT_COLS)} FROM events) TO '{tmp_path}/events.parquet' (FORMAT parquet)")
    out = (tmp_path / "alerts").as_uri()
    first = scan_parquet(spark, (tmp_path / "events.parquet").as_uri(), [rule], out=out)
    assert [r["fire_event_id"] for r in pq.read_table(tmp_path / "alerts").to_pylist()] == ["e2"]
    with pytest.raises(InputError, match="already there; pass --overwrite"):
        scan_parquet(spark, tmp_path / "events.parquet", [rule], out=out)
    again = scan_parquet(spark, tmp_path / "events.parquet", [rule], out=out, overwrite=True)
    written = pq.read_table(tmp_path / "alerts").to_pylist()
    ids = [r["alert_id"] for r in written]
    assert ids == [r["alert_id"] for r in first.rows] == [r["alert_id"] for r in again.rows]
    # The written columns are the store's alert columns, plus the partition.
    assert alerts_schema().names == [*_ARROW_SCHEMA.names, "date"]
