"""A scan on Spark from a Parquet export of the store: the same alert rows as DuckDB's, written as
Parquet partitioned by date; rules Spark cannot run yet are reported, not fatal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import EVENT_COLS, HAVE_SPARK, ev, load_duckdb, write_rule

from flagstone.alerts import alert_rows
from flagstone.engines import DuckDBEngine
from flagstone.store import SCHEMA

pytestmark = pytest.mark.skipif(not HAVE_SPARK, reason="pyspark is not installed")


def test_scan_parquet_matches_duckdb_and_writes_dated_partitions(spark: Any, tmp_path: Path) -> None:
    from flagstone.engines.spark_scan import scan_parquet

    window = write_rule(
        tmp_path,
        kind="window",
        group_by=["actor"],
        window="2h",
        aggregates={"n": "count(*)", "total": "sum(amount)"},
        having="n >= 2 and total > actor.monthly_income",
    )
    dormancy = write_rule(tmp_path, kind="dormancy", dormant="10h", awake="4h", having="total >= 100")
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
        spark, tmp_path / "events", [window, dormancy], entities=tmp_path / "entities.parquet", out=tmp_path / "alerts"
    )
    assert result.unsupported == ["rule 't.rule': the dormancy rule kind is not supported by the spark engine"]
    expected = alert_rows(window, DuckDBEngine(con).run(window), 0)
    assert sorted(result.rows, key=lambda r: r["alert_id"]) == sorted(expected, key=lambda r: r["alert_id"])
    assert sorted((r["fire_event_id"], r["evidence"]) for r in expected) == [("e2", ["e1", "e2"]), ("e4", ["e3", "e4"])]

    written = pq.read_table(tmp_path / "alerts").to_pylist()
    assert sorted((str(r["date"]), r["fire_event_id"]) for r in written) == [("2024-01-01", "e2"), ("2024-01-02", "e4")]
    assert sorted(p.name for p in (tmp_path / "alerts").iterdir()) == ["date=2024-01-01", "date=2024-01-02"]
