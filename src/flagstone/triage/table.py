"""Reading a feature table (``alert_id``, ``rule_id``, ``fire_ts``, then one float64 column per
feature) into arrays, refusing what a model cannot use with a message that names the column, the
row and the value."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from flagstone.errors import InputError, ModelError
from flagstone.protected import protected_match

KEYS = ("alert_id", "rule_id", "fire_ts")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_US = (datetime(1, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)  # what a datetime can hold
LAST_US = (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
RULE = "rule_id"  # the one categorical input, before the features
# A feature name goes into LightGBM's model text, which has no quoting: letters, digits, '_' only.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}\Z")


@dataclass(frozen=True, eq=False)
class Inputs:
    alert_ids: tuple[str, ...]
    rule_ids: tuple[str, ...]
    fire_us: npt.NDArray[np.int64] | None  # microseconds since the epoch (UTC); None when not read
    values: npt.NDArray[np.float64]  # (alerts, features); NaN where unknown
    names: tuple[str, ...]


def _strings(table: pa.Table, column: str) -> tuple[str, ...]:
    col = table.column(column)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise InputError(f"expected a string column, got {col.type}", field=column)
    if col.null_count:
        row = pc.index(pc.is_null(col), True).as_py()
        raise InputError(f"row {row} has no {column}", field=column)
    return tuple(col.to_pylist())


def _time(table: pa.Table) -> npt.NDArray[np.int64]:
    col = table.column("fire_ts")
    if not pa.types.is_timestamp(col.type):
        raise InputError(f"expected a timestamp column, got {col.type}", field="fire_ts")
    if col.null_count:
        row = pc.index(pc.is_null(col), True).as_py()
        raise InputError(f"row {row} has no fire_ts", field="fire_ts")
    micros = pc.cast(col, pa.timestamp("us", tz=col.type.tz), safe=False)
    out = np.asarray(pc.cast(micros, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
    bad = np.flatnonzero((out < FIRST_US) | (out > LAST_US))
    if len(bad):
        raise InputError(f"row {int(bad[0])}: fire_ts is outside the years 1 to 9999", field="fire_ts")
    return out


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise InputError("a feature name is letters, digits and '_' (at most 100)", field=name, value=name)
    stem = protected_match(name)
    if stem is not None:
        raise InputError(f"a feature may not name a protected attribute ({stem!r})", field=name, value=name)


def check_sentence(name: str, template: object) -> str:
    """A sentence template with one ``{value}`` field (a format spec allowed, nothing else)."""
    if not isinstance(template, str) or not template.strip():
        raise InputError("a feature's sentence is a non-empty text", field=name, value=template)
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        if fields != ["value"]:
            raise ValueError(f"fields {fields}")
        template.format(value=1.5)
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(
            f"a feature's sentence holds '{{value}}' once (e.g. '{{value:.0f}}') and no other field: {exc}",
            field=name,
            value=template,
        ) from None
    return template


def feature_names(table: pa.Table) -> tuple[str, ...]:
    return tuple(c for c in table.column_names if c not in KEYS)


def read(table: object, *, expected: Sequence[str] | None = None, timed: bool = True) -> Inputs:
    """The arrays of ``table``. With ``expected`` (a model's features) the table must hold exactly
    those features, in any order; the values come back in ``expected``'s order."""
    if not isinstance(table, pa.Table):
        raise InputError(f"expected a pyarrow Table of features, got {type(table).__name__}")
    columns = table.column_names
    if len(set(columns)) != len(columns):
        twice = sorted({c for c in columns if columns.count(c) > 1})
        raise InputError(f"columns appear more than once: {', '.join(twice)}", value=twice)
    for key in ("alert_id", "rule_id", *(("fire_ts",) if timed else ())):
        if key not in columns:
            raise InputError(f"the feature table has no '{key}' column", field=key)
    names = feature_names(table)
    if expected is not None:
        missing = sorted(set(expected) - set(names))
        extra = sorted(set(names) - set(expected))
        if missing or extra:
            raise ModelError(
                "the feature table does not match the model's features: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {', '.join(missing)}" if missing else "",
                        f"not in the model {', '.join(extra)}" if extra else "",
                    )
                    if part
                )
            )
        names = tuple(expected)
    for name in names:
        check_name(name)
    alert_ids = _strings(table, "alert_id")
    rule_ids = _strings(table, "rule_id")
    fire_us = _time(table) if timed else None
    values = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        col = table.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise InputError(f"expected a float64 feature column, got {col.type}", field=name)
        v = np.asarray(pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
        bad = np.flatnonzero(np.isinf(v))
        if len(bad):
            i = int(bad[0])
            raise InputError(f"alert {alert_ids[i]!r} (row {i}) has an infinite value", field=name, value=v[i])
        values[:, j] = v
    return Inputs(alert_ids, rule_ids, fire_us, values, names)
