"""The ``flagstone`` command line. Each command is a thin shell over one module's function.

Heavy modules are imported inside the commands so that ``flagstone --help`` is fast and works
with the core dependencies alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from flagstone.cli_options import StoreOpt
from flagstone.errors import FlagstoneError, InputError, printable

app = typer.Typer(
    name="flagstone",
    help=(
        "Find crime-indicative patterns in event data, explain every alert, keep identities "
        "pseudonymised. Typical flow: generate (or bring your data) -> ingest -> scan -> cases reviewed "
        "in `flagstone web` (four eyes before any report); alerts / evaluate / report / backtest to "
        "study the rules; every action goes into the audit log (`flagstone audit verify`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins a docstring's wrapped lines into paragraphs (blank lines separate them).
    rich_markup_mode="markdown",
)
err = Console(stderr=True, markup=False)  # names and values from files and users are never markup
out = Console(markup=False)

# Per-deployment thresholds, shared by every command that runs rules.
ParamsOpt = Annotated[
    Path | None, typer.Option("--params", help="YAML of per-deployment thresholds: {rule_id: {param: value}}.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one threshold: RULE_ID.PARAM=VALUE (repeatable)."),
]
F = TypeVar("F", bound=Callable[..., Any])


def print_error(exc: BaseException) -> None:
    """The one place an error reaches the terminal: one line, its user-given parts (file names,
    headers, values) escaped, and never read as rich markup."""
    err.print(Text.assemble(("error:", "bold red"), " ", printable(str(exc))), highlight=False, soft_wrap=True)


def _friendly(fn: F) -> F:
    """Print Flagstone's own errors as one line and exit 2, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FlagstoneError as exc:
            print_error(exc)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


@app.command()
@_friendly
def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV, JSON-lines or Parquet files to load.")],
    mapping: Annotated[Path, typer.Option("--mapping", "-m", help="Mapping YAML (see docs/mapping.md).")],
    store: StoreOpt = None,
    batch_size: Annotated[int, typer.Option(help="Records per streamed batch (bounds memory).")] = 100_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Load files into the store: validate, quarantine bad records, pseudonymise identifiers.

    Prints one reconciliation line per file: read N = loaded L + quarantined Q + duplicates D.
    Loading the same file twice adds nothing; a killed ingest leaves the store as it was.
    """
    from flagstone.audit.events import Ingested
    from flagstone.ingest import ingest_file
    from flagstone.oversight.activity import record
    from flagstone.store import Store, resolve_store_path

    loaded: list[Ingested] = []
    try:
        with Store(store) as st:
            for f in files:
                r = ingest_file(st, f, mapping, batch_size=batch_size, progress=not quiet)
                out.print(printable(r.summary()), markup=False, highlight=False, soft_wrap=True)
                loaded.append(Ingested(r.source, r.file, r.batch_id, r.read, r.loaded, r.quarantined, r.duplicates))
    finally:  # the files loaded before a failure are audited too; the case database is opened once
        if loaded:
            record(resolve_store_path(store), loaded)


class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


@app.command()
@_friendly
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

    from flagstone.oversight.activity import after_scan
    from flagstone.scan import scan_store
    from flagstone.store import Store

    with Store(store, create=False) as st:
        result = scan_store(st, ruleset, progress=True)
        synced = after_scan(st, ruleset, result.scan_id, "duckdb", result.alerts)
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
        # Printed here, not via _friendly: rich markup would swallow the "[spark]".
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


class AlertFormat(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"


@app.command()
@_friendly
def alerts(
    store: StoreOpt = None,
    format: Annotated[AlertFormat, typer.Option("--format", help="Output format.")] = AlertFormat.jsonl,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Output file (required for parquet; jsonl goes to stdout).")
    ] = None,
    rule: Annotated[str | None, typer.Option(help="Only alerts of this rule id.")] = None,
) -> None:
    """Export the alerts in the store, with their evidence and computed values."""
    from flagstone.alerts import export_alerts
    from flagstone.audit.events import Exported
    from flagstone.oversight.activity import record
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        n = export_alerts(st, format.value, out_path, rule_id=rule, stdout=sys.stdout)
        path = st.path
    record(path, [Exported(f"alerts ({format.value})", str(out_path or "stdout"), n)])
    if out_path is not None:
        err.print(f"wrote {n} alerts to {out_path}")


@app.command()
@_friendly
def export(
    parquet: Annotated[
        Path, typer.Option("--parquet", help="Folder to write the Parquet export into (created if missing).")
    ],
    store: StoreOpt = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier export in a folder that is not empty.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress indication.")] = False,
) -> None:
    """Export the store as Parquet for other engines (e.g. Spark): events, entities and catalogue.

    Writes DIR/events/date=YYYY-MM-DD/*.parquet (by date of ts), DIR/entities.parquet and DIR/catalogue.parquet.

    Types are the store's (DECIMAL(18,4), TIMESTAMP without time zone, attrs as JSON text): reading back is lossless.

    Identifiers are already pseudonymised; the identities table (real values, encrypted) is never exported.

    A folder that is not empty is refused unless --overwrite, which replaces only those three outputs.
    """
    from flagstone.audit.events import Exported
    from flagstone.export import export_parquet
    from flagstone.oversight.activity import record
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        result = export_parquet(st, parquet, overwrite=overwrite, progress=not quiet)
        path = st.path
    record(path, [Exported("store (parquet)", str(parquet), result.events)])
    out.print(result.summary(), highlight=False, soft_wrap=True)


@app.command()
@_friendly
def evaluate(
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="Labels CSV: per scenario (labels.csv of `flagstone generate`) or per pattern "
            "(pattern_id,typology,source,event_id); see docs/backtest.md.",
        ),
    ],
    store: StoreOpt = None,
) -> None:
    """Per-rule precision and recall of the stored alerts against labelled scenarios or patterns."""
    from flagstone.evaluate import evaluate_store, render_scores
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        scores = evaluate_store(st, labels)
    out.print(render_scores(scores))


@app.command()
@_friendly
def backtest(
    rules: Annotated[list[Path], typer.Option("--rules", "-r", help="Rule files or pack folders (repeatable).")],
    labels: Annotated[
        Path, typer.Option("--labels", help="Labels CSV, per scenario or per pattern (see docs/backtest.md).")
    ],
    store: StoreOpt = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option("--sweep", help="Run one rule for each threshold value: RULE_ID.PARAM=LO:HI:STEP (repeatable)."),
    ] = None,
    out_path: Annotated[Path, typer.Option("--out", help="Self-contained HTML file with the sweep plots.")] = Path(
        "backtest.html"
    ),
    params: ParamsOpt = None,
    set_: SetOpt = None,
) -> None:
    """Replay rules over the stored events and score them against labels, without storing alerts.

    Per rule: alerts, alerts per 1,000 stored events, precision and recall (docs/backtest.md).

    --sweep repeats them for every threshold value: tables here, above-/below-the-line plots in --out.
    """
    from flagstone.backtest import render_backtest, run_backtest
    from flagstone.report import write_backtest_report
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        result = run_backtest(
            st, rules, labels, sweeps=sweep or [], params_file=params, overrides=set_ or [], progress=True
        )
    for table in render_backtest(result):
        out.print(table)
    path = write_backtest_report(result, out_path)
    out.print(
        f"backtest of {result.events:,} events in {result.seconds:.1f}s; plots written to {path}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
@_friendly
def report(
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path("report.html"),
    store: StoreOpt = None,
    labels: Annotated[
        Path | None, typer.Option("--labels", help="Optional labels.csv to include precision/recall.")
    ] = None,
) -> None:
    """Write one self-contained HTML report (opens offline): alerts over time, severities, top groups,
    and each alert's evidence timeline."""
    from flagstone.audit.events import Exported
    from flagstone.oversight.activity import record
    from flagstone.report import write_report
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        path = write_report(st, out_path, labels=labels)
        n = int(st.scalar("SELECT count(*) FROM alerts"))
        store_path = st.path
    record(store_path, [Exported("report (html)", str(path), n)])
    out.print(f"report written to {path}")


@app.command()
@_friendly
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the demo data into.")] = Path("demo"),
    events: Annotated[int, typer.Option(help="Approximate number of events in all.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 1,
) -> None:
    """Write realistic demo data for bank, shop and transit sources, with planted labelled
    scenarios for every shipped rule, near-miss decoys, mappings and labels.csv."""
    from flagstone.generate import generate_demo

    info = generate_demo(out_dir, events=events, seed=seed, progress=True)
    out.print(info.summary(), highlight=False)


def _register_serve() -> None:
    # Defined in their own module (the web stack is imported only when they run).
    from flagstone.cli_serve import keys_app, keys_create, keys_list, keys_revoke, serve

    app.command()(_friendly(serve))
    keys_app.command("create")(_friendly(keys_create))
    keys_app.command("list")(_friendly(keys_list))
    keys_app.command("revoke")(_friendly(keys_revoke))
    app.add_typer(keys_app)


_register_serve()


def _register_oversight() -> None:
    from flagstone.cli_oversight import register

    register(app, _friendly)


_register_oversight()


def _register_quarantine() -> None:
    from flagstone.cli_quarantine import register

    register(app, _friendly)


_register_quarantine()


@app.callback()
def _owner_only() -> None:
    # Every file a command makes is its owner's only (flagstone.owner_only): exports and reports
    # hold pseudonymised personal data, the rest more.
    from flagstone.owner_only import owner_only_umask

    owner_only_umask()


def main() -> None:  # pragma: no cover - console entry point
    app()
