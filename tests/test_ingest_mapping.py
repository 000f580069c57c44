"""Mapping files: mistakes fail at load time with file, line and key; every key is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flagstone.errors import MappingError
from flagstone.ingest import load_mapping
from flagstone.ingest._mapping import ATTR_KEYS, CSV_KEYS, FIELD_KEYS, TOP_KEYS, UNMAPPED

REPO = Path(__file__).resolve().parent.parent
MAPPING_MD = (REPO / "docs" / "mapping.md").read_text()

GOOD = """\
source: bank
csv:
  delimiter: ";"
timezone: Europe/Stockholm
fields:
  event_id: TXN_ID
  ts: {column: BOOKED, format: "%d.%m.%Y %H:%M"}
  kind: {column: TYPE, map: {CASH_DEP: cash_deposit}}
  amount: AMOUNT
  currency: {value: EUR}
"""


def load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "bank.yaml"
    path.write_text(text)
    return load_mapping(path)


def test_a_good_mapping_loads(tmp_path: Path) -> None:
    m = load(tmp_path, GOOD)
    assert m.source == "bank" and m.target == "events" and m.csv.delimiter == ";"
    assert m.spec("ts").formats == ("%d.%m.%Y %H:%M",)
    assert m.spec("kind").map == {"CASH_DEP": "cash_deposit"}
    assert m.spec("currency").value == "EUR"


@pytest.mark.parametrize(
    ("edit", "line", "field", "message"),
    [
        (("  amount: AMOUNT\n", "  amout: AMOUNT\n"), 9, "fields.amout", "did you mean 'amount'"),
        (("timezone: Europe/Stockholm", "timezone: Europe/Stockhom"), 4, "timezone", "unknown time zone"),
        (("  event_id: TXN_ID\n", ""), 5, "fields", "required field 'event_id'"),
        (("  kind: {column: TYPE, map: {CASH_DEP: cash_deposit}}\n", ""), 5, "fields", "required field 'kind'"),
        (('  ts: {column: BOOKED, format: "%d.%m.%Y %H:%M"}\n', ""), 5, "fields", "required field 'ts'"),
        (("csv:\n", "csvv:\n"), 2, "csvv", "unknown key 'csvv'"),
        (('  delimiter: ";"', '  delimiter: ";"\n  quoting: all'), 4, "csv.quoting", "unknown key"),
        (("{column: BOOKED, ", "{column: BOOKED, zone: UTC, "), 7, "fields.ts.zone", "unknown key 'zone'"),
        (('"%d.%m.%Y %H:%M"', '"%d.%m.%Q"'), 7, "fields.ts.format", "strptime"),
        (('"%d.%m.%Y %H:%M"', "dd.mm.yyyy"), 7, "fields.ts.format", "neither iso"),
        (("{value: EUR}", "{value: EURO}"), 10, "fields.currency.value", "unknown currency"),
        (("CASH_DEP: cash_deposit", "yes: cash_deposit"), 8, "fields.kind.map.True", "quotes"),
        (("amount: AMOUNT", "amount: {column: AMOUNT, format: iso}"), 9, "fields.amount.format", "timestamp"),
        (("amount: AMOUNT", "amount: {column: AMOUNT, thousands: .}"), 9, "fields.amount.thousands", "must differ"),
        (("source: bank\n", ""), 1, None, "missing required key 'source'"),
        (("source: bank", "source: bank\ntarget: people"), 2, "target", "not one of"),
        (("fields:\n", "fields:\n  source: X\n"), 6, "fields.source", "top-level `source`"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_mapping_errors_name_file_line_and_field(
    tmp_path: Path, edit: tuple[str, str], line: int | None, field: str | None, message: str
) -> None:
    assert edit[0] in GOOD
    with pytest.raises(MappingError) as err:
        load(tmp_path, GOOD.replace(edit[0], edit[1], 1))
    e = err.value
    assert e.path == str(tmp_path / "bank.yaml")
    assert (e.line, e.field) == (line, field)
    assert message in str(e)
    assert str(e).startswith(f"{tmp_path / 'bank.yaml'}" + (f":{line}" if line else ""))


def test_a_fields_decimal_mark_may_not_be_the_mappings_thousands_separator(tmp_path: Path) -> None:
    text = GOOD.replace('delimiter: ";"', 'delimiter: ";"\n  thousands: ","')
    with pytest.raises(MappingError) as err:
        load(tmp_path, text.replace("amount: AMOUNT", 'amount: {column: AMOUNT, decimal: ","}'))
    assert (err.value.line, err.value.field) == (10, "fields.amount")
    assert "',' as both the decimal and the thousands separator" in str(err.value)
    load(tmp_path, text.replace("amount: AMOUNT", 'amount: {column: AMOUNT, decimal: ",", thousands: "."}'))


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as err:
        load(tmp_path, "source: bank\nfields: {event_id: [\n")
    assert err.value.line is not None


def test_personal_must_be_a_mapped_free_text_field(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="not mapped"):
        load(tmp_path, GOOD + "personal: [place]\n")
    with pytest.raises(MappingError, match="cannot be pseudonymised"):
        load(tmp_path, GOOD + "personal: [currency]\n")
    m = load(tmp_path, GOOD + "attrs: {name: NAME}\npersonal: [attrs.name]\n")
    assert [s.personal for s in m.attrs] == [True]


def test_attrs_and_lookup_only_where_they_apply(tmp_path: Path) -> None:
    entities = "source: kyc\ntarget: entities\nfields: {entity: ID}\nattrs: {x: X}\n"
    with pytest.raises(MappingError, match="only applies to target events"):
        load(tmp_path, entities)
    with pytest.raises(MappingError, match="`item` is not mapped"):
        load(tmp_path, GOOD + "  category: {lookup: catalogue}\n")


def test_headerless_csv_needs_columns(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="columns"):
        load(tmp_path, GOOD.replace('  delimiter: ";"', "  header: false"))
    m = load(tmp_path, GOOD.replace('  delimiter: ";"', "  header: false\n  columns: [A, B]"))
    assert m.csv.columns == ("A", "B")


def test_every_mapping_key_is_documented() -> None:
    for key in TOP_KEYS:
        assert f"| `{key}` |" in MAPPING_MD, key
    for key in (*CSV_KEYS, *FIELD_KEYS, *ATTR_KEYS):
        assert f"| `{key}` |" in MAPPING_MD or re.search(rf"`{key}`", MAPPING_MD), key
    for key in (*CSV_KEYS, *FIELD_KEYS):
        assert f"| `{key}` |" in MAPPING_MD, key
    for word in UNMAPPED:
        assert f"`{word}`" in MAPPING_MD


def test_the_documented_example_loads(tmp_path: Path) -> None:
    example = re.search(r"## A complete example\n\n```yaml\n(.*?)```", MAPPING_MD, re.S)
    assert example is not None
    m = load(tmp_path, example.group(1))
    assert m.csv.encoding == "cp1252" and m.spec("kind").unmapped == "quarantine"
