"""A scan on Spark: events from a Parquet folder, alerts to a Parquet folder partitioned by date.

This is what ``flagstone scan --engine spark`` is meant to call. Rules the Spark engine cannot run
yet are reported (with the ``UnsupportedError`` message) and the other rules still run.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from flagstone.alerts import _ARROW_SCHEMA, alert_rows
from flagstone.engines.spark import SparkEngine
from flagstone.engines.spark_load import entities_schema, events_schema
from flagstone.errors import UnsupportedError
from flagstone.rules import ir

EVENTS_VIEW = "flagstone_events"
ENTITIES_VIEW = "flagstone_entities"


@dataclass
class SparkScan:
    rows: list[dict[str, Any]] = field(default_factory=list)  # alert rows, as the store keeps them
    unsupported: list[str] = field(default_factory=list)  # one UnsupportedError message per rule
    seconds: float = 0.0


def scan_parquet(
    spark: Any,
    events: str | Path,
    rules: Iterable[ir.Rule],
    *,
    entities: str | Path | None = None,
    out: str | Path | None = None,
    scan_id: int = 0,
) -> SparkScan:
    """Run ``rules`` over the events Parquet at ``events`` (a file or folder, any Spark path);
    write the alerts under ``out`` as Parquet partitioned by ``date`` (of the firing event)."""
    started = time.perf_counter()
    spark.read.schema(events_schema()).parquet(str(events)).createOrReplaceTempView(EVENTS_VIEW)
    if entities is None:
        spark.createDataFrame([], entities_schema()).createOrReplaceTempView(ENTITIES_VIEW)
    else:
        spark.read.schema(entities_schema()).parquet(str(entities)).createOrReplaceTempView(ENTITIES_VIEW)
    engine = SparkEngine(spark, events=EVENTS_VIEW, entities=ENTITIES_VIEW)
    result = SparkScan()
    for rule in rules:
        try:
            findings = engine.run(rule)
        except UnsupportedError as exc:
            result.unsupported.append(str(exc))
            continue
        result.rows.extend(alert_rows(rule, findings, scan_id))
    if out is not None:
        write_alerts(result.rows, Path(out))
    result.seconds = time.perf_counter() - started
    return result


def write_alerts(rows: list[dict[str, Any]], out: Path) -> None:
    """Alert rows as Parquet under ``out/date=YYYY-MM-DD/``."""
    table = pa.Table.from_pylist(rows, schema=_ARROW_SCHEMA)
    dates = pa.array([r["last_ts"].date() for r in rows], type=pa.date32())
    out.mkdir(parents=True, exist_ok=True)
    if rows:
        pq.write_to_dataset(table.append_column("date", dates), out, partition_cols=["date"])
