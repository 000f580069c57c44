"""Readers that stream an export as Arrow chunks of at most ``batch_size`` records.

A reader yields :class:`Chunk` s: an Arrow table with the 1-based record number in ``__fs_rec``
plus the source's columns, and the records it had to reject while reading (bytes that are not
UTF-8, rows with the wrong number of columns). It also tells the SQL converter how to reach each
source column (:meth:`Source.project`) and how to show a whole record (:meth:`Source.raw_sql`),
because a JSON-lines record is one text that DuckDB parses, while CSV and Parquet arrive as columns.

Two limits keep a hostile or broken file from costing unbounded time or memory, and each is an
error naming the file (and the line) rather than a stall: a file has at most ``MAX_COLUMNS``
columns (each costs the reader memory, and DuckDB's cost of binding a table grows with the square
of its columns, see ``_csv``), and one record,
a CSV row or a JSON line, holds at most ``MAX_RECORD_CHARS`` characters (a file without line
breaks, or with an unbalanced quote, would otherwise be read into memory whole).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flagstone.errors import InputError

REC = "__fs_rec"
RAW = "__fs_raw"
BATCH_VIEW = "__fs_batch"
MAX_COLUMNS = 10_000
MAX_RECORD_CHARS = 4 << 20  # 4 Mi: also the fast CSV reader's block, which must hold a whole row
SHOWN_COLUMNS = 30  # column names listed in an error message; the rest are counted


@dataclass
class Reject:
    """A record refused before conversion; it goes to quarantine as it is."""

    record: int
    field: str | None
    value: str | None
    reason: str
    raw: str | None


@dataclass
class Chunk:
    table: pa.Table
    records: int  # records read, rejected ones included
    done: int  # progress so far, in the source's unit
    rejects: list[Reject] = field(default_factory=list)


@dataclass(frozen=True)
class Projected:
    """A source column as SQL: its text (VARCHAR) and its value as typed as the source allows."""

    text: str
    typed: str
    kind: str  # text | timestamp | timestamptz | number | other
    # Whether ``typed`` is a JSON value, whose type may differ from record to record: a number
    # format (decimal comma, thousands) then applies only to the records that hold text.
    json: bool = False


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Source(ABC):
    """One export file being read."""

    unit = "bytes"

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    @abstractmethod
    def total(self) -> int:
        """Size for the progress bar, in ``unit``."""

    @abstractmethod
    def chunks(self, batch_size: int) -> Iterator[Chunk]: ...

    @abstractmethod
    def project(self, column: str) -> Projected: ...

    @abstractmethod
    def raw_sql(self, alias: str) -> str:
        """SQL over ``__fs_batch`` (as ``alias``) giving the whole record as text, for quarantine."""

    def record_error_sql(self) -> str | None:
        """SQL giving why a record as a whole is unreadable (or NULL); columns are not used then."""
        return None

    def prepare_sql(self, columns: list[str]) -> str:
        """A relation over ``__fs_batch`` that :meth:`project` expressions can be evaluated on."""
        return BATCH_VIEW

    def require_columns(self, wanted: dict[str, int | None], mapping_path: Path) -> None:
        """Fail early when the mapping reads a column the file does not have."""
        names = self.column_names()
        if names is None:
            return
        for col, line in wanted.items():
            if col not in names:
                hint = ""
                if len(names) == 1:
                    found = [d for d in (";", "\t", "|", ",") if d in names[0]]
                    hint = f"; the header looks delimited by {found[0]!r}: set csv.delimiter" if found else ""
                more = f" (and {len(names) - SHOWN_COLUMNS:,} more)" if len(names) > SHOWN_COLUMNS else ""
                raise InputError(
                    f"the mapping reads column '{col}', which {self.path.name} does not have; its columns are: "
                    + ", ".join(names[:SHOWN_COLUMNS])
                    + more
                    + hint,
                    path=mapping_path,
                    line=line,
                    value=col,
                )

    def column_names(self) -> list[str] | None:
        return None

    def check_width(self, n: int, line: int | None = None) -> None:
        if n > MAX_COLUMNS:
            raise InputError(
                f"{n:,} columns; a file may have at most {MAX_COLUMNS:,} (map the columns you need from an "
                "export that has fewer)",
                path=self.path,
                line=line,
            )


def too_long(path: Path, line: int, unit: str = "record") -> InputError:
    return InputError(
        f"a {unit} longer than {MAX_RECORD_CHARS:,} characters; is it the right format, with balanced quotes "
        "and line breaks between records?",
        path=path,
        line=line,
    )


def bounded_lines(fh: IO[Any], path: Path, first_line: int = 1) -> Iterator[Any]:
    """The lines of ``fh`` (text or bytes), each read with at most ``MAX_RECORD_CHARS`` in memory;
    a longer one is an error naming its line."""
    n = first_line - 1
    while line := fh.readline(MAX_RECORD_CHARS + 1):
        n += 1
        if len(line) > MAX_RECORD_CHARS:
            raise too_long(path, n, "line")
        yield line


def decode_utf8(
    table: pa.Table, raw_of: Callable[[int], str], field_of: dict[str, str]
) -> tuple[pa.Table, list[Reject]]:
    """Turn binary columns into text; records holding bytes that are not UTF-8 become rejects.

    The check is one Arrow cast per column; only a column that fails is walked value by value.
    ``raw_of(i)`` gives row ``i`` as text for the quarantine.
    """
    bad: dict[int, Reject] = {}
    columns = []
    for name, col in zip(table.column_names, table.columns, strict=True):
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
            columns.append(col)
            continue
        try:
            columns.append(col.cast(pa.string()))
            continue
        except pa.ArrowInvalid:
            pass
        values = col.to_pylist()
        for i, v in enumerate(values):
            if v is None or i in bad:
                continue
            try:
                v.decode("utf-8")
            except UnicodeDecodeError as exc:
                rec = table.column(REC)[i].as_py()
                bad[i] = Reject(
                    rec,
                    field_of.get(name, name),
                    repr(v),
                    f"column '{name}': bytes that are not UTF-8 at offset {exc.start}; "
                    "fix the file or set csv.encoding in the mapping",
                    raw_of(i),
                )
        columns.append(pa.array([None if i in bad else v for i, v in enumerate(values)], pa.binary()).cast(pa.string()))
    clean = pa.table(columns, names=table.column_names)
    if bad:
        keep = pa.array([i not in bad for i in range(clean.num_rows)])
        clean = clean.filter(keep)
    return clean, [bad[i] for i in sorted(bad)]


def query_arrow(con: duckdb.DuckDBPyConnection, table: pa.Table, name: str, sql: str) -> list[tuple[Any, ...]]:
    """Run ``sql`` with ``table`` visible as ``name``; all result rows.

    Not con.register(): inside a transaction a registered view keeps its data alive until commit,
    which would hold a whole file in memory.
    """
    relation = con.from_arrow(table).query(name, sql)
    return relation.fetchall() if relation is not None else []


def record_numbers(first: int, n: int) -> pa.Array:
    return pa.array(range(first, first + n), pa.int64())


class JsonLinesSource(Source):
    """One JSON object per line; DuckDB parses the lines, so the happy path has no Python loop."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._columns: list[str] = []

    @property
    def total(self) -> int:
        return self.path.stat().st_size

    def chunks(self, batch_size: int) -> Iterator[Chunk]:
        rec = 0
        with self.path.open("rb") as fh:
            read = bounded_lines(fh, self.path)
            while True:
                lines = [line for _, line in zip(range(batch_size), read, strict=False)]
                if not lines:
                    return
                lines = [line for line in lines if line.strip()]
                recs = record_numbers(rec + 1, len(lines))
                rec += len(lines)
                table = pa.table({REC: recs, RAW: pa.array(lines, pa.binary())})
                table, rejects = decode_utf8(
                    table,
                    partial(_line_text, lines),
                    {RAW: "record"},
                )
                raw = pc.utf8_rtrim(table.column(RAW), characters="\r\n")
                table = table.set_column(1, RAW, raw)
                yield Chunk(table, len(lines), fh.tell(), rejects)

    def prepare_sql(self, columns: list[str]) -> str:
        # One parse per record for all columns: list-valued json_extract. try() because DuckDB may
        # evaluate it on invalid lines too; those are quarantined by record_error_sql.
        self._columns = columns
        paths = "[" + ", ".join(quote_str(_json_path(c)) for c in columns) + "]" if columns else "['$']"
        return (
            f"(SELECT *, try(json_extract_string({RAW}, {paths})) AS __fs_text, "
            f"try(json_extract({RAW}, {paths})) AS __fs_json FROM {BATCH_VIEW})"
        )

    def project(self, column: str) -> Projected:
        i = self._columns.index(column) + 1
        return Projected(f"__fs_text[{i}]", f"__fs_json[{i}]", "text", json=True)

    def record_error_sql(self) -> str:
        kind = f"try(json_type({RAW}))"
        return (
            f"CASE WHEN NOT json_valid({RAW}) THEN 'not valid JSON; expected one JSON object per line' "
            f"WHEN {kind} <> 'OBJECT' THEN 'expected a JSON object {{...}}, got ' || {kind} END"
        )

    def raw_sql(self, alias: str) -> str:
        return f"{alias}.{RAW}"


def _line_text(lines: list[bytes], i: int) -> str:
    return lines[i].decode("utf-8", "backslashreplace").rstrip("\r\n")


def _json_path(key: str) -> str:
    return '$."' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ParquetSource(Source):
    unit = "rows"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"not a readable Parquet file: {exc}", path=path) from exc
        self.check_width(len(self._file.schema_arrow.names))
        self._schema = self._file.schema_arrow

    @property
    def total(self) -> int:
        return self._file.metadata.num_rows

    def column_names(self) -> list[str]:
        return list(self._schema.names)

    def chunks(self, batch_size: int) -> Iterator[Chunk]:
        rec = 0
        for batch in self._file.iter_batches(batch_size=batch_size):
            table = pa.Table.from_batches([batch])
            n = table.num_rows
            table = table.add_column(0, REC, record_numbers(rec + 1, n))
            rec += n
            table, rejects = decode_utf8(table, partial(_row_json, table), {})
            yield Chunk(table, n, rec, rejects)

    def project(self, column: str) -> Projected:
        typ = self._schema.field(column).type
        ident = quote_ident(column)
        nested = pa.types.is_nested(typ)
        text = f"CAST(to_json({ident}) AS VARCHAR)" if nested else f"CAST({ident} AS VARCHAR)"
        return Projected(text, ident, arrow_kind(typ))

    def raw_sql(self, alias: str) -> str:
        fields = ", ".join(f"{quote_ident(n)} := {alias}.{quote_ident(n)}" for n in self._schema.names)
        return f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"


def arrow_kind(typ: pa.DataType) -> str:
    if pa.types.is_timestamp(typ):
        return "timestamptz" if typ.tz else "timestamp"
    if pa.types.is_date(typ):
        return "timestamp"
    if pa.types.is_integer(typ) or pa.types.is_floating(typ) or pa.types.is_decimal(typ):
        return "number"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ) or pa.types.is_binary(typ):
        return "text"
    return "other"


def _row_json(table: pa.Table, i: int) -> str:
    row = {k: v for k, v in table.slice(i, 1).to_pylist()[0].items() if k != REC}
    return json.dumps(
        row,
        default=lambda o: o.decode("utf-8", "backslashreplace") if isinstance(o, bytes) else str(o),
        ensure_ascii=False,
    )
