"""A scan on Spark: events from Parquet, alerts to Parquet partitioned by date, at any Spark path.

This is what ``flagstone scan --engine spark`` calls. Paths go through Spark's (Hadoop) file
systems, so a local folder, ``file:///...``, ``hdfs://...`` and ``s3a://...`` (with the cluster's
S3 connector) all work the same. One engine runs every rule, so a profile is counted once per
scan. Rules the Spark engine cannot run are reported (with the ``UnsupportedError`` message) and
the other rules still run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flagstone.alerts import alert_rows
from flagstone.engines.spark import SparkEngine
from flagstone.engines.spark.load import entities_schema, events_schema
from flagstone.errors import InputError, UnsupportedError
from flagstone.rules import ir

EVENTS_VIEW = "flagstone_events"
ENTITIES_VIEW = "flagstone_entities"


@dataclass(frozen=True)
class RuleOutcome:
    rule: ir.Rule
    alerts: int
    seconds: float
    unsupported: str | None = None  # the UnsupportedError's feature when the rule did not run


@dataclass
class SparkScan:
    rows: list[dict[str, Any]] = field(default_factory=list)  # alert rows, as the store keeps them
    outcomes: list[RuleOutcome] = field(default_factory=list)  # one per rule, in order
    seconds: float = 0.0

    @property
    def unsupported(self) -> list[str]:
        """One message per rule the engine could not run."""
        return [f"{o.rule.meta.id}: {o.unsupported}" for o in self.outcomes if o.unsupported is not None]


def scan_parquet(
    spark: Any,
    events: str | Path,
    rules: Iterable[ir.Rule],
    *,
    entities: str | Path | None = None,
    out: str | Path | None = None,
    overwrite: bool = False,
    scan_id: int = 0,
    on_rule: Callable[[RuleOutcome], None] | None = None,
) -> SparkScan:
    """Run ``rules`` over the events Parquet at ``events`` (a file or folder, any Spark path) and,
    when ``out`` is given, write the alerts there as Parquet partitioned by ``date`` (of the firing
    event). ``on_rule`` hears of each rule as soon as it has run."""
    started = time.perf_counter()
    spark.read.schema(events_schema()).parquet(str(events)).createOrReplaceTempView(EVENTS_VIEW)
    if entities is None:
        spark.createDataFrame([], entities_schema()).createOrReplaceTempView(ENTITIES_VIEW)
    else:
        spark.read.schema(entities_schema()).parquet(str(entities)).createOrReplaceTempView(ENTITIES_VIEW)
    engine = SparkEngine(spark, events=EVENTS_VIEW, entities=ENTITIES_VIEW)
    result = SparkScan()
    for rule in rules:
        t = time.perf_counter()
        try:
            rows = alert_rows(rule, engine.run(rule), scan_id)
            outcome = RuleOutcome(rule, len(rows), time.perf_counter() - t)
        except UnsupportedError as exc:
            rows, outcome = [], RuleOutcome(rule, 0, 0.0, exc.feature)
        result.rows.extend(rows)
        result.outcomes.append(outcome)
        if on_rule is not None:
            on_rule(outcome)
    if out is not None:
        write_alerts(spark, result.rows, str(out), overwrite=overwrite)
    result.seconds = time.perf_counter() - started
    return result


def write_alerts(spark: Any, rows: list[dict[str, Any]], out: str, *, overwrite: bool = False) -> None:
    """Alert rows as Parquet under ``out/date=YYYY-MM-DD/``, written by Spark so that any path its
    file systems know works. Existing alerts at ``out`` are refused unless ``overwrite``: a second
    scan into the same place would otherwise double them."""
    local = Path(out)
    if "://" not in out and local.is_dir() and not any(local.iterdir()):
        local.rmdir()  # an empty folder made for the purpose is fine
    frame = spark.createDataFrame([{**r, "date": r["last_ts"].date()} for r in rows], alerts_schema())
    try:
        frame.write.mode("overwrite" if overwrite else "errorifexists").partitionBy("date").parquet(out)
    except Exception as exc:
        if "already exists" in str(exc) or "PATH_ALREADY_EXISTS" in str(exc):
            raise InputError("alerts are already there; pass --overwrite to replace them", path=out) from exc
        raise


def alerts_schema() -> Any:
    """The store's alert columns (``alerts._ARROW_SCHEMA``) as a Spark schema, plus ``date``."""
    from pyspark.sql import types as t

    text, stamp, names = t.StringType(), t.TimestampNTZType(), t.ArrayType(t.StringType(), containsNull=False)
    columns = [
        ("alert_id", text), ("scan_id", t.LongType()), ("rule_id", text), ("rule_version", t.IntegerType()),
        ("severity", text), ("group_key", text), ("first_ts", stamp), ("last_ts", stamp),
        ("fire_source", text), ("fire_event_id", text), ("evidence_sources", names), ("evidence", names),
        ("values", text), ("reason", text), ("date", t.DateType()),
    ]  # fmt: skip
    return t.StructType([t.StructField(name, typ) for name, typ in columns])
