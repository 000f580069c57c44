"""Streaming writers for the three exports, one time slice at a time.

Each writer merges a slice's background rows with the planted rows that fall in it, sorts them
by time, numbers them the way the source system would (so planted records get ordinary-looking
ids), writes them, and returns the ids it gave the planted rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flagstone.generate import _fmt
from flagstone.generate._time import BANK_ZONE, END_S, START_S

Columns = dict[str, object]


def _concat(a: object, b: object) -> object:
    if isinstance(a, np.ndarray):
        return np.concatenate([a, np.asarray(b, dtype=a.dtype)])
    return pa.concat_arrays([a, b])  # type: ignore[list-item]


def _take(col: object, order: np.ndarray) -> object:
    if isinstance(col, np.ndarray):
        return col[order]
    return col.take(pa.array(order))  # type: ignore[attr-defined]


def merge(background: Columns, planted: Columns, sort_keys: list[str]) -> tuple[Columns, np.ndarray]:
    """Background plus planted rows sorted by ``sort_keys`` (first key most significant);
    returns the columns and each row's scenario index (-1 for background)."""
    n_bg = len(background[sort_keys[0]])  # type: ignore[arg-type]
    scenario = np.concatenate([np.full(n_bg, -1, dtype=np.int64), np.asarray(planted["scenario"], dtype=np.int64)])
    cols = {k: _concat(v, planted[k]) for k, v in background.items()}
    cols["planted"] = (scenario >= 0).astype(np.int64)
    order = np.lexsort([np.asarray(cols[k]) for k in reversed(sort_keys)])
    return {k: _take(v, order) for k, v in cols.items()}, scenario[order]


class BankWriter:
    """``bank.csv``: semicolon-separated, decimal comma, local wall-clock times, German type codes."""

    HEADER = "TXN_ID;BOOKED_AT;ACCOUNT;TYPE;COUNTER_ACCOUNT;AMOUNT;CCY;CHANNEL;TERMINAL;REFERENCE\n"

    def __init__(self, path: Path) -> None:
        self.fh: IO[bytes] = path.open("wb")
        self.fh.write(self.HEADER.encode())
        self.next_id = 1
        self.clock = _fmt.LocalTime(BANK_ZONE, START_S, END_S)

    def write(self, cols: Columns, scenario: np.ndarray) -> list[tuple[int, str]]:
        n = len(scenario)
        ids = _fmt.ints(np.arange(self.next_id, self.next_id + n), 10, "TX")
        self.next_id += n
        fields = [
            ids,
            self.clock.format_dmy(np.asarray(cols["ts"])),
            *(cols[k] for k in ("account", "code", "counter")),
            _fmt.decimals(np.asarray(cols["cents"]), ","),
            "EUR",
            *(cols[k] for k in ("channel", "terminal", "reference")),
        ]
        self.fh.write(_fmt.delimited(fields, ";"))  # type: ignore[arg-type]
        return _planted_ids(ids, scenario)

    def close(self) -> None:
        self.fh.close()


class ShopWriter:
    """``shop.jsonl``: one order line per JSON object, epoch-millisecond timestamps."""

    def __init__(self, path: Path) -> None:
        self.fh: IO[bytes] = path.open("wb")
        self.next_order = 1

    def write(self, cols: Columns, scenario: np.ndarray) -> list[tuple[int, str]]:
        ts, order, planted = (np.asarray(cols[k]) for k in ("ts_ms", "order", "planted"))
        if len(ts) == 0:
            return []
        new = np.r_[True, (ts[1:] != ts[:-1]) | (order[1:] != order[:-1]) | (planted[1:] != planted[:-1])]
        order_no = self.next_order + np.cumsum(new) - 1
        self.next_order = int(order_no[-1]) + 1
        order_id = _fmt.ints(order_no, 9, "O")
        line_id = pc.binary_join_element_wise(order_id, _fmt.ints(np.asarray(cols["line"])), "-")
        qty, unit = np.asarray(cols["qty"]), np.asarray(cols["unit_cents"])
        store = cols["store"]
        channel = pc.if_else(pc.equal(store, "WEB"), "online", "store")
        members: list[tuple[str, object, bool]] = [  # (key, value, is text)
            ("line_id", line_id, True),
            ("order_id", order_id, True),
            ("ts", _fmt.ints(ts), False),
            ("customer", cols["customer"], True),
            ("sku", cols["sku"], True),
            ("qty", _fmt.ints(qty), False),
            ("unit_price", _fmt.decimals(unit), False),
            ("currency", "EUR", True),
            ("store", store, True),
            ("channel", channel, True),
        ]
        self.fh.write(_fmt.json_objects(members))
        return _planted_ids(line_id, scenario)

    def close(self) -> None:
        self.fh.close()


TRANSIT_SCHEMA = pa.schema(
    [
        ("tap_id", pa.string()),
        ("card_id", pa.string()),
        ("tapped_at", pa.timestamp("ms", tz="UTC")),
        ("vehicle", pa.string()),
        ("fare_product", pa.string()),
        ("fare", pa.decimal128(9, 2)),
    ]
)


class TransitWriter:
    """``transit.parquet``: native UTC timestamps and exact decimal fares, one row group a slice."""

    def __init__(self, path: Path) -> None:
        self.writer = pq.ParquetWriter(path, TRANSIT_SCHEMA, compression="zstd")
        self.next_id = 1

    def write(self, cols: Columns, scenario: np.ndarray) -> list[tuple[int, str]]:
        n = len(scenario)
        ids = _fmt.ints(np.arange(self.next_id, self.next_id + n), 12, "TP")
        self.next_id += n
        cents = np.asarray(cols["fare_cents"], dtype=np.int64)
        # Decimal128 stores the unscaled integer as 16 little-endian bytes; fares are never negative.
        raw = np.zeros((n, 2), dtype=np.int64)
        raw[:, 0] = cents
        fare = pa.Array.from_buffers(pa.decimal128(9, 2), n, [None, pa.py_buffer(raw.tobytes())])
        table = pa.table(
            [
                ids,
                cols["card"],
                pa.array(np.asarray(cols["ts_ms"]), type=pa.timestamp("ms", tz="UTC")),
                cols["vehicle"],
                cols["product"],
                fare,
            ],
            schema=TRANSIT_SCHEMA,
        )
        self.writer.write_table(table)
        return _planted_ids(ids, scenario)

    def close(self) -> None:
        self.writer.close()


def _planted_ids(ids: pa.Array, scenario: np.ndarray) -> list[tuple[int, str]]:
    where = np.flatnonzero(scenario >= 0)
    return list(zip(scenario[where].tolist(), ids.take(pa.array(where)).to_pylist(), strict=True))
