"""One DuckDB query per batch that converts, validates and pseudonymises every record at once.

The query is built from the mapping in steps (CTEs), each a pure function of the one before:

1. ``src``: each source column the mapping reads, as text (blank becomes NULL) and as typed as the
   source allows (``o_i``, ``y_i``), and the operands of computed fields (``a_i_k``);
   then, for computed fields only, ``cmp0`` reads the operands as exact units and ``cmp1`` ...
   compute the expression's nodes, one step per height of the tree (``_compute``);
2. ``txt``: value maps applied and numbers normalised (``t_i``; a computed field's result);
3. ``val``: typed values with ``try_cast``/``try_strptime`` (``v_i``);
4. the result: canonical columns, with pseudonyms joined in from ``__fs_pseudonyms(v, p)``, plus
   ``__fs_err``, the first problem of the record (field, value, reason) or NULL. A record with a
   problem is quarantined whole; the others are loaded.

A smaller query over the same steps lists a batch's distinct personal values, so that their
pseudonyms are ready before the main query runs. Nothing here loops over records in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flagstone.events import CURRENCIES, DECIMAL_SQL, EVENT_FIELDS, Column
from flagstone.ingest import _compute
from flagstone.ingest._identities import PSEUDONYMS
from flagstone.ingest._mapping import BOOLEAN_TEXT, FieldSpec, Mapping
from flagstone.ingest._sources import REC, Projected, Source, quote_ident, quote_str

CATALOGUE_VIEW = "__fs_catalogue"
ERR = "__fs_err"
ERR_TYPE = "STRUCT(field VARCHAR, value VARCHAR, reason VARCHAR)"

# Timestamps outside this range are nearly always a wrong unit (ms read as s) or a typo.
TS_MIN, TS_MAX = "1900-01-01", "2200-01-01"
_OFFSET_RE = r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d*)?)?\s*([Zz]|[+-]\d{2}(:?\d{2})?)$"


@dataclass(frozen=True)
class Conversion:
    """The queries for one batch (registered as ``__fs_batch``)."""

    rows_sql: str  # __fs_rec, __fs_err, then the canonical columns
    personal_sql: str | None  # distinct personal values (column v) to pseudonymise first
    columns: tuple[Column, ...]  # canonical output columns, in table order


def build(mapping: Mapping, source: Source) -> Conversion:
    specs = mapping.specs()
    # The reference tables carry `source` too, though it is not one of their documented columns.
    columns = mapping.columns
    if "source" not in {c.name for c in columns}:
        columns = (*columns, EVENT_FIELDS["source"])
    steps, checks = _steps(mapping, source)
    index = {s.name: i for i, s in enumerate(specs)}

    joins = [f"LEFT JOIN {PSEUDONYMS} AS pz_{i} ON pz_{i}.v = val.v_{i}" for i, s in enumerate(specs) if s.personal]
    category = mapping.spec("category")
    if category is not None and category.lookup:
        joins.append(f"LEFT JOIN {CATALOGUE_VIEW} AS __fs_cat ON __fs_cat.item = val.v_{index['item']}")
    out = [f"val.{REC}", _error_expr(checks)]
    out += [f"{_output_expr(col, mapping, index)} AS {quote_ident(col.name)}" for col in columns]
    rows_sql = f"{steps}\nSELECT {', '.join(out)} FROM val {' '.join(joins)}"

    personal = [f"SELECT v_{i} AS v FROM val" for i, s in enumerate(specs) if s.personal]
    personal_sql = (
        f"{steps}\nSELECT DISTINCT v FROM ({' UNION ALL '.join(personal)}) WHERE v IS NOT NULL" if personal else None
    )
    return Conversion(rows_sql, personal_sql, columns)


def _steps(mapping: Mapping, source: Source) -> tuple[str, list[str]]:
    """The ``WITH src, txt, val`` prefix, and the error checks (``WHEN ...`` branches) over ``val``."""
    specs = mapping.specs()
    source_columns = list(dict.fromkeys(c for s in specs for c in s.reads))
    relation = source.prepare_sql(source_columns)
    projected = {c: source.project(c) for c in source_columns}
    src = [f"{REC}", f"{source.record_error_sql() or 'NULL'} AS __fs_rec_err"]
    computed: list[list[str]] = []  # columns of the steps cmp0, cmp1, ... between src and txt
    txt: list[str] = []
    val: list[str] = []
    checks: list[str] = []
    for i, spec in enumerate(specs):
        p = projected[spec.column] if spec.column is not None else None
        src += _source_exprs(i, spec, p)
        text = _text_expr(i, spec, p, mapping)
        if spec.compute is not None:
            for k, c in enumerate(spec.compute.operands):  # each operand's text and its typed value
                src += [f"{_blank_is_null(projected[c].text)} AS a_{i}_{k}", f"{projected[c].typed} AS b_{i}_{k}"]
            result, more = _compute_steps(i, spec, projected, mapping, computed)
            text, checks = _compute.units_text(result), checks + more
        txt.append(f"{text} AS t_{i}")
        val.append(f"{_value_expr(i, spec, p, mapping)} AS v_{i}")
        checks += _checks(i, spec, p, mapping)
    ctes = [f"src AS (SELECT {', '.join(src)} FROM {relation})"]
    for h, columns in enumerate(computed):
        ctes.append(f"cmp{h} AS (SELECT *, {', '.join(columns)} FROM {'src' if h == 0 else f'cmp{h - 1}'})")
    ctes.append(f"txt AS (SELECT *, {', '.join(txt)} FROM {f'cmp{len(computed) - 1}' if computed else 'src'})")
    ctes.append(f"val AS (SELECT *, {', '.join(val)} FROM txt)")
    return "WITH " + ",\n".join(ctes), checks


def _compute_steps(
    i: int,
    spec: FieldSpec,
    projected: dict[str, Projected],
    mapping: Mapping,
    computed: list[list[str]],
) -> tuple[str, list[str]]:
    """Add field ``i``'s computation to the steps (``computed[h]``: the columns of step h); return
    the column of its result and its checks: each operand missing, not a number, too large, too
    precise, in order; then a division by zero; then a step out of range."""
    assert spec.compute is not None
    units: dict[str, str] = {}
    if not computed:
        computed.append([])
    checks: list[str] = []
    for k, column in enumerate(spec.compute.operands):
        a = f"a_{i}_{k}"
        number = _number_text(a, f"b_{i}_{k}", spec, projected[column], mapping)
        computed[0].append(f"{_compute.units_sql(number)} AS u_{i}_{k}")
        units[column] = f"u_{i}_{k}"
        d12, d24 = f"try_cast({number} AS DECIMAL(38,12))", f"try_cast({number} AS DECIMAL(38,24))"
        problems = (
            (f"{a} IS NULL", "missing, but the computation needs it"),
            (f"{d12} IS NULL", "not a number; expected e.g. 1234.56"),
            (f"abs({d12}) >= {_compute.LIMIT}", "too large: at most 14 digits before the decimal point"),
            (f"{d12} <> {d24}", "more than 12 decimal places"),
        )
        checks += [_when(spec, cond, a, f"column '{column}': {why}") for cond, why in problems]
    plan = _compute.to_sql(spec.compute, f"e_{i}", units)
    for h, step in enumerate(plan.steps, start=1):
        while len(computed) <= h:
            computed.append([])
        computed[h] += [f"{sql} AS {name}" for name, sql in step]
    checks += [_when(spec, f"{d} = 0", "NULL", "division by zero") for d in plan.divisors]
    checks.append(
        _when(
            spec, f"{plan.result} IS NULL", "NULL", "a step of the computation has more than 14 digits before the point"
        )
    )
    return plan.result, checks


def _when(spec: FieldSpec, condition: str, value: str, message: str) -> str:
    reason = _reason(spec, message)
    return f"WHEN {condition} THEN struct_pack(field := {quote_str(spec.name)}, value := {value}, reason := {reason})"


def _source_exprs(i: int, spec: FieldSpec, p: Projected | None) -> list[str]:
    if p is None:  # a constant, a computation, or a lookup with nothing from the source
        const = quote_str(spec.value) if spec.value is not None else "NULL"
        return [f"CAST({const} AS VARCHAR) AS o_{i}", f"NULL AS y_{i}"]
    return [f"{_blank_is_null(p.text)} AS o_{i}", f"{p.typed} AS y_{i}"]


def _blank_is_null(text: str) -> str:
    # regexp_full_match is several times faster than trim() with a character set here.
    return f"CASE WHEN regexp_full_match({text}, '\\s*') THEN NULL ELSE {text} END"


def _number_format(spec: FieldSpec, mapping: Mapping) -> tuple[str, str | None]:
    """The field's own format, else the mapping's (``csv.decimal``, ``csv.thousands``): one source
    writes its numbers one way, whether it sends a CSV file, JSON lines or a posted record."""
    decimal = spec.decimal or mapping.csv.decimal
    thousands = spec.thousands if spec.thousands is not None else mapping.csv.thousands
    return decimal, thousands


def _text_expr(i: int, spec: FieldSpec, p: Projected | None, mapping: Mapping) -> str:
    text = f"o_{i}"
    if spec.map:
        whens = " ".join(
            f"WHEN {quote_str(k)} THEN {quote_str(v) if v is not None else 'NULL'}" for k, v in spec.map.items()
        )
        other = text if spec.unmapped == "keep" else "NULL"
        text = f"(CASE {text} {whens} ELSE {other} END)"
    if spec.type == "decimal":
        return _number_text(text, f"y_{i}", spec, p, mapping)
    return text


def _number_text(text: str, typed: str, spec: FieldSpec, p: Projected | None, mapping: Mapping) -> str:
    """A number's text (``typed``: its value as the source has it) with the thousands separator
    removed and '.' as the decimal point."""
    if p is not None and p.kind != "text":
        return text
    decimal, thousands = _number_format(spec, mapping)
    formatted = f"trim({text})"
    if thousands:
        formatted = f"replace({formatted}, {quote_str(thousands)}, '')"
    if decimal != ".":
        formatted = f"replace({formatted}, {quote_str(decimal)}, '.')"
    if p is not None and p.json:
        # A JSON number is a number already: stripping '.' as thousands would multiply it.
        return f"(CASE WHEN json_type({typed}) = 'VARCHAR' THEN {formatted} ELSE {text} END)"
    return formatted


def _local_to_utc(expr: str, tz: str) -> str:
    # ICU resolves a local time in a DST gap or overlap to standard time; documented in mapping.md.
    return expr if tz == "UTC" else f"timezone('UTC', timezone({quote_str(tz)}, {expr}))"


def _ts_value(i: int, spec: FieldSpec, p: Projected | None, mapping: Mapping) -> str:
    tz = spec.timezone or mapping.timezone
    t = f"t_{i}"
    if p is not None and p.kind == "timestamptz":
        return f"timezone('UTC', y_{i})"
    if p is not None and p.kind == "timestamp":
        return _local_to_utc(f"CAST(y_{i} AS TIMESTAMP)", tz)
    fmt = spec.formats
    if fmt == ("epoch_s",) or fmt == ("epoch_ms",):
        scale = 1_000_000 if fmt == ("epoch_s",) else 1_000
        micros = f"try_cast(try_cast({t} AS DECIMAL(38,6)) * {scale} AS BIGINT)"
        in_range = f"{micros} BETWEEN {_micros(TS_MIN)} AND {_micros(TS_MAX)}"
        return f"(CASE WHEN {in_range} THEN make_timestamp({micros}) END)"
    if fmt == ("iso",):
        with_offset = f"timezone('UTC', try_cast({t} AS TIMESTAMPTZ))"
        local = _local_to_utc(f"try_cast({t} AS TIMESTAMP)", tz)
        return f"(CASE WHEN regexp_matches({t}, {quote_str(_OFFSET_RE)}) THEN {with_offset} ELSE {local} END)"
    parsed = f"try_strptime({t}, [{', '.join(quote_str(f) for f in fmt)}])"
    if any("%z" in f or "%Z" in f for f in fmt):
        return f"timezone('UTC', {parsed})"
    return _local_to_utc(parsed, tz)


def _micros(day: str) -> int:
    return int((datetime.fromisoformat(day) - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


def _value_expr(i: int, spec: FieldSpec, p: Projected | None, mapping: Mapping) -> str:
    t = f"t_{i}"
    if spec.type == "timestamp":
        return _ts_value(i, spec, p, mapping)
    if spec.type == "decimal":
        if spec.round is not None:
            # Sources with more precision than the store keeps say so in the mapping: round, explicitly.
            return f"try_cast(round(try_cast({t} AS DECIMAL(38,12)), {spec.round}) AS {DECIMAL_SQL})"
        return f"try_cast({t} AS {DECIMAL_SQL})"
    if spec.type == "boolean":
        whens = " ".join(f"WHEN {quote_str(k)} THEN {'true' if v else 'false'}" for k, v in BOOLEAN_TEXT.items())
        return f"(CASE lower(trim({t})) {whens} END)"
    if spec.name in ("currency", "country"):
        return f"upper(trim({t}))"
    if spec.name == "entity_type":
        return f"lower(trim({t}))"
    if spec.type == "json":
        # Keep JSON and Parquet values typed inside attrs unless the mapping rewrote them as text.
        typed = p is not None and p.typed != p.text and not spec.map and not spec.personal
        return f"y_{i}" if typed else t
    return t


def _reason(spec: FieldSpec, message: str) -> str:
    return quote_str(f"{spec.label}: {message}")


def _checks(i: int, spec: FieldSpec, p: Projected | None, mapping: Mapping) -> list[str]:
    """``WHEN bad THEN {field, value, reason}`` branches, most basic problem first."""
    o, t, v = f"o_{i}", f"t_{i}", f"v_{i}"
    field = quote_str(spec.name)
    displayed = t if spec.compute is not None else o  # a computed field shows its result
    out: list[str] = []

    def when(cond: str, reason_sql: str) -> None:
        out.append(f"WHEN {cond} THEN struct_pack(field := {field}, value := {displayed}, reason := {reason_sql})")

    if p is not None and spec.type != "json":
        # PostgreSQL text cannot hold NUL, and the case database takes these values from the store.
        when(
            f"{o} IS NOT NULL AND contains({o}, chr(0))",
            _reason(spec, "contains a NUL character (\\u0000), which the case database cannot store"),
        )
    if spec.map and spec.unmapped == "quarantine":
        keys = ", ".join(quote_str(k) for k in spec.map)
        shown = ", ".join(list(spec.map)[:10]) + (", ..." if len(spec.map) > 10 else "")
        when(
            f"{o} IS NOT NULL AND {o} NOT IN ({keys})",
            _reason(spec, f"value not in the map; expected one of: {shown}"),
        )
    column = next((c for c in mapping.columns if c.name == spec.name), None)
    if column is not None and column.required:
        when(f"{t} IS NULL", _reason(spec, "missing, but every record needs it"))
    if spec.type == "timestamp":
        out_of_range = _reason(spec, "outside 1900-2199 after conversion to UTC; check the unit (epoch_s or epoch_ms)")
        unparsed = _reason(spec, _ts_expectation(spec))
        if spec.formats in (("epoch_s",), ("epoch_ms",)) and (p is None or p.kind == "text"):
            unparsed = f"CASE WHEN try_cast({t} AS DECIMAL(38,6)) IS NULL THEN {unparsed} ELSE {out_of_range} END"
        when(f"{t} IS NOT NULL AND {v} IS NULL", unparsed)
        when(f"{v} NOT BETWEEN TIMESTAMP '{TS_MIN}' AND TIMESTAMP '{TS_MAX}'", out_of_range)
    elif spec.type == "decimal":
        decimal, thousands = _number_format(spec, mapping)
        sep = f"'{decimal}' as decimal separator" + (f" and '{thousands}' for thousands" if thousands else "")
        too_big = _reason(spec, "too large for DECIMAL(18,4): at most 14 digits before the decimal point")
        not_number = _reason(spec, f"not a number; expected e.g. 1234{decimal}56 ({sep})")
        as_double = f"try_cast({t} AS DOUBLE)"  # a number too large even for a double is infinite
        when(
            f"{t} IS NOT NULL AND {v} IS NULL",
            f"CASE WHEN isfinite({as_double}) OR isinf({as_double}) THEN {too_big} ELSE {not_number} END",
        )
        if spec.round is None:
            when(
                f"{v} IS NOT NULL AND try_cast({t} AS DECIMAL(38,12)) <> {v}",
                _reason(spec, "more than 4 decimal places; DECIMAL(18,4) would round it (or set `round`)"),
            )
        if spec.name == "quantity":
            when(f"{v} < 0", _reason(spec, "negative quantity; expected 0 or more"))
    elif spec.type == "boolean":
        when(
            f"{t} IS NOT NULL AND {v} IS NULL",
            _reason(spec, "not a boolean; expected true/false, yes/no or 1/0 (or add a `map`)"),
        )
    elif spec.name == "currency":
        codes = ", ".join(quote_str(c) for c in sorted(CURRENCIES))
        when(
            f"{v} IS NOT NULL AND {v} NOT IN ({codes})",
            _reason(spec, "unknown currency; expected an ISO 4217 code such as EUR or USD"),
        )
    elif spec.name == "country":
        when(
            f"{v} IS NOT NULL AND NOT regexp_matches({v}, '^[A-Z]{{2,3}}$')",
            _reason(spec, "not a country code; expected ISO 3166 such as SE or SWE"),
        )
    elif spec.name == "entity_type":
        when(
            f"{v} IS NOT NULL AND {v} NOT IN ('person', 'organisation')",
            _reason(spec, "expected person or organisation (or add a `map`)"),
        )
    return out


def _ts_expectation(spec: FieldSpec) -> str:
    fmt = spec.formats
    if fmt == ("epoch_s",):
        return "not a number of seconds since 1970-01-01 (format epoch_s)"
    if fmt == ("epoch_ms",):
        return "not a number of milliseconds since 1970-01-01 (format epoch_ms)"
    if fmt == ("iso",):
        return "not a valid ISO 8601 timestamp such as 2024-03-31 14:05:00 or 2024-03-31T14:05:00+02:00"
    shown = " or ".join(f"'{f}'" for f in fmt)
    return f"not a valid date and time in format {shown} (impossible dates such as 30 February are refused)"


def _error_expr(checks: list[str]) -> str:
    record = "WHEN __fs_rec_err IS NOT NULL THEN struct_pack(field := 'record', value := NULL, reason := __fs_rec_err)"
    whens = " ".join([record, *checks])
    return f"CAST(CASE {whens} END AS {ERR_TYPE}) AS {ERR}"


def _output_expr(col: Column, mapping: Mapping, index: dict[str, int]) -> str:
    def value(spec: FieldSpec) -> str:
        i = index[spec.name]
        return f"pz_{i}.p" if spec.personal else f"val.v_{i}"

    if col.name == "source":
        return quote_str(mapping.source)
    if col.name == "attrs":
        if not mapping.attrs:
            return "CAST(NULL AS JSON)"
        pairs = ", ".join(f"{quote_str(s.name.removeprefix('attrs.'))}, {value(s)}" for s in mapping.attrs)
        return f"CAST(json_object({pairs}) AS JSON)"
    spec = mapping.spec(col.name)
    if spec is None:
        return f"CAST(NULL AS {col.sql_type})"
    expr = value(spec)
    if spec.lookup:
        expr = f"coalesce({expr}, __fs_cat.category)" if spec.column or spec.value else "__fs_cat.category"
    return f"CAST({expr} AS {col.sql_type})"
