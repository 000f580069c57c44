"""Mapping files: how one export (CSV, JSON-lines, Parquet) becomes canonical rows.

The format is specified in ``docs/mapping.md``; every key accepted here is documented there (a test
checks it). Loading validates everything that can be checked without the data, so that a typo fails
at once with the file, line and key instead of quarantining a million records.
"""

from __future__ import annotations

import codecs
import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import duckdb

from flagstone._yaml import LocatedYaml, load_located
from flagstone.config import Config, load_config
from flagstone.errors import MappingError
from flagstone.events import (
    CATALOGUE_COLUMNS,
    CURRENCIES,
    ENTITY_COLUMNS,
    EVENT_COLUMNS,
    Column,
    ValueType,
)
from flagstone.ingest._compute import Computation, ComputeError, parse
from flagstone.ingest._special import refuse_special

TARGET_COLUMNS: dict[str, tuple[Column, ...]] = {
    "events": EVENT_COLUMNS,
    "entities": ENTITY_COLUMNS,
    "catalogue": CATALOGUE_COLUMNS,
}
# The field that, with the source, identifies a row: a second row with the same key is a duplicate.
KEY_FIELD: dict[str, str] = {"events": "event_id", "entities": "entity", "catalogue": "item"}
# Identifiers of people and accounts: pseudonymised whatever the mapping says.
ALWAYS_PERSONAL: dict[str, frozenset[str]] = {
    "events": frozenset({"actor", "counterparty"}),
    "entities": frozenset({"entity"}),
    "catalogue": frozenset(),
}
# Set by Flagstone itself, never by a mapping's `fields`.
IMPLICIT_FIELDS = frozenset({"source", "attrs"})
# Pseudonymising these would break dedup, rules or validation.
NEVER_PERSONAL = frozenset({"event_id", "kind", "currency", "item", "category"})

FORMATS = ("csv", "jsonl", "parquet")
TS_KEYWORDS = ("iso", "epoch_s", "epoch_ms")
UNMAPPED = ("keep", "null", "quarantine")

TOP_KEYS = ("source", "target", "format", "description", "csv", "timezone", "fields", "attrs", "personal")
CSV_KEYS = (
    "delimiter",
    "quote",
    "escape",
    "decimal",
    "thousands",
    "encoding",
    "header",
    "columns",
    "skip_rows",
)
FIELD_KEYS = (
    "column",
    "value",
    "format",
    "timezone",
    "map",
    "unmapped",
    "lookup",
    "key",
    "decimal",
    "thousands",
    "round",
    "compute",
)
ATTR_KEYS = ("column", "value", "map", "unmapped")

DECIMAL_MARKS = (".", ",")
THOUSANDS_MARKS = (",", ".", " ", "'", "_", "\u00a0", "\u202f")


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quote: str | None = '"'
    escape: str | None = None
    decimal: str = "."
    thousands: str | None = None
    encoding: str = "utf-8"
    header: bool = True
    columns: tuple[str, ...] | None = None
    skip_rows: int = 0


@dataclass(frozen=True)
class FieldSpec:
    """How to get one canonical field (or one ``attrs`` entry) from a source record."""

    name: str
    type: ValueType
    column: str | None = None
    value: str | None = None
    formats: tuple[str, ...] = ("iso",)
    timezone: str | None = None
    map: dict[str, str | None] | None = None
    unmapped: str = "keep"
    lookup: bool = False
    decimal: str | None = None
    thousands: str | None = None
    round: int | None = None
    compute: Computation | None = None
    personal: bool = False
    line: int | None = None

    @property
    def label(self) -> str:
        """How messages name where a value came from."""
        if self.compute is not None:
            return f"compute '{self.compute.text}'"
        return f"column '{self.column}'" if self.column is not None else "constant"

    @property
    def reads(self) -> tuple[str, ...]:
        """The source columns this field is made from."""
        if self.compute is not None:
            return self.compute.operands
        return (self.column,) if self.column is not None else ()


@dataclass(frozen=True)
class Mapping:
    path: Path
    source: str
    target: str
    format: str | None
    csv: CsvOptions
    timezone: str
    fields: tuple[FieldSpec, ...]
    attrs: tuple[FieldSpec, ...] = ()

    @property
    def key_field(self) -> str:
        return KEY_FIELD[self.target]

    @property
    def columns(self) -> tuple[Column, ...]:
        return TARGET_COLUMNS[self.target]

    def spec(self, name: str) -> FieldSpec | None:
        return next((f for f in self.fields if f.name == name), None)

    def specs(self) -> tuple[FieldSpec, ...]:
        return self.fields + self.attrs

    def source_columns(self) -> dict[str, FieldSpec]:
        """Each source column the mapping reads, with the first spec that reads it."""
        out: dict[str, FieldSpec] = {}
        for spec in self.specs():
            for column in spec.reads:
                out.setdefault(column, spec)
        return out


class _Reader:
    """Walks the located YAML and raises MappingError pointing at the offending line."""

    def __init__(self, doc: LocatedYaml) -> None:
        self.doc = doc

    def fail(self, message: str, *keys: Any, value: Any = None) -> MappingError:
        where = ".".join(str(k) for k in keys) or None
        return MappingError(message, path=self.doc.path, line=self.doc.line(*keys), field=where, value=value)

    def table(self, data: Any, allowed: tuple[str, ...], *keys: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.fail(f"expected a mapping of keys ({', '.join(allowed)}), got {data!r}", *keys)
        for key in data:
            if key not in allowed:
                raise self.fail(
                    f"unknown key '{key}'{_suggest(key, allowed)}; allowed: {', '.join(allowed)}", *keys, key
                )
        return data

    def string(self, data: Any, *keys: Any, choices: tuple[str, ...] | None = None) -> str:
        if isinstance(data, bool) or not isinstance(data, str | int) or str(data) == "":
            raise self.fail(f"expected a non-empty string, got {data!r}", *keys, value=data)
        text = str(data)
        if choices is not None and text not in choices:
            raise self.fail(f"'{text}' is not one of: {', '.join(choices)}{_suggest(text, choices)}", *keys, value=text)
        return text

    def char(self, data: Any, *keys: Any, choices: tuple[str, ...] | None = None) -> str:
        text = {"tab": "\t", "space": " "}.get(data, data) if isinstance(data, str) else data
        if not isinstance(text, str) or len(text) != 1 or (choices is None and not text.isascii()):
            raise self.fail(f"expected one ASCII character (or 'tab'), got {data!r}", *keys, value=data)
        if choices is not None and text not in choices:
            raise self.fail(f"{data!r} is not one of {choices!r}", *keys, value=data)
        return text


def load_mapping(path: str | Path, config: Config | None = None) -> Mapping:
    """Read and validate a mapping file; any problem raises MappingError with file, line and key.

    Special categories and the ``protected_fields`` of ``config`` (by default the deployment's)
    are refused here, as in rules (``_special``).
    """
    doc = load_located(path, MappingError)
    r = _Reader(doc)
    top = r.table(doc.data, TOP_KEYS)
    for required in ("source", "fields"):
        if required not in top:
            raise r.fail(f"missing required key '{required}' (see docs/mapping.md)")
    source = r.string(top["source"], "source")
    target = r.string(top.get("target", "events"), "target", choices=tuple(TARGET_COLUMNS))
    fmt = r.string(top["format"], "format", choices=FORMATS) if "format" in top else None
    csv = _csv_options(r, top.get("csv", {}))
    timezone = _timezone(r, top.get("timezone", "UTC"), "timezone")
    personal = _personal_names(r, top.get("personal", []))

    fields_data = r.table(top["fields"], tuple(c.name for c in TARGET_COLUMNS[target]), "fields")
    specs: list[FieldSpec] = []
    for col in TARGET_COLUMNS[target]:
        if col.name in IMPLICIT_FIELDS and col.name in fields_data:
            raise r.fail(
                f"'{col.name}' is set by Flagstone, not mapped"
                + (" (use the top-level `source`)" if col.name == "source" else " (use `attrs`)"),
                "fields",
                col.name,
            )
        if col.name in fields_data:
            is_personal = col.name in ALWAYS_PERSONAL[target] or col.name in personal
            specs.append(_field(r, col, fields_data[col.name], target, is_personal))
        elif col.required and col.name not in IMPLICIT_FIELDS:
            raise r.fail(f"required field '{col.name}' is not mapped; every {target} record needs it", "fields")

    for s in specs:  # a field's own decimal mark against the mapping's thousands, or the reverse
        thousands = s.thousands if s.thousands is not None else csv.thousands
        if s.type == "decimal" and thousands is not None and thousands == (s.decimal or csv.decimal):
            raise r.fail(
                f"'{s.name}' would read '{thousands}' as both the decimal and the thousands separator; "
                "set both `decimal` and `thousands` on the field",
                "fields",
                s.name,
            )

    attrs: list[FieldSpec] = []
    attrs_data = top.get("attrs", {})
    if attrs_data and target != "events":
        raise r.fail(f"`attrs` only applies to target events, not {target}", "attrs")
    if not isinstance(attrs_data, dict):
        raise r.fail("expected a mapping {attr name: column}", "attrs")
    for name, spec in attrs_data.items():
        attrs.append(_attr(r, str(name), spec, f"attrs.{name}" in personal))

    placed = [(s, ("fields", s.name), fields_data[s.name]) for s in specs]
    placed += [(s, ("attrs", k), d) for s, (k, d) in zip(attrs, attrs_data.items(), strict=True)]
    read: list[tuple[str, str | None, tuple[str, ...], bool]]
    read = [(s.name, s.column, keys, isinstance(data, dict)) for s, keys, data in placed]
    # A computed field reads its operands: each is checked like a column, pointing at `compute`.
    read += [(s.name, c, (*keys, "compute"), False) for s, keys, _ in placed if s.compute for c in s.compute.operands]
    refuse_special(r.fail, source, read, config if config is not None else load_config())
    mapped = {s.name for s in specs} | {s.name for s in attrs}
    if any(s.lookup for s in specs) and "item" not in mapped:
        raise r.fail(
            "the catalogue lookup finds categories by item, but `item` is not mapped",
            "fields",
            "category",
            "lookup",
        )
    for i, name in enumerate(personal):
        target_col = {c.name: c for c in TARGET_COLUMNS[target]}.get(name)
        if name not in mapped:
            raise r.fail(f"'{name}' is marked personal but not mapped", "personal", i, value=name)
        if name in NEVER_PERSONAL or (target_col is not None and target_col.type != "string"):
            raise r.fail(
                f"'{name}' cannot be pseudonymised (only free-text identifiers can)",
                "personal",
                i,
                value=name,
            )
    return Mapping(
        path=Path(path),
        source=source,
        target=target,
        format=fmt,
        csv=csv,
        timezone=timezone,
        fields=tuple(specs),
        attrs=tuple(attrs),
    )


def _csv_options(r: _Reader, data: Any) -> CsvOptions:
    d = r.table(data, CSV_KEYS, "csv")
    opts: dict[str, Any] = {}
    if "delimiter" in d:
        opts["delimiter"] = r.char(d["delimiter"], "csv", "delimiter")
    if "quote" in d:
        opts["quote"] = None if d["quote"] in (None, False) else r.char(d["quote"], "csv", "quote")
    if "escape" in d:
        opts["escape"] = None if d["escape"] in (None, False) else r.char(d["escape"], "csv", "escape")
    opts.update(_number_format(r, d, "csv"))
    if "encoding" in d:
        enc = r.string(d["encoding"], "csv", "encoding")
        try:
            info = codecs.lookup(enc)
        except LookupError:
            raise r.fail(
                f"unknown encoding '{enc}'; expected e.g. utf-8, latin-1, cp1252",
                "csv",
                "encoding",
                value=enc,
            ) from None
        if info.name.startswith("utf-16") or info.name.startswith("utf-32"):
            raise r.fail(
                f"encoding '{enc}' is not supported; convert the file to utf-8 first",
                "csv",
                "encoding",
                value=enc,
            )
        opts["encoding"] = info.name
    if "header" in d:
        if not isinstance(d["header"], bool):
            raise r.fail(f"expected true or false, got {d['header']!r}", "csv", "header")
        opts["header"] = d["header"]
    if "columns" in d:
        cols = d["columns"]
        if not isinstance(cols, list) or not cols:
            raise r.fail("expected a list of column names", "csv", "columns")
        opts["columns"] = tuple(r.string(c, "csv", "columns", i) for i, c in enumerate(cols))
        if len(set(opts["columns"])) != len(opts["columns"]):
            raise r.fail("column names must be unique", "csv", "columns")
    if opts.get("header", True) == ("columns" in opts):
        raise r.fail("give `columns` exactly when `header: false` (a file without a header row)", "csv")
    if "skip_rows" in d:
        n = d["skip_rows"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise r.fail(f"expected a whole number ≥ 0, got {n!r}", "csv", "skip_rows")
        opts["skip_rows"] = n
    result = CsvOptions(**opts)
    special = {result.delimiter, result.quote, result.escape} - {None}
    if len(special) != len([c for c in (result.delimiter, result.quote, result.escape) if c is not None]):
        raise r.fail("delimiter, quote and escape must be different characters", "csv")
    return result


def _number_format(r: _Reader, d: dict[str, Any], *keys: Any) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    if "decimal" in d:
        out["decimal"] = r.char(d["decimal"], *keys, "decimal", choices=DECIMAL_MARKS)
    if "thousands" in d:
        out["thousands"] = (
            None
            if d["thousands"] in (None, False)
            else r.char(d["thousands"], *keys, "thousands", choices=THOUSANDS_MARKS)
        )
    if out.get("thousands") is not None and out.get("thousands") == out.get("decimal", "."):
        raise r.fail("the thousands separator must differ from the decimal separator", *keys, "thousands")
    return out


@cache
def _known_timezones() -> frozenset[str]:
    # The names DuckDB's ICU knows are the ones that will actually be used for conversion.
    with duckdb.connect() as con:
        return frozenset(row[0] for row in con.execute("SELECT name FROM pg_timezone_names()").fetchall())


def _timezone(r: _Reader, data: Any, *keys: Any) -> str:
    name = r.string(data, *keys)
    if name not in _known_timezones():
        raise r.fail(
            f"unknown time zone '{name}'{_suggest(name, tuple(_known_timezones()))}; expected an IANA name "
            "such as Europe/Stockholm or UTC",
            *keys,
            value=name,
        )
    return name


def _personal_names(r: _Reader, data: Any) -> tuple[str, ...]:
    if not isinstance(data, list):
        raise r.fail("expected a list of field names, e.g. [place, attrs.customer_name]", "personal")
    return tuple(r.string(v, "personal", i) for i, v in enumerate(data))


def _scalar_text(r: _Reader, value: Any, *keys: Any) -> str | None:
    """YAML scalars as the text a source column would have held."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise r.fail(f"expected a single value, got {value!r}", *keys, value=value)


def _value_map(r: _Reader, data: Any, *keys: Any) -> dict[str, str | None]:
    if not isinstance(data, dict) or not data:
        raise r.fail("expected a mapping {source value: canonical value}", *keys)
    out: dict[str, str | None] = {}
    for k, v in data.items():
        # YAML 1.1 reads yes/no/on/off as booleans and 1.0 as a float: the source text is lost.
        if isinstance(k, bool) or not isinstance(k, str | int):
            raise r.fail(f'map key {k!r} was not read as text; put it in quotes, e.g. "{k}"', *keys, k)
        out[str(k)] = _scalar_text(r, v, *keys, k)
    return out


def _spec_common(r: _Reader, d: dict[str, Any], keys: tuple[Any, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"line": r.doc.line(*keys)}
    if "column" in d:
        out["column"] = r.string(d["column"], *keys, "column")
    if "value" in d:
        out["value"] = _scalar_text(r, d["value"], *keys, "value")
        if out["value"] is None:
            raise r.fail("a constant `value` cannot be empty", *keys, "value")
    if "column" in out and "value" in out:
        raise r.fail("give either `column` or `value`, not both", *keys)
    if "map" in d:
        out["map"] = _value_map(r, d["map"], *keys, "map")
    if "unmapped" in d:
        if "map" not in d:
            raise r.fail("`unmapped` only applies together with `map`", *keys, "unmapped")
        unmapped = "null" if d["unmapped"] is None else d["unmapped"]  # YAML reads `null` as None
        out["unmapped"] = r.string(unmapped, *keys, "unmapped", choices=UNMAPPED)
    return out


def _field(r: _Reader, col: Column, data: Any, target: str, personal: bool) -> FieldSpec:
    keys = ("fields", col.name)
    d = {"column": data} if isinstance(data, str | int) and not isinstance(data, bool) else data
    d = r.table(d, FIELD_KEYS, *keys)
    spec = _spec_common(r, d, keys)
    if col.type == "timestamp":
        if "map" in d:
            raise r.fail("`map` does not apply to timestamps", *keys, "map")
        if "format" in d:
            spec["formats"] = _ts_formats(r, d["format"], *keys, "format")
        if "timezone" in d:
            spec["timezone"] = _timezone(r, d["timezone"], *keys, "timezone")
    else:
        for key in ("format", "timezone"):
            if key in d:
                raise r.fail(f"`{key}` only applies to timestamp fields, not {col.type} '{col.name}'", *keys, key)
    if col.type == "decimal":
        spec.update(_number_format(r, d, *keys))
        if "compute" in d:
            spec["compute"] = _computation(r, d, keys)
        if "round" in d:
            places = d["round"]
            if isinstance(places, bool) or not isinstance(places, int) or not 0 <= places <= 4:
                raise r.fail(f"expected a whole number of decimal places from 0 to 4, got {places!r}", *keys, "round")
            spec["round"] = places
    else:
        for key in ("decimal", "thousands", "round", "compute"):
            if key in d:
                raise r.fail(f"`{key}` only applies to number fields, not {col.type} '{col.name}'", *keys, key)
    if "lookup" in d or "key" in d:
        if (target, col.name) != ("events", "category"):
            raise r.fail("`lookup` only applies to the events field `category`", *keys, "lookup")
        r.string(d.get("lookup"), *keys, "lookup", choices=("catalogue",))
        r.string(d.get("key", "item"), *keys, "key", choices=("item",))
        spec["lookup"] = True
    if not ({"column", "value", "compute"} & spec.keys()) and not spec.get("lookup"):
        raise r.fail("give `column`, `value`, `compute` or `lookup`", *keys)
    if spec.get("value") is not None and not spec.get("map"):
        _check_constant(r, col, spec["value"], *keys, "value")
    return FieldSpec(name=col.name, type=col.type, personal=personal, **spec)


def _computation(r: _Reader, d: dict[str, Any], keys: tuple[Any, ...]) -> Computation:
    """``compute: "qty * unit_price"``: parsed now, so a bad expression fails before any record."""
    others = [k for k in ("column", "value", "map", "unmapped") if k in d]
    if others:
        raise r.fail(f"give either `compute` or `{others[0]}`, not both", *keys)
    text = r.string(d["compute"], *keys, "compute")
    try:
        return parse(text)
    except ComputeError as exc:
        raise r.fail(f"{exc.message} at position {exc.position} of {text!r}", *keys, "compute", value=text) from None


def _attr(r: _Reader, name: str, data: Any, personal: bool) -> FieldSpec:
    keys = ("attrs", name)
    d = {"column": data} if isinstance(data, str | int) and not isinstance(data, bool) else data
    d = r.table(d, ATTR_KEYS, *keys)
    spec = _spec_common(r, d, keys)
    if not ({"column", "value"} & spec.keys()):
        raise r.fail("give `column` or `value`", *keys)
    return FieldSpec(name=f"attrs.{name}", type="json", personal=personal, **spec)


def _ts_formats(r: _Reader, data: Any, *keys: Any) -> tuple[str, ...]:
    items = data if isinstance(data, list) else [data]
    formats = tuple(r.string(v, *keys) for v in items)
    keywords = [f for f in formats if f in TS_KEYWORDS]
    if keywords and len(formats) > 1:
        raise r.fail(f"'{keywords[0]}' cannot be combined with other formats", *keys)
    patterns = [f for f in formats if f not in TS_KEYWORDS]
    for f in patterns:
        if "%" not in f:
            raise r.fail(
                f"'{f}' is neither {', '.join(TS_KEYWORDS)} nor a strptime pattern like '%d.%m.%Y %H:%M'",
                *keys,
                value=f,
            )
    if len({_has_offset(f) for f in patterns}) > 1:
        raise r.fail("either all formats carry an offset (%z) or none does", *keys)
    if patterns:
        with duckdb.connect() as con:
            try:
                con.execute(f"SELECT try_strptime('', {_sql_list(patterns)})")
            except duckdb.Error as exc:
                raise r.fail(f"not a valid strptime pattern: {exc}", *keys, value=data) from None
    return formats


def _has_offset(fmt: str) -> bool:
    return "%z" in fmt or "%Z" in fmt


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + s.replace("'", "''") + "'" for s in items) + "]"


def _check_constant(r: _Reader, col: Column, value: str, *keys: Any) -> None:
    """Constants are checked here, once, rather than quarantining every record."""
    if col.name == "currency" and value.upper() not in CURRENCIES:
        raise r.fail(f"unknown currency '{value}'; expected an ISO 4217 code such as EUR", *keys, value=value)
    if col.type == "decimal":
        try:
            float(value)
        except ValueError:
            raise r.fail(f"'{value}' is not a number", *keys, value=value) from None
    if col.type == "boolean" and value.lower() not in BOOLEAN_TEXT:
        raise r.fail(f"'{value}' is not one of {', '.join(BOOLEAN_TEXT)}", *keys, value=value)
    if col.type == "timestamp":
        raise r.fail("a timestamp cannot be a constant", *keys, value=value)


BOOLEAN_TEXT: dict[str, bool] = {
    "true": True, "t": True, "yes": True, "y": True, "1": True,
    "false": False, "f": False, "no": False, "n": False, "0": False,
}  # fmt: skip


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
