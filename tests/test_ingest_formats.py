"""Timestamps, numbers, maps and lookups; JSON-lines and Parquet; the reference tables."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flagstone.ingest import IngestResult, Pseudonymiser, ingest_file
from flagstone.ingest._quarantine import open_raw
from flagstone.store import Store


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("FLAGSTONE_KEY", "11" * 32)
    with Store(tmp_path / "s.duckdb") as st:
        yield st


def ingest(store: Store, name: str, data: str | bytes, mapping: str, **kw: Any) -> IngestResult:
    folder = store.path.parent
    (folder / f"{name}.yaml").write_text(mapping)
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    result = ingest_file(store, path, folder / f"{name}.yaml", progress=False, **kw)
    assert result.read == result.loaded + result.quarantined + result.duplicates
    return result


def ts_of(store: Store) -> dict[str, str]:
    rows = store.con.execute("SELECT event_id, strftime(ts, '%Y-%m-%d %H:%M:%S.%f') FROM events").fetchall()
    return dict(rows)


def reasons(store: Store) -> dict[int, str]:
    return dict(store.con.execute("SELECT record, field || ': ' || reason FROM quarantine").fetchall())


def raw_texts(store: Store) -> dict[int, str]:
    """Each quarantined record's raw text, decrypted."""
    p = Pseudonymiser.for_store(store.path, create=False)
    rows = store.con.execute("SELECT batch_id, record, raw_nonce, raw_sealed FROM quarantine").fetchall()
    return {rec: open_raw(p, b, rec, n, s) for b, rec, n, s in rows}


TS_MAPPING = """
source: s
timezone: {tz}
fields:
  event_id: id
  ts: {{column: t, format: {fmt}}}
  kind: {{value: payment}}
"""


def test_local_times_convert_to_utc_across_dst(store: Store) -> None:
    data = (
        "id,t\nwinter,2024-01-15 12:00:00\nsummer,2024-07-01 12:00:00\nday_after_switch,2024-03-31 12:00\n"
        "before_switch,2024-03-31 01:59:59\nin_gap,2024-03-31 02:30\nin_overlap,2024-10-27 02:30\n"
    )
    ingest(store, "t.csv", data, TS_MAPPING.format(tz="Europe/Stockholm", fmt="iso"))
    assert ts_of(store) == {
        "winter": "2024-01-15 11:00:00.000000",
        "summer": "2024-07-01 10:00:00.000000",
        "day_after_switch": "2024-03-31 10:00:00.000000",
        "before_switch": "2024-03-31 00:59:59.000000",
        # As documented: times in the spring gap or the autumn overlap are read as standard time.
        "in_gap": "2024-03-31 01:30:00.000000",
        "in_overlap": "2024-10-27 01:30:00.000000",
    }


def test_iso_offsets_win_over_the_source_zone(store: Store) -> None:
    data = (
        "id,t\nz,2024-07-01T12:00:00Z\nplus,2024-07-01T12:00:00+05:30\nminus,2024-07-01 12:00:00.25-04:00\n"
        "date,2024-07-01\nbad,2024-13-01T00:00:00Z\n"
    )
    r = ingest(store, "t.csv", data, TS_MAPPING.format(tz="America/New_York", fmt="iso"))
    assert ts_of(store) == {
        "z": "2024-07-01 12:00:00.000000",
        "plus": "2024-07-01 06:30:00.000000",
        "minus": "2024-07-01 16:00:00.250000",
        "date": "2024-07-01 04:00:00.000000",  # midnight in New York (EDT)
    }
    assert r.quarantined == 1 and "ISO 8601" in reasons(store)[5]


def test_strptime_with_offset_and_list_of_formats(store: Store) -> None:
    data = "id,t\na,01.07.2024 12:00 +0200\nb,31.12.2024 23:59 -0100\n"
    ingest(store, "t.csv", data, TS_MAPPING.format(tz="UTC", fmt='"%d.%m.%Y %H:%M %z"'))
    assert ts_of(store) == {"a": "2024-07-01 10:00:00.000000", "b": "2025-01-01 00:59:00.000000"}


def test_list_of_formats(store: Store) -> None:
    data = "id,t\na,01.07.2024 12:00\nb,2024/07/01\nc,July 1st\n"
    r = ingest(store, "t.csv", data, TS_MAPPING.format(tz="UTC", fmt='["%d.%m.%Y %H:%M", "%Y/%m/%d"]'))
    assert ts_of(store) == {"a": "2024-07-01 12:00:00.000000", "b": "2024-07-01 00:00:00.000000"}
    assert r.quarantined == 1


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [
        ("epoch_s", "1700000000", "2023-11-14 22:13:20.000000"),
        ("epoch_s", "1700000000.5", "2023-11-14 22:13:20.500000"),
        ("epoch_ms", "1700000000123", "2023-11-14 22:13:20.123000"),
        ("epoch_s", "-86400", "1969-12-31 00:00:00.000000"),
    ],
)
def test_epoch_seconds_and_milliseconds(store: Store, fmt: str, value: str, expected: str) -> None:
    # The zone does not apply: epochs are UTC by definition.
    ingest(store, "t.csv", f"id,t\na,{value}\n", TS_MAPPING.format(tz="Europe/Stockholm", fmt=fmt))
    assert ts_of(store) == {"a": expected}


def test_milliseconds_read_as_seconds_are_out_of_range(store: Store) -> None:
    r = ingest(store, "t.csv", "id,t\na,1700000000123\nb,soon\n", TS_MAPPING.format(tz="UTC", fmt="epoch_s"))
    assert r.quarantined == 2
    got = reasons(store)
    assert "epoch_ms" in got[1] and "seconds since 1970" in got[2]


VALUE_MAP = """
source: s
fields:
  event_id: id
  ts: t
  kind: {column: k, map: {CASH_DEP: cash_deposit, "1": transfer}, unmapped: %s}
"""


@pytest.mark.parametrize(("unmapped", "expected"), [("keep", "OTHER"), ("null", None), ("quarantine", None)])
def test_value_maps(store: Store, unmapped: str, expected: str | None) -> None:
    data = "id,t,k\na,2024-01-01,CASH_DEP\nb,2024-01-01,1\nc,2024-01-01,OTHER\n"
    r = ingest(store, "m.csv", data, VALUE_MAP % unmapped)
    kinds = dict(store.con.execute("SELECT event_id, kind FROM events").fetchall())
    assert kinds.get("a") == "cash_deposit" and kinds.get("b") == "transfer"
    if unmapped == "keep":
        assert kinds["c"] == expected
    else:
        # kind is required, so an unmapped kind is quarantined either way, with a different reason.
        assert r.quarantined == 1
        assert ("not in the map" if unmapped == "quarantine" else "missing") in reasons(store)[3]


def test_catalogue_lookup_and_entities_join(store: Store) -> None:
    cat = "sku;cat;desc\nH2O2-50;precursor.hydrogen_peroxide;50% peroxide\nMILK;food;\n"
    r = ingest(
        store,
        "cat.csv",
        cat,
        """
source: shopcat
target: catalogue
csv: {delimiter: ";"}
fields: {item: sku, category: cat, description: desc}
""",
    )
    assert (r.loaded, r.target) == (2, "catalogue")
    shop = "id,t,sku,cat\n1,2024-01-01,H2O2-50,\n2,2024-01-01,MILK,dairy\n3,2024-01-01,UNKNOWN,\n"
    ingest(
        store,
        "shop.csv",
        shop,
        """
source: shop
fields:
  event_id: id
  ts: t
  kind: {value: purchase}
  actor: {value: card-1}
  item: sku
  category: {column: cat, lookup: catalogue, key: item}
""",
    )
    cats = dict(store.con.execute("SELECT event_id, category FROM events").fetchall())
    assert cats == {"1": "precursor.hydrogen_peroxide", "2": "dairy", "3": None}

    ents = "id;typ;pep;income;country\ncard-1;Person;yes;4.500,00;se\ncard-2;organisation;0;;DE\nx;robot;maybe;1;SE\n"
    r = ingest(
        store,
        "ents.csv",
        ents,
        """
source: kyc
target: entities
csv: {delimiter: ";", decimal: ",", thousands: "."}
fields: {entity: id, entity_type: typ, pep: pep, monthly_income: income, country: country}
""",
    )
    assert (r.loaded, r.quarantined) == (2, 1)
    assert reasons(store)[3].startswith("entity_type")
    joined = store.con.execute(
        "SELECT e.entity_type, e.pep, e.monthly_income, e.country FROM events v JOIN entities e ON e.entity = v.actor"
    ).fetchall()
    assert joined == [("person", True, Decimal("4500"), "SE")] * 3
    assert store.con.execute("SELECT count(*) FROM entities WHERE entity LIKE 'card%'").fetchone() == (0,)
    # Reloading the same reference file adds nothing.
    again = ingest(store, "ents.csv", ents, (store.path.parent / "ents.csv.yaml").read_text())
    assert (again.loaded, again.duplicates) == (0, 2)


JSONL_MAPPING = """
source: app
fields:
  event_id: id
  ts: {column: at, format: epoch_ms}
  kind: type
  actor: user
  amount: {column: amount, decimal: ","}
  currency: {value: SEK}
attrs:
  device: device
  tags: tags
personal: [attrs.device]
"""


def test_jsonl_input(store: Store) -> None:
    lines = [
        {
            "id": 1,
            "at": 1700000000000,
            "type": "payment",
            "user": "u1",
            "amount": "12,50",
            "device": "d-1",
            "tags": ["a", "b"],
        },
        {"id": 2, "at": 1700000001000, "type": "payment", "user": "u2", "amount": 7, "device": None},
        "not json at all",
        [1, 2],
        {"id": 3, "at": 1700000002000, "user": "u3", "amount": 1},
    ]
    text = "\n".join(json.dumps(x) if not isinstance(x, str) else x for x in lines) + "\n\n"
    data = text.encode() + b'{"id": 4, "at": 1700000003000, "type": "p", "user": "\xff"}\n'
    r = ingest(store, "app.jsonl", data, JSONL_MAPPING, batch_size=2)
    assert (r.read, r.loaded, r.quarantined) == (6, 2, 4)
    got = reasons(store)
    assert "not valid JSON" in got[3] and "ARRAY" in got[4] and got[5].startswith("kind") and "UTF-8" in got[6]
    raw = raw_texts(store)
    assert raw[3] == "not json at all" and raw[4] == "[1, 2]" and raw[6].endswith('"user": "\\xff"}')
    rows = store.con.execute(
        "SELECT event_id, amount, attrs->>'device', attrs->'tags' FROM events ORDER BY event_id"
    ).fetchall()
    assert rows[0][:2] == ("1", Decimal("12.5")) and rows[1][:2] == ("2", Decimal(7))
    assert rows[0][2].startswith("p_") and rows[1][2] is None
    assert json.loads(rows[0][3]) == ["a", "b"]


def test_number_format_applies_to_text_in_every_format_and_never_to_numbers(store: Store) -> None:
    """The mapping's decimal comma and thousands point read "1.234,56" in a JSON string and in a
    Parquet text column as in CSV; a JSON number or a Parquet number is used as it is (stripping
    '.' as thousands from 1234.56 would make it 123456)."""
    mapping = """
source: app
csv: {decimal: ",", thousands: "."}
fields: {event_id: id, ts: at, kind: {value: payment}, amount: amount, quantity: qty}
"""
    lines = [
        {"id": "s", "at": "2024-07-01", "amount": "1.234,56", "qty": " 2,5 "},
        {"id": "n", "at": "2024-07-01", "amount": 1234.56, "qty": 1e3},
        {"id": "i", "at": "2024-07-01", "amount": -7, "qty": 0},
    ]
    ingest(store, "app.jsonl", "".join(json.dumps(x) + "\n" for x in lines), mapping)
    table = pa.table({"id": ["ps", "pn"], "at": ["2024-07-01"] * 2, "amount": ["1.234,56", "-0,5"], "qty": [2.5, 3.0]})
    pq.write_table(table, store.path.parent / "app.parquet")
    (store.path.parent / "app.parquet.yaml").write_text(mapping.replace("source: app", "source: pq"))
    ingest_file(store, store.path.parent / "app.parquet", store.path.parent / "app.parquet.yaml", progress=False)
    rows = store.con.execute("SELECT event_id, amount, quantity FROM events ORDER BY event_id").fetchall()
    assert rows == [
        ("i", Decimal(-7), Decimal(0)),
        ("n", Decimal("1234.56"), Decimal(1000)),
        ("pn", Decimal("-0.5"), Decimal(3)),
        ("ps", Decimal("1234.56"), Decimal("2.5")),
        ("s", Decimal("1234.56"), Decimal("2.5")),
    ]


def test_parquet_input_with_typed_columns(store: Store) -> None:
    table = pa.table(
        {
            "id": pa.array([10, 11, 12], pa.int64()),
            "when": pa.array([datetime(2024, 7, 1, 12, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
            "local": pa.array([datetime(2024, 7, 1, 12)] * 3, pa.timestamp("ms")),
            "kind": ["payment", "payment", None],
            "acct": ["a", "b", "c"],
            "amount": pa.array([Decimal("1.25"), Decimal("-3.5"), Decimal("1")], pa.decimal128(10, 2)),
            "qty": pa.array([1.5, 2.0, 3.0], pa.float64()),
            "meta": pa.array([{"x": 1}, {"x": 2}, {"x": 3}]),
        }
    )
    path = store.path.parent / "p.parquet"
    pq.write_table(table, path)
    mapping = """
source: pq
timezone: Europe/Stockholm
fields: {event_id: id, ts: when, kind: kind, actor: acct, amount: amount, quantity: qty}
attrs: {meta: meta, local: local}
"""
    (store.path.parent / "p.yaml").write_text(mapping)
    r = ingest_file(store, path, store.path.parent / "p.yaml", progress=False)
    assert (r.read, r.loaded, r.quarantined) == (3, 2, 1)
    rows = store.con.execute(
        "SELECT event_id, strftime(ts, '%H:%M'), amount, quantity, attrs->'meta'->>'x' FROM events ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("10", "12:00", Decimal("1.25"), Decimal("1.5"), "1"),
        ("11", "12:00", Decimal("-3.5"), Decimal(2), "2"),
    ]
    [raw] = raw_texts(store).values()
    assert json.loads(raw)["id"] == 12

    # A naive Parquet timestamp is read in the mapping's zone.
    local = mapping.replace("ts: when", "ts: local").replace("source: pq", "source: pq2")
    (store.path.parent / "p.yaml").write_text(local)
    ingest_file(store, path, store.path.parent / "p.yaml", progress=False)
    assert store.con.execute("SELECT strftime(ts, '%H:%M') FROM events WHERE source = 'pq2'").fetchall() == [
        ("10:00",),
        ("10:00",),
    ]


def test_csv_dialects_bom_tabs_preamble_and_no_header(store: Store) -> None:
    tsv = "\ufeffExport of 2024-07-01\nid\tt\tk\n1\t2024-07-01\tpayment\n"
    r = ingest(
        store, "a.tsv", tsv, "source: a\ncsv: {delimiter: tab, skip_rows: 1}\nfields: {event_id: id, ts: t, kind: k}\n"
    )
    assert r.loaded == 1
    bare = "2|2024-07-01|'pay|ment'\n"
    r = ingest(
        store,
        "b.txt",
        bare,
        "source: b\ncsv: {delimiter: '|', quote: \"'\", header: false, columns: [id, t, k]}\n"
        "fields: {event_id: id, ts: t, kind: k}\n",
    )
    assert r.loaded == 1
    assert store.con.execute("SELECT kind FROM events WHERE source = 'b'").fetchone() == ("pay|ment",)
    cp = "id;t;k;who\n1;2024-07-01;payment;Jos\xe9\n2;2024-07-01;payment;\x81\n".encode("latin-1")
    r = ingest(
        store,
        "c.csv",
        cp,
        "source: c\ncsv: {delimiter: ';', encoding: cp1252}\nfields: {event_id: id, ts: t, kind: k, place: who}\n",
    )
    assert (r.loaded, r.quarantined) == (1, 1)
    assert store.con.execute("SELECT place FROM events WHERE source = 'c'").fetchone() == ("José",)
    assert store.con.execute("SELECT value FROM quarantine").fetchone() == (repr(b"\x81"),)
