"""``flagstone scan``: run the rules over the events, on DuckDB (the store) or on Spark (Parquet)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from flagstone.cli._common import ParamsOpt, SetOpt, StoreOpt, err, friendly, out
from flagstone.errors import InputError


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


@friendly
def scan(
    rules: Annotated[list[Path], typer.Option("--rules", "-r", help="Rule files or pack folders (repeatable).")],
    store: StoreOpt = None,
    params: ParamsOpt = None,
    set_: SetOpt = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="duckdb: scan the store, alerts into the store. spark: scan a Parquet folder "
            "(needs --events and --out; pip install 'flagstone\\[spark]').",
        ),
    ] = Engine.duckdb,
    events: Annotated[
        str | None,
        typer.Option(
            "--events",
            help="Spark only: events Parquet file or folder (any Spark path: local, s3a://, hdfs://), "
            "or a `flagstone export --parquet` folder (then its events/ and entities.parquet are used).",
            show_default=False,
        ),
    ] = None,
    entities: Annotated[
        str | None,
        typer.Option("--entities", help="Spark only: entities Parquet (reference data).", show_default=False),
    ] = None,
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Spark only: where the alerts go (any Spark path: local, s3a://, hdfs://), as Parquet "
            "under date=YYYY-MM-DD/. Existing alerts there are refused unless --overwrite.",
            show_default=False,
        ),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option(
            "--master",
            help="Spark only: Spark master URL, e.g. local[4], yarn, spark://host:7077. Default: the one "
            "spark-submit or spark-defaults.conf gives, else local[*] (every core of this machine).",
            show_default=False,
        ),
    ] = None,
    spark_conf: Annotated[
        list[str] | None,
        typer.Option(
            "--conf",
            help="Spark only: a Spark setting KEY=VALUE (repeatable), e.g. spark.sql.shuffle.partitions=400.",
            show_default=False,
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Spark only: replace the alerts already at --out.")
    ] = False,
) -> None:
    """Run rules over the events and write their alerts.

    With the default --engine duckdb the events come from the store and the alerts go into it.
    With --engine spark the events come from Parquet (--events) and the alerts are written as
    Parquet (--out); rules Spark cannot run yet are reported and skipped, the others still run.
    """
    from flagstone.rules import load_rules

    spark_only = {"--events": events, "--entities": entities, "--out": out_dir}
    if engine is Engine.duckdb:
        given = [name for name, value in spark_only.items() if value is not None]
        if master is not None:
            given.append("--master")
        if spark_conf:
            given.append("--conf")
        if overwrite:
            given.append("--overwrite")
        if given:
            raise InputError(f"{', '.join(given)} only apply to --engine spark (duckdb scans the store)")
    else:
        if store is not None:
            raise InputError("--store does not apply to --engine spark (it reads --events)")
        if events is None or out_dir is None:
            raise InputError("--engine spark needs --events (Parquet events or an export folder) and --out")
    ruleset = load_rules(rules, params_file=params, overrides=set_ or [])
    if engine is Engine.spark:
        assert events is not None and out_dir is not None  # checked above
        _scan_on_spark(ruleset, events, entities, out_dir, master, _spark_settings(spark_conf or []), overwrite)
        return

    from flagstone.oversight.activity import after_scan, before_scan
    from flagstone.scan import scan_store
    from flagstone.store import Store

    with Store(store, create=False) as st:
        before_scan(st)
        result = scan_store(st, ruleset, progress=True)
        scored = (result.model_id, result.scored) if result.model_id else None
        synced = after_scan(st, ruleset, result.scan_id, "duckdb", result.alerts, scored)
    for line in result.summary_lines():
        out.print(line, highlight=False, soft_wrap=True)
    out.print(f"{synced.cases} new cases for review (flagstone web)", highlight=False)


def _spark_settings(pairs: list[str]) -> dict[str, str]:
    settings: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError("expected KEY=VALUE, e.g. spark.sql.shuffle.partitions=400", field="--conf", value=pair)
        settings[key.strip()] = value.strip()
    return settings


def _scan_on_spark(
    ruleset: Any,
    events: str,
    entities: str | None,
    out_dir: str,
    master: str | None,
    settings: dict[str, str],
    overwrite: bool,
) -> None:
    """``flagstone scan --engine spark``: one line per rule, then where the alerts went."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        # Printed here, not via friendly: rich markup would swallow the "[spark]".
        err.print("[bold red]error:[/] --engine spark needs pyspark: pip install 'flagstone\\[spark]'", markup=True)
        raise typer.Exit(2) from exc
    from flagstone.engines.spark.scan import RuleOutcome, scan_parquet

    def report(outcome: RuleOutcome) -> None:
        meta = outcome.rule.meta
        if outcome.unsupported is not None:
            line = f"{meta.id}: not supported on spark ({outcome.unsupported})"
        else:
            line = f"{meta.id} v{meta.version}: {outcome.alerts} alerts in {outcome.seconds:.2f}s"
        out.print(line, highlight=False, soft_wrap=True)

    # In-process callers (tests, notebooks) may already have a session; only stop one we started.
    started_here = SparkSession.getActiveSession() is None
    builder = SparkSession.builder.appName("flagstone").config("spark.sql.session.timeZone", "UTC")
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    if master is not None:  # otherwise spark-submit's, spark-defaults.conf's or local[*]
        builder = builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        if started_here:
            spark.sparkContext.setLogLevel("ERROR")
        events, entities = _export_parts(spark, events, entities)
        result = scan_parquet(
            spark, events, ruleset, entities=entities, out=out_dir, overwrite=overwrite, on_rule=report
        )
    finally:
        if started_here:
            spark.stop()
    out.print(
        f"wrote {len(result.rows)} alerts to {out_dir} (Parquet, partitioned by date)", highlight=False, soft_wrap=True
    )


def _export_parts(spark: Any, events: str, entities: str | None) -> tuple[str, str | None]:
    """A `flagstone export --parquet` folder stands for its events/ and entities.parquet; any
    other path is the events themselves. Paths are looked up through Spark's file systems."""
    jvm = spark.sparkContext._jvm  # Hadoop's FileSystem API: the same view of paths as Spark's
    conf = spark.sparkContext._jsc.hadoopConfiguration()

    def exists(path: str) -> bool:
        hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
        return bool(hadoop_path.getFileSystem(conf).exists(hadoop_path))

    base = events.rstrip("/")
    if not exists(base):
        raise InputError("no events there (a Parquet file or folder, or an export folder)", path=events)
    if exists(f"{base}/events"):
        events = f"{base}/events"
        if entities is None and exists(f"{base}/entities.parquet"):
            entities = f"{base}/entities.parquet"
    return events, entities
