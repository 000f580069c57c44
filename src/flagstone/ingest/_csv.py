"""CSV: a fast pyarrow reader, and an exact Python reader for files the fast one cannot take.

pyarrow's streaming reader parses blocks in C++ and handles quotes and newlines inside fields, but a
row with the wrong number of columns can only be skipped, not located: we would lose its record
number. So on the first structural problem the fast reader gives up (:class:`NeedsExactReader`)
and the file is read again, inside the same transaction, with Python's csv module, which numbers
every record. Well-formed files never pay for that.

A batch reaches SQL narrow: the record number, the columns the mapping reads, and the whole record
as one list column (``__fs_cols``) from which a quarantined record's raw text is rebuilt. DuckDB's
cost of binding a table grows with the square of its columns, so a file of thousands of columns
handed over whole cost minutes; narrow, it is linear. A batch also holds at most
``MAX_BATCH_BYTES``, so a wide file's batches have fewer records instead of more memory.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from flagstone.errors import InputError
from flagstone.ingest._mapping import CsvOptions
from flagstone.ingest._sources import (
    BATCH_VIEW,
    MAX_RECORD_CHARS,
    REC,
    Chunk,
    Projected,
    Reject,
    Source,
    bounded_lines,
    decode_utf8,
    quote_ident,
    quote_str,
    record_numbers,
    too_long,
)

BLOCK_SIZE = MAX_RECORD_CHARS  # a row longer than a block makes the fast reader give up
MAX_BATCH_BYTES = 64 << 20
COLS = "__fs_cols"


class NeedsExactReader(Exception):
    """The fast reader met a row it cannot place; read the file again with the exact reader."""


class _Transcoder(io.RawIOBase):
    """Re-encodes a non-UTF-8 file as UTF-8 on the fly.

    Undecodable bytes pass through unchanged (surrogateescape), so they reach the UTF-8 check and
    quarantine their record instead of aborting the whole file.
    """

    def __init__(self, raw: IO[bytes], encoding: str) -> None:
        self._raw = raw
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="surrogateescape")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            data = self._raw.read(1 << 20)
            self._pending = self._decoder.decode(data, final=not data).encode("utf-8", "surrogateescape")
            if not data:
                break
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def tell(self) -> int:
        return self._raw.tell()


class CsvSource(Source):
    def __init__(self, path: Path, options: CsvOptions, field_of: dict[str, str]) -> None:
        super().__init__(path)
        self.options = options
        self.field_of = field_of  # source column -> canonical field, to name fields in quarantine
        self.exact = False
        self.names = list(options.columns) if options.columns else self._read_header()
        self.check_width(len(self.names), options.skip_rows + 1)
        if COLS in self.names:
            raise InputError(f"a column may not be named {COLS}", path=path, line=options.skip_rows + 1)

    @property
    def total(self) -> int:
        return self.path.stat().st_size

    def column_names(self) -> list[str] | None:
        return self.names or None  # an empty file has no columns to check

    def _text_stream(self, raw: IO[bytes]) -> io.TextIOWrapper:
        enc = "utf-8-sig" if self.options.encoding == "utf-8" else self.options.encoding
        return io.TextIOWrapper(raw, encoding=enc, errors="surrogateescape", newline="")

    def _reader(self, lines: _RecordLines) -> Any:
        o = self.options
        for _ in range(o.skip_rows):
            next(lines, None)
            lines.record_done()
        # The exact reader takes a field as long as a whole record may be (the default is 128 KiB).
        csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS))
        return csv.reader(
            lines,
            delimiter=o.delimiter,
            quotechar=o.quote or '"',
            quoting=csv.QUOTE_MINIMAL if o.quote else csv.QUOTE_NONE,
            escapechar=o.escape,
            doublequote=True,
            strict=False,
        )

    def _read_header(self) -> list[str]:
        with self.path.open("rb") as raw, self._text_stream(raw) as fh:
            lines = _RecordLines(fh, self.path)
            try:
                header = next(self._reader(lines), None)
            except csv.Error as exc:
                raise InputError(f"cannot read the header row: {exc}", path=self.path) from exc
        if header is None:
            return []
        if any(_has_surrogates(h) for h in header):
            raise InputError(
                "the header row is not valid UTF-8; set csv.encoding in the mapping",
                path=self.path,
                line=self.options.skip_rows + 1,
            )
        seen: set[str] = set()  # not header.count(h) per column: that was quadratic in the width
        repeated: set[str] = set()
        for h in header:
            (repeated if h in seen else seen).add(h)
        dupes = sorted(repeated)
        if dupes:
            raise InputError(
                f"column name(s) {', '.join(dupes)} appear more than once in the header",
                path=self.path,
                line=self.options.skip_rows + 1,
            )
        return header

    # -- reading --

    def chunks(self, batch_size: int) -> Iterator[Chunk]:
        if not self.names:
            return iter(())
        return self._exact_chunks(batch_size) if self.exact else self._fast_chunks(batch_size)

    def _fast_chunks(self, batch_size: int) -> Iterator[Chunk]:
        o = self.options
        problems: list[str] = []

        def on_invalid(row: Any) -> str:
            problems.append(f"expected {row.expected_columns} columns, found {row.actual_columns}")
            return "error"

        raw_file: Any = pa.OSFile(str(self.path))
        stream = raw_file if o.encoding == "utf-8" else _Transcoder(raw_file, o.encoding)
        try:
            try:
                reader = pacsv.open_csv(
                    stream,
                    read_options=pacsv.ReadOptions(
                        block_size=BLOCK_SIZE,
                        skip_rows=o.skip_rows,
                        column_names=list(o.columns) if o.columns else None,
                    ),
                    parse_options=pacsv.ParseOptions(
                        delimiter=o.delimiter,
                        quote_char=o.quote or False,
                        escape_char=o.escape or False,
                        double_quote=True,
                        newlines_in_values=True,
                        ignore_empty_lines=True,
                        invalid_row_handler=on_invalid,
                    ),
                    convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(self.names, pa.binary())),
                )
            except pa.ArrowException as exc:
                raise NeedsExactReader(problems[0] if problems else str(exc)) from exc
            rec = 0
            pending: pa.Table | None = None
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    batch = None
                except pa.ArrowException as exc:
                    raise NeedsExactReader(problems[0] if problems else str(exc)) from exc
                if batch is not None:
                    more = pa.Table.from_batches([batch])
                    pending = more if pending is None else pa.concat_tables([pending, more])
                # Blocks are sized in bytes; cut them into batches of batch_size records, fewer
                # when that many would pass MAX_BATCH_BYTES.
                size = batch_size
                if pending is not None and pending.nbytes > MAX_BATCH_BYTES:
                    size = min(batch_size, max(1, pending.num_rows * MAX_BATCH_BYTES // pending.nbytes))
                while pending is not None and (pending.num_rows >= size or (batch is None and pending.num_rows)):
                    chunk, pending = pending.slice(0, size), pending.slice(size)
                    yield self._finish(chunk.combine_chunks(), rec, raw_file.tell())
                    rec += chunk.num_rows
                if batch is None:
                    return
        finally:
            raw_file.close()

    def _finish(self, table: pa.Table, rec: int, done: int) -> Chunk:
        n = table.num_rows
        table = table.add_column(0, REC, record_numbers(rec + 1, n))
        names = self.names

        def raw_of(i: int) -> str:
            row = table.slice(i, 1).to_pylist()[0]
            return self.format_row([_show(row[c]) for c in names])

        clean, rejects = decode_utf8(table, raw_of, self.field_of)
        return Chunk(self._narrow(clean), n, done, rejects)

    def _narrow(self, table: pa.Table) -> pa.Table:
        """The record number, the columns the mapping reads, and every column as one list per record."""
        n, width = table.num_rows, len(self.names)
        values = pa.concat_arrays([table.column(c).combine_chunks() for c in self.names])
        row_major = (np.arange(n)[:, None] + np.arange(width)[None, :] * n).ravel()
        offsets = pa.array(np.arange(n + 1, dtype=np.int32) * width, pa.int32())
        packed = pa.ListArray.from_arrays(offsets, values.take(pa.array(row_major, pa.int64())))
        read = [c for c in self.names if c in self.field_of]
        return table.select([REC, *read]).append_column(COLS, packed)

    def _exact_chunks(self, batch_size: int) -> Iterator[Chunk]:
        names = self.names
        width = len(names)
        with self.path.open("rb") as raw, self._text_stream(raw) as fh:
            lines = _RecordLines(fh, self.path)
            rows = self._reader(lines)
            if self.options.header:
                next(rows, None)
            rec = 0
            while True:
                cols: list[list[str]] = [[] for _ in names]
                recs: list[int] = []
                rejects: list[Reject] = []
                n = 0
                lines.batch_chars = 0
                try:
                    for row in rows:
                        lines.record_done()
                        if not row:
                            continue  # blank line, as pyarrow skips them
                        rec += 1
                        n += 1
                        reject = self._check_row(rec, row, width)
                        if reject is not None:
                            rejects.append(reject)
                        else:
                            recs.append(rec)
                            for col, value in zip(cols, row, strict=True):
                                col.append(value)
                        if n >= batch_size or lines.batch_chars >= MAX_BATCH_BYTES:
                            break
                except csv.Error as exc:
                    raise InputError(f"record {rec + 1}: cannot parse CSV: {exc}", path=self.path) from exc
                if n == 0:
                    return
                arrays = [pa.array(recs, pa.int64())]
                arrays += [pa.array(c, pa.string()) for c in cols]
                yield Chunk(self._narrow(pa.table(arrays, names=[REC, *names])), n, raw.tell(), rejects)

    def _check_row(self, rec: int, row: list[str], width: int) -> Reject | None:
        if len(row) != width:
            return Reject(
                rec,
                "record",
                None,
                f"expected {width} columns ({', '.join(self.names)}), found {len(row)}; "
                "check the delimiter and quoting",
                self.format_row([_unescape(v) for v in row]),
            )
        for name, value in zip(self.names, row, strict=True):
            if _has_surrogates(value):
                data = value.encode("utf-8", "surrogateescape")
                return Reject(
                    rec,
                    self.field_of.get(name, name),
                    repr(data),
                    f"column '{name}': bytes that are not UTF-8 (or not {self.options.encoding}); "
                    "fix the file or set csv.encoding in the mapping",
                    self.format_row([_unescape(v) for v in row]),
                )
        return None

    def format_row(self, values: list[str]) -> str:
        out = io.StringIO()
        o = self.options
        csv.writer(
            out,
            delimiter=o.delimiter,
            quotechar=o.quote or '"',
            escapechar=o.escape,
            quoting=csv.QUOTE_MINIMAL if o.quote else csv.QUOTE_NONE,
            lineterminator="",
        ).writerow(values)
        return out.getvalue()

    # -- SQL --

    def project(self, column: str) -> Projected:
        return Projected(quote_ident(column), quote_ident(column), "text")

    def raw_sql(self, alias: str) -> str:
        o = self.options
        quote = o.quote or '"'
        special = "[" + "".join("\\" + c if c in "]\\^-" else c for c in {o.delimiter, quote, "\r", "\n"}) + "]"
        v, q = "coalesce(v, '')", quote_str(quote)
        quoted = f"{q} || replace({v}, {q}, {q} || {q}) || {q}"
        field = f"CASE WHEN regexp_matches({v}, {quote_str(special)}) THEN {quoted} ELSE {v} END"
        return f"array_to_string(list_transform({alias}.{COLS}, lambda v: {field}), {quote_str(o.delimiter)})"

    def prepare_sql(self, columns: list[str]) -> str:
        return BATCH_VIEW


class _RecordLines:
    """The lines csv.reader asks for, bounded: no line, and no record spanning lines inside quotes,
    holds more than ``MAX_RECORD_CHARS`` (``record_done`` marks where each record ends)."""

    def __init__(self, fh: io.TextIOWrapper, path: Path) -> None:
        self._lines = bounded_lines(fh, path)
        self._path = path
        self._line = 0
        self._chars = 0
        self.batch_chars = 0  # read since the caller last reset it

    def __iter__(self) -> _RecordLines:
        return self

    def __next__(self) -> str:
        line: str = next(self._lines)
        self._line += 1
        self._chars += len(line)
        self.batch_chars += len(line)
        if self._chars > MAX_RECORD_CHARS:
            raise too_long(self._path, self._line)
        return line

    def record_done(self) -> None:
        self._chars = 0


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unescape(text: str) -> str:
    """Text for display: undecodable bytes shown as \\xNN."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _show(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "backslashreplace")
