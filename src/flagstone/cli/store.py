"""Data into and out of the store: ``ingest``, ``export`` (Parquet for other engines) and
``generate`` (demo data to ingest)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flagstone.cli._common import StoreOpt, friendly, out
from flagstone.errors import printable


@friendly
def ingest(
    files: Annotated[list[Path], typer.Argument(help="CSV, JSON-lines or Parquet files to load.")],
    mapping: Annotated[Path, typer.Option("--mapping", "-m", help="Mapping YAML (see docs/mapping.md).")],
    store: StoreOpt = None,
    batch_size: Annotated[int, typer.Option(help="Records per streamed batch (bounds memory).")] = 100_000,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Load files into the store: validate, quarantine bad records, pseudonymise identifiers.

    Prints one reconciliation line per file: read N = loaded L + quarantined Q + duplicates D;
    under it, when records were quarantined, the most frequent reasons, each with an example.
    Loading the same file twice adds nothing; a killed ingest leaves the store as it was.
    """
    from flagstone.audit.events import Ingested
    from flagstone.cli.quarantine import top_reasons
    from flagstone.ingest import ingest_file
    from flagstone.oversight.activity import record
    from flagstone.store import Store, resolve_store_path

    loaded: list[Ingested] = []
    try:
        with Store(store) as st:
            for f in files:
                r = ingest_file(st, f, mapping, batch_size=batch_size, progress=not quiet)
                out.print(printable(r.summary()), markup=False, highlight=False, soft_wrap=True)
                if r.quarantined:  # why, at once: "quarantined 121825" alone leaves a new user guessing
                    for line in top_reasons(st, r.batch_id, store):
                        out.print(line, markup=False, highlight=False, soft_wrap=True)
                loaded.append(Ingested(r.source, r.file, r.batch_id, r.read, r.loaded, r.quarantined, r.duplicates))
    finally:  # the files loaded before a failure are audited too; the case database is opened once
        if loaded:
            record(resolve_store_path(store), loaded)


@friendly
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


@friendly
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
