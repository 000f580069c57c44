"""Export the canonical store to Parquet, so that engines other than DuckDB (Spark) can scan it.

Layout of the export folder (``DIR``)::

    DIR/events/date=YYYY-MM-DD/data_0.parquet   events, hive-partitioned by the UTC date of `ts`
    DIR/entities.parquet                         the entities reference table
    DIR/catalogue.parquet                        the catalogue reference table

Columns keep the canonical types of ``flagstone.events`` (DECIMAL(18,4), TIMESTAMP without time
zone in microseconds, text) plus the store's ``batch_id`` (and ``source`` of the reference tables),
which the engines need to let the latest load of an entity win. ``attrs`` is written as plain
text (its JSON, unchanged) so that every Parquet reader understands it. The ``date`` partition
column is not inside the files; readers get it from the folder names. The ``identities`` table
(the encrypted real identifiers) is never exported: the export holds pseudonyms only.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from flagstone.errors import InputError
from flagstone.events import CATALOGUE_COLUMNS, ENTITY_COLUMNS, EVENT_COLUMNS, Column
from flagstone.store import Store

EVENTS_DIR = "events"
ENTITIES_FILE = "entities.parquet"
CATALOGUE_FILE = "catalogue.parquet"
PARTITION_COLUMN = "date"
# Written first, then moved into place, so a failed export leaves DIR as it was. Spark and
# DuckDB globs skip names starting with a dot.
STAGING = ".flagstone-export-tmp"
OUTPUTS = (EVENTS_DIR, ENTITIES_FILE, CATALOGUE_FILE)

# Store bookkeeping kept next to the canonical columns (name, SQL type).
EVENT_EXTRA: tuple[tuple[str, str], ...] = (("batch_id", "BIGINT"),)
REFERENCE_EXTRA: tuple[tuple[str, str], ...] = (("source", "VARCHAR"), ("batch_id", "BIGINT"))


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    events: int
    partitions: int
    files: int
    entities: int
    catalogue: int
    seconds: float

    def summary(self) -> str:
        return (
            f"exported {self.events:,} events in {self.partitions:,} date partitions ({self.files:,} files), "
            f"{self.entities:,} entities and {self.catalogue:,} catalogue items to {self.out_dir} "
            f"in {self.seconds:.1f}s (identities not exported)"
        )


def _parquet_type(col: Column) -> str:
    # JSON travels as its text: not every Parquet reader knows DuckDB's JSON annotation.
    return "VARCHAR" if col.type == "json" else col.sql_type


def _select(table: str, cols: tuple[Column, ...], extra: tuple[tuple[str, str], ...]) -> str:
    parts = [f"CAST({c.name} AS {_parquet_type(c)}) AS {c.name}" for c in cols]
    parts += [f"CAST({name} AS {sql_type}) AS {name}" for name, sql_type in extra]
    return f"SELECT {', '.join(parts)} FROM {table}"


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _prepare(out_dir: Path, overwrite: bool) -> Path:
    """Check DIR may be written and return a fresh staging folder inside it."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("exists and is not a folder", path=out_dir)
    staging = out_dir / STAGING
    if staging.exists():  # left by an export that was killed; ours by name
        shutil.rmtree(staging)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise InputError("folder is not empty; pass --overwrite to replace an earlier export", path=out_dir)
    staging.mkdir(parents=True)
    return staging


def _publish(staging: Path, out_dir: Path) -> None:
    """Replace the previous export's outputs (only those) by the staged ones."""
    for name in OUTPUTS:
        old = out_dir / name
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        (staging / name).rename(old)
    staging.rmdir()


def _copy(con: duckdb.DuckDBPyConnection, select: str, target: Path, options: str) -> int:
    rows = con.execute(f"COPY ({select}) TO {_quote(target)} (FORMAT parquet{options})").fetchall()
    return int(rows[0][0]) if rows else 0


def export_parquet(store: Store, out_dir: Path, *, overwrite: bool = False, progress: bool = True) -> ExportResult:
    """Write the store's events (partitioned by date), entities and catalogue as Parquet under ``out_dir``."""
    began = time.perf_counter()
    out_dir = Path(out_dir)
    staging = _prepare(out_dir, overwrite)
    con = store.con
    events_select = (
        f"SELECT *, CAST(ts AS DATE) AS {PARTITION_COLUMN} FROM ({_select('events', EVENT_COLUMNS, EVENT_EXTRA)})"
    )
    steps = [
        ("events", events_select, staging / EVENTS_DIR, f", PARTITION_BY ({PARTITION_COLUMN})"),
        ("entities", _select("entities", ENTITY_COLUMNS, REFERENCE_EXTRA), staging / ENTITIES_FILE, ""),
        ("catalogue", _select("catalogue", CATALOGUE_COLUMNS, REFERENCE_EXTRA), staging / CATALOGUE_FILE, ""),
    ]
    counts: dict[str, int] = {}
    try:
        with Progress(
            SpinnerColumn(),
            TextColumn("[bold]export[/] {task.description}"),
            TimeElapsedColumn(),
            disable=not progress,
            transient=True,
        ) as bar:
            for name, select, target, options in steps:
                task = bar.add_task(name, total=None)
                counts[name] = _copy(con, select, target, options)
                bar.remove_task(task)
        # An empty events table writes no partition; keep the folder so the layout is always whole.
        (staging / EVENTS_DIR).mkdir(exist_ok=True)
        files = sorted((staging / EVENTS_DIR).glob(f"{PARTITION_COLUMN}=*/*.parquet"))
        _publish(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ExportResult(
        out_dir=out_dir,
        events=counts["events"],
        partitions=len({f.parent.name for f in files}),
        files=len(files),
        entities=counts["entities"],
        catalogue=counts["catalogue"],
        seconds=time.perf_counter() - began,
    )


def events_glob(out_dir: Path) -> str:
    """The glob of every events file of an export (read with ``hive_partitioning``)."""
    return str(Path(out_dir) / EVENTS_DIR / "**" / "*.parquet")


def _view_columns(cols: tuple[Column, ...], extra: tuple[tuple[str, str], ...]) -> str:
    parts = [f"CAST({c.name} AS {c.sql_type}) AS {c.name}" for c in cols]
    parts += [f"CAST({name} AS {sql_type}) AS {name}" for name, sql_type in extra]
    return ", ".join(parts)


def attach_export(con: duckdb.DuckDBPyConnection, out_dir: Path, *, prefix: str = "") -> None:
    """Create views ``{prefix}events``, ``{prefix}entities`` and ``{prefix}catalogue`` over an
    export, with exactly the store's column types, so any DuckDB query of the store runs on it."""
    out_dir = Path(out_dir)
    if not (out_dir / EVENTS_DIR).is_dir():
        raise InputError("not a Flagstone Parquet export (no events folder)", path=out_dir)
    events_cols = _view_columns(EVENT_COLUMNS, EVENT_EXTRA)
    if any((out_dir / EVENTS_DIR).glob(f"{PARTITION_COLUMN}=*/*.parquet")):
        source = f"read_parquet({_quote(Path(events_glob(out_dir)))}, hive_partitioning = true)"
        events = f"SELECT {events_cols} FROM {source}"
    else:  # no events: an empty view of the right shape
        nulls = ", ".join(f"NULL AS {c.name}" for c in EVENT_COLUMNS) + ", NULL AS batch_id"
        events = f"SELECT {events_cols} FROM (SELECT {nulls}) WHERE false"
    con.execute(f"CREATE OR REPLACE VIEW {prefix}events AS {events}")
    for name, file, cols in (
        ("entities", ENTITIES_FILE, ENTITY_COLUMNS),
        ("catalogue", CATALOGUE_FILE, CATALOGUE_COLUMNS),
    ):
        con.execute(
            f"CREATE OR REPLACE VIEW {prefix}{name} AS SELECT {_view_columns(cols, REFERENCE_EXTRA)} "
            f"FROM read_parquet({_quote(out_dir / file)})"
        )
