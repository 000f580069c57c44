"""Computed fields of a mapping (``amount: {compute: "qty * unit_price"}``; docs/mapping.md).

The conversion's SQL is held against Python's ``Decimal`` on random expressions and values, through
the converter the scoring service uses for posted records (``RecordConverter``, the ingest's own
query over JSON records); file ingest is checked in each format, and bad expressions must be refused
when the mapping loads, naming the file, line, field and position.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flagstone.errors import InputError, MappingError
from flagstone.ingest import Pseudonymiser, RecordConverter, ingest_file, load_mapping
from flagstone.store import Store

HEAD = "source: shop\nfields:\n  event_id: id\n  ts: ts\n  kind: {value: purchase}\n"
PLACES = Decimal("1e-12")
LIMIT = Decimal(10) ** 14

# -- an independent statement of the semantics, in Decimal ------------------------------------

Expr = tuple[Any, ...]  # ("col", name) | ("num", text) | ("neg", e) | (op, left, right)


def render(e: Expr) -> str:
    """Fully parenthesised, so the text's meaning does not depend on precedence."""
    if e[0] == "col":
        return str(e[1])
    if e[0] == "num":
        return str(e[1])
    if e[0] == "neg":
        return f"(-{render(e[1])})"
    return f"({render(e[1])} {e[0]} {render(e[2])})"


def columns_in(e: Expr) -> list[str]:
    if e[0] == "col":
        return [e[1]]
    if e[0] == "num":
        return []
    return [c for part in e[1:] for c in columns_in(part)]


class Refused(Exception):
    """The record is quarantined; the message is a piece of the reason, ``value`` what it shows."""

    def __init__(self, message: str, value: str | None = None) -> None:
        super().__init__(message)
        self.value = value


def operand(text: Any) -> Decimal:
    if text is None or str(text).strip() == "":
        raise Refused("missing")
    try:
        value = Decimal(str(text).strip())
    except ArithmeticError:
        raise Refused("not a number") from None
    if abs(value) >= LIMIT:
        raise Refused("too large")
    if value != value.quantize(PLACES):
        raise Refused("more than 12 decimal places")
    return value


def evaluate(e: Expr, values: dict[str, Decimal], divisors: list[Decimal | None]) -> Decimal | None:
    """Every node is computed (as the SQL does); None is a step out of range or a division by zero."""
    if e[0] == "col":
        return values[e[1]]
    if e[0] == "num":
        return Decimal(e[1])
    if e[0] == "neg":
        inner = evaluate(e[1], values, divisors)
        return None if inner is None else -inner
    a, b = evaluate(e[1], values, divisors), evaluate(e[2], values, divisors)
    if e[0] == "/":
        divisors.append(b)
    if a is None or b is None:
        return None
    with localcontext() as ctx:
        ctx.prec = 200  # exact for + - *; for / far beyond the 12 places kept
        if e[0] == "+":
            out = a + b
        elif e[0] == "-":
            out = a - b
        elif e[0] == "*":
            out = (a * b).quantize(PLACES, rounding=ROUND_HALF_UP)
        elif b == 0:
            return None
        else:
            out = (a / b).quantize(PLACES, rounding=ROUND_HALF_UP)
    return out if abs(out) < LIMIT else None


def expected(e: Expr, record: dict[str, Any], round_to: int | None) -> Decimal:
    values = {c: operand(record.get(c)) for c in dict.fromkeys(columns_in(e))}
    divisors: list[Decimal | None] = []
    result = evaluate(e, values, divisors)
    if any(d == 0 for d in divisors):
        raise Refused("division by zero")
    if result is None:
        raise Refused("more than 14 digits before the point")
    if round_to is None:
        if result != result.quantize(Decimal("1e-4")):
            # the quarantine shows the result with all its 12 places: rounding is visible there
            raise Refused("more than 4 decimal places", format(result.quantize(PLACES), "f"))
        return result
    rounded = result.quantize(Decimal(1).scaleb(-round_to), rounding=ROUND_HALF_UP)
    if abs(rounded) >= LIMIT:
        raise Refused("too large")
    return rounded


# -- random expressions and records ----------------------------------------------------------

COLUMNS = ("a", "b", "c")
NUMBERS = ("0", "1", "2", "2.5", "0.001", "100", "0.000000000001", "0.333333333333", "12345678.9", "3", "7")


@st.composite
def expressions(draw: st.DrawFn, depth: int = 3) -> Expr:
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.integers(0, 2)) == 0:
            return ("num", draw(st.sampled_from(NUMBERS)))
        return ("col", draw(st.sampled_from(COLUMNS)))
    if draw(st.integers(0, 6)) == 0:
        return ("neg", draw(expressions(depth - 1)))
    op = draw(st.sampled_from(["+", "-", "*", "/"]))
    left, right = draw(expressions(depth - 1)), draw(expressions(depth - 1))
    while op == "/" and right[0] == "neg" and right[1][0] in ("num", "neg"):
        right = right[1]  # -0 and --0 are literals too
    if op == "/" and right == ("num", "0"):
        right = ("num", "3")  # a literal zero divisor is refused when the mapping loads
    return (op, left, right)


numbers = st.builds(lambda n, k: format(Decimal(n).scaleb(-k), "f"), st.integers(-(10**16), 10**16), st.integers(0, 13))
small = st.builds(lambda n, k: format(Decimal(n).scaleb(-k), "f"), st.integers(-2000, 2000), st.integers(0, 3))
precise = st.builds(lambda n, k: format(Decimal(n).scaleb(-k), "f"), st.integers(-(10**9), 10**9), st.integers(6, 12))
values = st.one_of(small, small, precise, numbers, st.integers(-1000, 1000), st.sampled_from(["0", "", " ", "x", None]))


@pytest.fixture(scope="module")
def service_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Pseudonymiser, Path]]:
    folder = tmp_path_factory.mktemp("compute")
    store = Store(folder / "s.duckdb")
    pseudonymiser = Pseudonymiser.for_store(store.path)
    with pseudonymiser.bound(store.con):
        yield store, pseudonymiser, folder
    store.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    expr=expressions(),
    rows=st.lists(st.fixed_dictionaries({}, optional=dict.fromkeys(COLUMNS, values)), min_size=1, max_size=20),
    round_to=st.sampled_from([None, None, 0, 2, 4]),
)
def test_the_sql_computes_what_decimal_arithmetic_says(
    service_store: tuple[Store, Pseudonymiser, Path], expr: Expr, rows: list[dict[str, Any]], round_to: int | None
) -> None:
    if not columns_in(expr):
        expr = ("+", expr, ("col", "a"))
    store, pseudonymiser, folder = service_store
    rounding = "" if round_to is None else f", round: {round_to}"
    path = folder / "m.yaml"
    path.write_text(HEAD + f"  amount: {{compute: {json.dumps(render(expr))}{rounding}}}\n")
    converter = RecordConverter(store.con, load_mapping(path), pseudonymiser)
    records = [{"id": f"r{i}", "ts": "2024-01-01T00:00:00", **row} for i, row in enumerate(rows)]
    events, errors = converter.convert(records)
    got_events = {e["event_id"]: e["amount"] for e in events}
    got_errors = {e.index: (e.field, e.reason, e.value) for e in errors}
    for i, record in enumerate(records):
        try:
            want = expected(expr, record, round_to)
        except Refused as why:
            assert i in got_errors, (render(expr), record, str(why), got_events.get(record["id"]))
            field, reason, value = got_errors[i]
            assert field == "amount" and str(why) in reason, (render(expr), record, reason)
            assert why.value is None or value == why.value, (render(expr), record, value, why.value)
        else:
            assert got_events.get(record["id"]) == want, (render(expr), record, got_errors.get(i))


# -- the language ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    text: str
    a: str
    b: str
    c: str
    want: str


@pytest.mark.parametrize(
    "case",
    [
        Case("a + b * c", "1", "2", "3", "7"),  # * before +
        Case("a - b - c", "10", "3", "2", "5"),  # left to right
        Case("a / b / c", "12", "3", "2", "2"),
        Case("-a * b", "2", "3", "1", "-6"),
        Case("a * -b", "2", "3", "1", "-6"),
        Case("(a + b) * c", "1", "2", "3", "9"),
        Case("a / 3 * 3", "1", "1", "1", "1"),  # 0.333333333333 * 3 = 0.999999999999, rounded below
        Case('"a" * 1.5', "2", "0", "0", "3"),
    ],
)
def test_precedence_and_rounding(tmp_path: Path, case: Case, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAGSTONE_KEY", raising=False)
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + f"  amount: {{compute: {json.dumps(case.text)}, round: 4}}\n")
    with Store(tmp_path / "s.duckdb") as store:
        pseudonymiser = Pseudonymiser.for_store(store.path)
        with pseudonymiser.bound(store.con):
            events, errors = RecordConverter(store.con, load_mapping(path), pseudonymiser).convert(
                [{"id": "1", "ts": "2024-01-01", "a": case.a, "b": case.b, "c": case.c}]
            )
    assert not errors
    assert events[0]["amount"] == Decimal(case.want).quantize(Decimal("1e-4"))


@pytest.mark.parametrize(
    ("text", "words", "position"),
    [
        ("qty *", "ends too early; expected a number, a column or '('", 6),
        ("qty * )", "unexpected ')'", 7),
        ("qty unit_price", "unexpected column 'unit_price'; expected an operator", 5),
        ('qty "unit price"', "unexpected column 'unit price'; expected an operator", 5),
        ("(qty * 2", "'(' is not closed", 1),
        ("qty % 2", "unexpected character '%'", 5),
        ("qty ** 2", "unexpected '*'", 6),
        ("qty / 0", "division by zero", 7),
        ("qty * 0.0000000000001", "more than 12 decimal places", 7),
        ("qty * 100000000000000", "more than 14 digits before the point", 7),
        ("2 * 3", "reads no column; a constant is written as `value`", 1),
        ('qty * ""', "an empty column name", 7),
        ("__import__('os')", "unexpected character", 12),
    ],
)
def test_bad_expressions_are_refused_when_the_mapping_loads(
    tmp_path: Path, text: str, words: str, position: int
) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(HEAD + "  quantity: qty\n  amount:\n    compute: " + json.dumps(text) + "\n")
    with pytest.raises(MappingError) as err:
        load_mapping(path)
    assert words in str(err.value) and f"at position {position} of" in str(err.value)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 8, "fields.amount.compute")


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("{column: total, compute: 'qty * 2'}", "give either `compute` or `column`"),
        ("{compute: 'qty * 2', map: {a: b}}", "give either `compute` or `map`"),
        ("{compute: ''}", "expected a non-empty string"),
    ],
)
def test_compute_stands_alone(tmp_path: Path, spec: str, words: str) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(HEAD + f"  amount: {spec}\n")
    with pytest.raises(MappingError, match=words):
        load_mapping(path)


def test_only_number_fields_are_computed_and_operands_are_checked_like_columns(tmp_path: Path) -> None:
    path = tmp_path / "shop.yaml"
    path.write_text(HEAD.replace("kind: {value: purchase}", "kind: {compute: 'qty * 2'}"))
    with pytest.raises(MappingError, match="`compute` only applies to number fields"):
        load_mapping(path)
    path.write_text(HEAD + "  amount: {compute: 'price * religion'}\n")
    with pytest.raises(MappingError, match="source column 'religion' looks like a special category") as err:
        load_mapping(path)
    assert err.value.field == "fields.amount.compute"


# -- file ingest in every format ---------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.delenv("FLAGSTONE_KEY", raising=False)
    monkeypatch.delenv("FLAGSTONE_KEY_FILE", raising=False)
    with Store(tmp_path / "s.duckdb") as st_:
        yield st_


def loaded(store: Store) -> dict[str, Decimal]:
    return dict(store.con.execute("SELECT event_id, amount FROM events").fetchall())


def quarantined(store: Store) -> dict[int, tuple[str, str | None, str]]:
    rows = store.con.execute("SELECT record, field, value, reason FROM quarantine").fetchall()
    return {rec: (field, value, reason) for rec, field, value, reason in rows}


def test_csv_operands_use_the_fields_number_format(store: Store, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        HEAD.replace("fields:", 'csv: {delimiter: ";", decimal: ",", thousands: "."}\nfields:')
        + "  amount: {compute: 'qty * unit_price - discount'}\n  quantity: qty\n"
    )
    data = tmp_path / "d.csv"
    data.write_text(
        "id;ts;qty;unit_price;discount\n"
        "1;2024-01-01;3;1.250,50;0,5\n"  # 3 × 1250.50 − 0.5
        "2;2024-01-01;;2,5;0\n"  # no quantity
        "3;2024-01-01;2;zwei;0\n"
        "4;2024-01-01;3;0,33333;0\n"  # 0.99999: five places, and no `round`
    )
    r = ingest_file(store, data, mapping, progress=False)
    assert (r.loaded, r.quarantined) == (1, 3)
    assert loaded(store) == {"1": Decimal("3751.0000")}
    q = quarantined(store)
    assert q[2] == (
        "amount",
        None,
        "compute 'qty * unit_price - discount': column 'qty': missing, but the computation needs it",
    )
    assert q[3][:2] == ("amount", "zwei") and "column 'unit_price': not a number" in q[3][2]
    assert q[4][:2] == ("amount", "0.999990000000") and "more than 4 decimal places" in q[4][2]


def test_jsonl_and_parquet_operands_keep_their_numbers(store: Store, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(HEAD + "  amount: {compute: 'qty * unit_price', round: 2}\n")
    lines = [
        {"id": "j1", "ts": "2024-01-01", "qty": 3, "unit_price": 0.1},  # 0.30000000000000004 as a double
        {"id": "j2", "ts": "2024-01-01", "qty": "2", "unit_price": "19.99"},
        {"id": "j3", "ts": "2024-01-01", "qty": 1},
    ]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("".join(json.dumps(x) + "\n" for x in lines))
    ingest_file(store, jsonl, mapping, progress=False)
    table = pa.table(
        {
            "id": ["p1", "p2"],
            "ts": ["2024-01-01", "2024-01-01"],
            "qty": pa.array([4, 5], pa.int64()),
            "unit_price": pa.array([Decimal("2.25"), Decimal("0.10")], pa.decimal128(10, 2)),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    ingest_file(store, tmp_path / "d.parquet", mapping, progress=False)
    assert loaded(store) == {"j1": Decimal("0.3"), "j2": Decimal("39.98"), "p1": Decimal("9"), "p2": Decimal("0.5")}
    assert "column 'unit_price': missing" in quarantined(store)[3][2]


def test_a_column_the_file_lacks_is_named(store: Store, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(HEAD + "  amount: {compute: 'qty * price'}\n")
    data = tmp_path / "d.csv"
    data.write_text("id,ts,qty,unit_price\n1,2024-01-01,1,2\n")
    with pytest.raises(InputError, match=re.escape("the mapping reads column 'price', which d.csv does not have")):
        ingest_file(store, data, mapping, progress=False)


def test_json_numbers_are_used_as_they_are_and_text_follows_the_mappings_format(store: Store, tmp_path: Path) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        HEAD.replace("fields:", 'csv: {decimal: ",", thousands: "."}\nfields:')
        + "  amount: {compute: 'qty * unit_price'}\n"
    )
    lines = [
        {"id": "n", "ts": "2024-01-01", "qty": 2, "unit_price": 1.5},  # not 15: a JSON number has no thousands
        {"id": "t", "ts": "2024-01-01", "qty": "2", "unit_price": "1.234,5"},
    ]
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(x) + "\n" for x in lines))
    ingest_file(store, data, mapping, progress=False)
    assert loaded(store) == {"n": Decimal("3"), "t": Decimal("2469")}
