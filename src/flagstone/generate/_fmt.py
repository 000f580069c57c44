"""Vectorised text formatting for the exports: whole columns at once through Arrow compute kernels.

Python string formatting per row would dominate the run time at ten million events.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def ints(values: np.ndarray, width: int = 0, prefix: str = "") -> pa.Array:
    """Integers as text, zero-padded to ``width`` and prefixed."""
    text = pc.cast(pa.array(values, type=pa.int64()), pa.string())
    if width:
        text = pc.utf8_lpad(text, width=width, padding="0")
    return pc.binary_join_element_wise(prefix, text, "") if prefix else text


def decimals(cents: np.ndarray, sep: str = ".") -> pa.Array:
    """Non-negative minor units as ``units<sep>cc``, e.g. 945000 -> ``9450,00``."""
    units = cents // 100
    return pc.binary_join_element_wise(ints(units), ints(cents - units * 100, width=2), sep)


class LocalTime:
    """Formats UTC epoch seconds as local wall-clock text.

    Offsets are looked up per UTC hour from ``zoneinfo`` once, so a DST change inside the span
    is honoured without formatting each row through a time zone library.
    """

    def __init__(self, zone: str, start_s: int, end_s: int) -> None:
        tz = ZoneInfo(zone)
        self.start = start_s - start_s % 3600
        hours = range(self.start, end_s + 3600, 3600)
        self.offsets = np.array(
            [int(datetime.fromtimestamp(h, UTC).astimezone(tz).utcoffset().total_seconds()) for h in hours],  # type: ignore[union-attr]
            dtype=np.int64,
        )

    def format_dmy(self, ts: np.ndarray) -> pa.Array:
        """``dd.mm.yyyy HH:MM:SS`` in local time."""
        local = ts + self.offsets[(ts - self.start) // 3600]
        iso = pc.cast(pa.array(local, type=pa.timestamp("s")), pa.string())  # yyyy-mm-dd HH:MM:SS

        def part(a: int, b: int) -> pa.Array:
            return pc.utf8_slice_codeunits(iso, a, b)

        return pc.binary_join_element_wise(part(8, 10), ".", part(5, 7), ".", part(0, 4), " ", part(11, 19), "")


def lines(parts: list[pa.Array | str]) -> bytes:
    """Concatenate columns and literal strings row-wise, one line per row, as UTF-8 bytes."""
    joined = pc.binary_join_element_wise(*parts, "\n", "")
    joined = pa.concat_arrays([joined]) if isinstance(joined, pa.ChunkedArray) else joined
    if len(joined) == 0:
        return b""
    # The rows are contiguous in the data buffer; slice it instead of building Python strings.
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32, count=len(joined) + 1, offset=joined.offset * 4)
    data = joined.buffers()[2]
    assert data is not None
    return data.slice(int(offsets[0]), int(offsets[-1] - offsets[0])).to_pybytes()


def delimited(columns: list[pa.Array | str], sep: str) -> bytes:
    """Rows of ``columns`` joined by ``sep``; no quoting, which the callers' values never need."""
    parts: list[pa.Array | str] = []
    for col in columns:
        parts += [col, sep]
    return lines(parts[:-1])


def json_objects(members: list[tuple[str, object, bool]]) -> bytes:
    """One flat JSON object per row from (key, column or constant, is text) members."""
    parts: list[pa.Array | str] = []
    for i, (key, value, text) in enumerate(members):
        parts.append(("{" if i == 0 else ",") + f'"{key}":')
        if not text:
            parts.append(value)  # type: ignore[arg-type]
        elif isinstance(value, str):
            parts.append(f'"{value}"')
        else:
            # Our identifiers and codes never need JSON escaping; check rather than trust it.
            if pc.any(pc.match_substring_regex(value, r'["\\\x00-\x1f]')).as_py():  # type: ignore[arg-type]
                raise ValueError(f"{key}: value needs JSON escaping")
            parts += ['"', value, '"']  # type: ignore[list-item]
    parts.append("}")
    return lines(parts)
