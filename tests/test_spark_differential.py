"""DuckDB and Spark agree row for row on a few hundred thousand generated events (issue 4).

The demo generator plants every pack's patterns among ordinary traffic; the store is exported to
Parquet as ``flagstone export --parquet`` does, and every pack rule Spark runs is scanned on both
engines: the store on DuckDB, the Parquet on Spark.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, exported_demo

from flagstone.alerts import alert_rows
from flagstone.engines import DuckDBEngine
from flagstone.engines.spark import SparkEngine
from flagstone.engines.spark_scan import scan_parquet
from flagstone.errors import UnsupportedError
from flagstone.rules import load_rules
from flagstone.store import Store

EVENTS = 300_000
PACKS = sorted(p for p in (REPO / "packs").iterdir() if p.is_dir())
COMPARED = ["alert_id", "rule_id", "rule_version", "group_key", "first_ts", "last_ts",
            "fire_source", "fire_event_id", "evidence_sources", "evidence", "values", "reason"]  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    yield from exported_demo(tmp_path_factory.mktemp("spark_diff"), EVENTS, 11)


def rows_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(tuple(r[c] for c in COMPARED) for r in rows)


def test_duckdb_and_spark_alerts_are_equal_row_for_row(spark: Any, exported: tuple[Store, Path]) -> None:
    store, export = exported
    assert store.scalar("SELECT count(*) FROM events") >= 200_000
    ruleset = load_rules(PACKS)
    checker = SparkEngine(spark)
    supported = []
    for rule in ruleset:
        try:
            checker.check_supported(rule)
            supported.append(rule)
        except UnsupportedError:
            continue
    assert len(supported) >= 8, [r.meta.id for r in supported]

    result = scan_parquet(spark, export / "events", supported, entities=export / "entities.parquet")
    assert result.unsupported == []
    expected = [row for rule in supported for row in alert_rows(rule, DuckDBEngine(store.con).run(rule), 0)]
    got = rows_of(result.rows)
    assert len(got) == len(expected)
    assert got == rows_of(expected)
    # Every supported rule fires on the planted patterns, so none is compared on an empty set.
    fired = Counter(r["rule_id"] for r in expected)
    assert set(fired) == {r.meta.id for r in supported}, fired
