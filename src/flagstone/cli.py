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

from flagstone.errors import FlagstoneError

app = typer.Typer(
    name="flagstone",
    help=(
        "Find crime-indicative patterns in event data, explain every alert, keep identities "
        "pseudonymised. Typical flow: generate (or bring your data) -> ingest -> scan -> alerts / "
        "evaluate / report; backtest replays rules and threshold sweeps against labels."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="DuckDB store file. Default: $FLAGSTONE_STORE, else ./flagstone.duckdb.",
        show_default=False,
    ),
]
# Per-deployment thresholds, shared by every command that runs rules.
ParamsOpt = Annotated[
    Path | None, typer.Option("--params", help="YAML of per-deployment thresholds: {rule_id: {param: value}}.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one threshold: RULE_ID.PARAM=VALUE (repeatable)."),
]
F = TypeVar("F", bound=Callable[..., Any])


def _friendly(fn: F) -> F:
    """Print Flagstone's own errors as one line and exit 2, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FlagstoneError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
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
    from flagstone.ingest import ingest_file
    from flagstone.store import Store

    with Store(store) as st:
        for f in files:
            result = ingest_file(st, f, mapping, batch_size=batch_size, progress=not quiet)
            out.print(result.summary(), highlight=False, soft_wrap=True)


@app.command()
@_friendly
def scan(
    rules: Annotated[
        list[Path], typer.Option("--rules", "-r", help="Rule files or pack folders (repeatable).")
    ],
    store: StoreOpt = None,
    params: ParamsOpt = None,
    set_: SetOpt = None,
) -> None:
    """Run rules over the stored events and write their alerts into the store."""
    from flagstone.rules import load_rules
    from flagstone.scan import scan_store
    from flagstone.store import Store

    ruleset = load_rules(rules, params_file=params, overrides=set_ or [])
    with Store(store, create=False) as st:
        result = scan_store(st, ruleset, progress=True)
    for line in result.summary_lines():
        out.print(line, highlight=False, soft_wrap=True)


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
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        n = export_alerts(st, format.value, out_path, rule_id=rule, stdout=sys.stdout)
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
    from flagstone.export import export_parquet
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        result = export_parquet(st, parquet, overwrite=overwrite, progress=not quiet)
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
    rules: Annotated[
        list[Path], typer.Option("--rules", "-r", help="Rule files or pack folders (repeatable).")
    ],
    labels: Annotated[
        Path, typer.Option("--labels", help="Labels CSV, per scenario or per pattern (see docs/backtest.md).")
    ],
    store: StoreOpt = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(
            "--sweep", help="Run one rule for each threshold value: RULE_ID.PARAM=LO:HI:STEP (repeatable)."
        ),
    ] = None,
    out_path: Annotated[
        Path, typer.Option("--out", help="Self-contained HTML file with the sweep plots.")
    ] = Path("backtest.html"),
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
    out.print(f"backtest of {result.events:,} events in {result.seconds:.1f}s; plots written to {path}",
              highlight=False, soft_wrap=True)

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
    from flagstone.report import write_report
    from flagstone.store import Store

    with Store(store, read_only=True) as st:
        path = write_report(st, out_path, labels=labels)
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


def main() -> None:  # pragma: no cover - console entry point
    app()
