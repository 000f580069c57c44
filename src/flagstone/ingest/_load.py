"""``ingest_file``: stream one file through conversion into the store, in one transaction.

Per batch: pseudonymise the personal values not seen before (and encrypt their identities), then
one SQL query converts and checks every record and appends it to a staging table, with its first
problem if it has one; bad records go to quarantine at once, their identifiers protected like
accepted ones and their raw text encrypted (``_quarantine``). At the end of the
file one set-based step finds duplicates (within the file: first record wins; against the store:
by source and key) and moves the rest to the target table. Doing the store anti-join once per
file, instead of once per batch, keeps an ingest linear in file size plus store size rather than
their product.

Because everything runs inside ``Store.transaction()``, an ingest that fails or is killed leaves
the store exactly as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from flagstone.errors import InputError, printable
from flagstone.ingest._convert import CATALOGUE_VIEW, ERR, ERR_TYPE, Conversion, build
from flagstone.ingest._csv import CsvSource, NeedsExactReader
from flagstone.ingest._identities import Identities
from flagstone.ingest._mapping import Mapping, load_mapping
from flagstone.ingest._pseudonym import Pseudonymiser
from flagstone.ingest._quarantine import Quarantine, Rejected, seal_legacy
from flagstone.ingest._sources import (
    BATCH_VIEW,
    REC,
    JsonLinesSource,
    ParquetSource,
    Reject,
    Source,
    query_arrow,
    quote_ident,
    quote_str,
)
from flagstone.store import Store

# A real (not temp) table, created and dropped inside the ingest's transaction: DuckDB writes large
# uncommitted appends to the database file as they fill, so staging a big file does not hold it in
# memory. Nobody else ever sees it; a killed ingest leaves no trace of it.
STAGE = "__flagstone_ingest_stage"
DUPLICATES = "__fs_duplicates"
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass
class IngestResult:
    source: str
    target: str
    file: str
    batch_id: int
    read: int = 0
    loaded: int = 0
    quarantined: int = 0
    duplicates: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One line that always adds up, and says where to look when something was quarantined."""
        line = (
            f"{Path(self.file).name}: read {self.read} = loaded {self.loaded} + quarantined "
            f"{self.quarantined} + duplicates {self.duplicates} (batch {self.batch_id}, {self.seconds:.1f}s)"
        )
        if self.quarantined:
            line += f"; quarantine rows have batch_id {self.batch_id}"
        return line


def ingest_file(
    store: Store,
    path: Path,
    mapping: Path | Mapping,
    *,
    batch_size: int = 100_000,
    progress: bool = True,
) -> IngestResult:
    """Load one file into ``mapping``'s target: every record is loaded, quarantined or counted as a
    duplicate, exactly once, and ``result.summary()`` says so in one line.

    Problems with the mapping or the file as a whole raise ``MappingError``/``InputError`` before
    anything is written; problems with single records never raise, they are quarantined.
    """
    started = time.monotonic()
    path = Path(path)
    m = mapping if isinstance(mapping, Mapping) else load_mapping(mapping)
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if not path.is_file():
        raise InputError("no such file", path=path)
    fmt = m.format or SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"cannot tell the format from the extension '{path.suffix}'; set `format:` in the mapping "
            "(csv, jsonl or parquet)",
            path=path,
        )
    source = _open(path, fmt, m)
    source.require_columns({c: s.line for c, s in m.source_columns().items()}, m.path)
    pseudonymiser = Pseudonymiser.for_store(store.path)

    with pseudonymiser.bound(store.con), store.transaction() as con, _progress_bar(path, source, progress) as tick:
        seal_legacy(con, pseudonymiser)
        batch_id = store.next_id("ingest_batches", "batch_id")
        loader = _Loader(con, m, source, Identities(con, pseudonymiser), build(m, source), batch_id, str(path))
        try:
            loader.run(batch_size, tick)
        except NeedsExactReader as exc:
            # A malformed row: redo this file with the reader that can number every record.
            assert isinstance(source, CsvSource)
            tick(0, f"re-reading ({exc})")
            loader.reset()
            source.exact = True
            loader.run(batch_size, tick)
        tick(None, "deduplicating and writing")
        loader.finish()
        loader.result.seconds = time.monotonic() - started
        loader.record_batch()
    return loader.result


def _open(path: Path, fmt: str, m: Mapping) -> Source:
    if fmt == "csv":
        field_of = {c: s.name for s in m.specs() for c in s.reads}
        return CsvSource(path, m.csv, field_of)
    if fmt == "jsonl":
        return JsonLinesSource(path)
    return ParquetSource(path)


class _Loader:
    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        mapping: Mapping,
        source: Source,
        identities: Identities,
        conversion: Conversion,
        batch_id: int,
        file: str,
    ) -> None:
        self.con = con
        self.m = mapping
        self.source = source
        self.identities = identities
        self.conv = conversion
        self.batch_id = batch_id
        self.file = file
        self.result = IngestResult(mapping.source, mapping.target, file, batch_id)
        self.quarantine = Quarantine(con, identities.pseudonymiser, mapping, batch_id, file)
        self.staged = 0
        self.started_at = _utcnow()
        cols = ", ".join(f'"{c.name}" {c.sql_type}' for c in self.conv.columns)
        con.execute(f"CREATE OR REPLACE TABLE {STAGE} ({REC} BIGINT, {ERR} {ERR_TYPE}, {cols})")
        lookup = mapping.spec("category")
        if lookup is not None and lookup.lookup:
            # Latest catalogue row per item wins; computed once per file, not per batch.
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {CATALOGUE_VIEW} AS "
                "SELECT item, arg_max(category, batch_id) AS category FROM catalogue GROUP BY item"
            )

    def reset(self) -> None:
        self.con.execute("DELETE FROM quarantine WHERE batch_id = ?", [self.batch_id])
        self.con.execute(f"DELETE FROM {STAGE}")
        self.result.read = self.result.quarantined = 0
        self.staged = 0

    def run(self, batch_size: int, tick: Callable[[int | None, str | None], None]) -> None:
        for chunk in self.source.chunks(batch_size):
            self.result.read += chunk.records
            self._quarantine_rejects(chunk.rejects)
            if chunk.table.num_rows:
                self._convert(chunk.table)
            tick(chunk.done, None)

    def _convert(self, table: pa.Table) -> None:
        """Stage a batch's records, bad ones included, then quarantine the bad ones."""
        records = table.column(REC)
        first, last = records[0].as_py(), records[-1].as_py()
        if self.conv.personal_sql:
            self.identities.add(table, BATCH_VIEW, self.conv.personal_sql)
        [(n,)] = query_arrow(self.con, table, BATCH_VIEW, f"INSERT INTO {STAGE} {self.conv.rows_sql}")
        # Records ascend, so the range check only reads this batch's part of the stage.
        this_batch = f"s.{REC} BETWEEN {first} AND {last} AND s.{ERR} IS NOT NULL"
        bad = _count(self.con.execute(f"SELECT count(*) FROM {STAGE} s WHERE {this_batch}"))
        if bad:
            # The converted columns hold pseudonyms already; the raw text and the failing value
            # come to Python only to be protected (sealed, pseudonymised) before they are stored.
            parsed = ", ".join(f"{quote_str(c.name)}, s.{quote_ident(c.name)}" for c in self.conv.columns)
            rows = query_arrow(
                self.con,
                table,
                BATCH_VIEW,
                f"SELECT s.{REC}, s.{ERR}.field, s.{ERR}.value, s.{ERR}.reason, "
                f"CAST(json_object({parsed}) AS VARCHAR), {self.source.raw_sql('b')} "
                f"FROM {STAGE} s JOIN {BATCH_VIEW} b ON b.{REC} = s.{REC} WHERE {this_batch}",
            )
            self.quarantine.add([Rejected(*row) for row in rows])
        self.result.quarantined += bad
        self.staged += n - bad

    def _quarantine_rejects(self, rejects: list[Reject]) -> None:
        self.quarantine.add([Rejected(r.record, r.field, r.value, r.reason, None, r.raw) for r in rejects])
        self.result.quarantined += len(rejects)

    def finish(self) -> None:
        """Insert the staged records that are new: first in the file with their key, absent from the store.

        Only the keys are compared (the rare duplicates are collected into a small table), so the
        rows themselves stream from the stage to the target without a sort or a wide hash table.
        """
        con = self.con
        key = f'"{self.m.key_field}"'
        cols = ", ".join(f'"{c.name}"' for c in self.conv.columns)
        target = self.m.target
        good = f"(SELECT * FROM {STAGE} WHERE {ERR} IS NULL)"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {DUPLICATES} AS "
            f"SELECT s.{REC} FROM {good} s "
            f"WHERE EXISTS (SELECT 1 FROM {target} t WHERE t.source = $source AND t.{key} = s.{key}) "
            f"UNION "
            f"SELECT s.{REC} FROM {good} s JOIN "
            f"(SELECT {key}, min({REC}) AS first FROM {good} GROUP BY {key} HAVING count(*) > 1) d "
            f"ON d.{key} = s.{key} WHERE s.{REC} <> d.first",
            {"source": self.m.source},
        )
        loaded = _count(
            con.execute(
                f"INSERT INTO {target} ({cols}, batch_id) SELECT {cols}, $batch FROM {STAGE} "
                f"WHERE {ERR} IS NULL AND {REC} NOT IN (SELECT {REC} FROM {DUPLICATES})",
                {"batch": self.batch_id},
            )
        )
        r = self.result
        r.loaded = loaded
        r.duplicates = self.staged - loaded
        if r.read != r.loaded + r.quarantined + r.duplicates:  # pragma: no cover - a bug, never data
            raise AssertionError(f"reconciliation failed: {r.summary()}")
        for table in (STAGE, DUPLICATES, CATALOGUE_VIEW):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        self.identities.close()

    def record_batch(self) -> None:
        r = self.result
        self.con.execute(
            "INSERT INTO ingest_batches (batch_id, source, target, file, started_at, finished_at, "
            "read, loaded, quarantined, duplicates) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.batch_id,
                r.source,
                r.target,
                r.file,
                self.started_at,
                _utcnow(),
                r.read,
                r.loaded,
                r.quarantined,
                r.duplicates,
            ],
        )


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)  # the store's TIMESTAMPs are naive UTC


def _count(cursor: duckdb.DuckDBPyConnection) -> int:
    rows = cursor.fetchall()  # fetch all: DuckDB 2 refuses new work while a result is unfinished
    return int(rows[0][0]) if rows else 0


@contextmanager
def _progress_bar(path: Path, source: Source, enabled: bool) -> Iterator[Callable[[int | None, str | None], None]]:
    """A rich progress bar on stderr (bytes or rows of the file); a no-op when disabled."""
    if not enabled:
        yield lambda done, note: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amount = DownloadColumn() if source.unit == "bytes" else MofNCompleteColumn()
    speed = TransferSpeedColumn() if source.unit == "bytes" else TextColumn("")
    name = printable(path.name)  # a file's name may hold escape sequences or rich markup
    with Progress(
        TextColumn("{task.description}", markup=False, style="bold"),
        BarColumn(),
        amount,
        speed,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(name, total=source.total or None)

        def tick(done: int | None, note: str | None) -> None:
            if note is not None:
                bar.update(task, description=f"{name}: {printable(note)}")
            if done is not None:
                bar.update(task, completed=done)

        yield tick
        bar.update(task, completed=source.total, description=name)
