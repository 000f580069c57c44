"""Bad records are quarantined whole with a reason; good ones load; the counts always add up."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flagstone.ingest import IngestResult, Pseudonymiser, ingest_file
from flagstone.ingest._quarantine import open_raw
from flagstone.store import Store

MAPPING = """
source: bank
csv: {delimiter: ";", decimal: ",", thousands: "."}
timezone: Europe/Stockholm
fields:
  event_id: TXN_ID
  ts: {column: BOOKED, format: "%d.%m.%Y %H:%M"}
  kind: {column: TYPE, map: {CASH_DEP: cash_deposit, TRF: transfer}}
  actor: ACCOUNT
  amount: AMOUNT
  currency: CUR
  quantity: QTY
attrs:
  note: NOTE
"""
HEADER = "TXN_ID;BOOKED;TYPE;ACCOUNT;AMOUNT;CUR;QTY;NOTE\n"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("FLAGSTONE_KEY", raising=False)
    monkeypatch.delenv("FLAGSTONE_KEY_FILE", raising=False)
    with Store(tmp_path / "s.duckdb") as st:
        yield st


def ingest(
    store: Store, data: str | bytes, mapping: str = MAPPING, name: str = "bank.csv", progress: bool = False, **kw: Any
) -> IngestResult:
    folder = store.path.parent
    (folder / "m.yaml").write_text(mapping)
    path = folder / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return ingest_file(store, path, folder / "m.yaml", progress=progress, **kw)


def quarantine(store: Store) -> list[tuple[Any, ...]]:
    """(record, field, value, reason, raw text) of each quarantined record; the raw text decrypted."""
    rows = store.con.execute(
        "SELECT record, field, value, reason, batch_id, raw_nonce, raw_sealed FROM quarantine ORDER BY batch_id, record"
    ).fetchall()
    p = Pseudonymiser.for_store(store.path, create=False)
    return [(rec, f, v, why, open_raw(p, b, rec, n, s)) for rec, f, v, why, b, n, s in rows]


def assert_reconciles(store: Store, r: IngestResult) -> None:
    assert r.read == r.loaded + r.quarantined + r.duplicates
    assert f"read {r.read} = loaded {r.loaded} + quarantined {r.quarantined} + duplicates {r.duplicates}" in r.summary()
    assert "\n" not in r.summary()
    row = store.con.execute(
        "SELECT read, loaded, quarantined, duplicates, source, target FROM ingest_batches WHERE batch_id = ?",
        [r.batch_id],
    ).fetchone()
    assert row == (r.read, r.loaded, r.quarantined, r.duplicates, "bank", "events")
    n_q = store.con.execute("SELECT count(*) FROM quarantine WHERE batch_id = ?", [r.batch_id]).fetchone()
    n_e = store.con.execute("SELECT count(*) FROM events WHERE batch_id = ?", [r.batch_id]).fetchone()
    assert n_q == (r.quarantined,)
    assert n_e == (r.loaded,)


def test_good_rows_load_converted(store: Store) -> None:
    r = ingest(store, HEADER + "T1;31.03.2024 14:05;CASH_DEP;ACC1;1.234,50;eur;2;hello\n")
    assert (r.read, r.loaded, r.quarantined, r.duplicates) == (1, 1, 0, 0)
    row = store.con.execute(
        "SELECT event_id, source, ts::VARCHAR, kind, amount, currency, quantity, attrs->>'note', batch_id FROM events"
    ).fetchone()
    # 14:05 in Stockholm on 31 March 2024 is summer time (UTC+2).
    assert row == (
        "T1",
        "bank",
        "2024-03-31 12:05:00",
        "cash_deposit",
        Decimal("1234.5"),
        "EUR",
        Decimal(2),
        "hello",
        r.batch_id,
    )
    assert_reconciles(store, r)


BAD_RECORDS = [
    ("malformed timestamp", "T1;31/03/2024 14:05;TRF;A;1;EUR;1;x", "ts", "31/03/2024 14:05", "format '%d.%m.%Y %H:%M'"),
    ("impossible date", "T1;30.02.2023 10:00;TRF;A;1;EUR;1;x", "ts", "30.02.2023 10:00", "impossible dates"),
    ("empty event id", ";01.07.2024 10:00;TRF;A;1;EUR;1;x", "event_id", None, "missing"),
    ("blank event id", "  ;01.07.2024 10:00;TRF;A;1;EUR;1;x", "event_id", None, "missing"),
    ("missing kind", "T1;01.07.2024 10:00;;A;1;EUR;1;x", "kind", None, "missing"),
    ("negative quantity", "T1;01.07.2024 10:00;TRF;A;1;EUR;-3;x", "quantity", "-3", "negative quantity"),
    ("unknown currency", "T1;01.07.2024 10:00;TRF;A;1;XYZ;1;x", "currency", "XYZ", "ISO 4217"),
    ("amount not a number", "T1;01.07.2024 10:00;TRF;A;12,5x;EUR;1;x", "amount", "12,5x", "not a number"),
    (
        "amount with point but decimal comma",
        "T1;01.07.2024 10:00;TRF;A;1.5.0,1,2;EUR;1;x",
        "amount",
        "1.5.0,1,2",
        "not a number",
    ),
    (
        "amount too large",
        "T1;01.07.2024 10:00;TRF;A;123456789012345;EUR;1;x",
        "amount",
        "123456789012345",
        "too large for DECIMAL(18,4)",
    ),
    ("amount too precise", "T1;01.07.2024 10:00;TRF;A;1,23456;EUR;1;x", "amount", "1,23456", "4 decimal places"),
]


@pytest.mark.parametrize(("case", "line", "field", "value", "reason"), BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_bad_record_is_quarantined_whole(
    store: Store, case: str, line: str, field: str, value: str | None, reason: str
) -> None:
    good = "G1;01.07.2024 10:00;TRF;A;1;EUR;1;ok\n"
    r = ingest(store, HEADER + good + line + "\n" + good.replace("G1", "G2"))
    assert (r.read, r.loaded, r.quarantined, r.duplicates) == (3, 2, 1, 0)
    [(record, qfield, qvalue, qreason, raw)] = quarantine(store)
    assert (record, qfield, qvalue) == (2, field, value)
    assert reason in qreason
    assert raw == line
    assert store.con.execute("SELECT count(*) FROM events WHERE event_id = 'T1'").fetchone() == (0,)
    assert_reconciles(store, r)


def test_quarantine_row_names_batch_source_file(store: Store) -> None:
    r = ingest(store, HEADER + "T1;nope;TRF;A;1;EUR;1;x\n")
    row = store.con.execute("SELECT batch_id, source, file FROM quarantine").fetchone()
    assert row == (r.batch_id, "bank", str(store.path.parent / "bank.csv"))
    assert "quarantine" in r.summary() and str(r.batch_id) in r.summary()


def test_embedded_newlines_and_quotes_parse(store: Store) -> None:
    quoted = '"two\nlines; and ""quotes"""'
    data = HEADER + f"T1;01.07.2024 10:00;TRF;A;1;EUR;1;{quoted}\nT2;01.07.2024 10:00;TRF;A;1;EUR;1;x\n"
    r = ingest(store, data)
    assert (r.read, r.loaded) == (2, 2)
    notes = store.con.execute("SELECT attrs->>'note' FROM events ORDER BY event_id").fetchall()
    assert notes == [('two\nlines; and "quotes"',), ("x",)]


def test_record_numbers_count_records_not_lines(store: Store) -> None:
    data = HEADER + 'T1;01.07.2024 10:00;TRF;A;1;EUR;1;"a\nb\nc"\n\nT2;bad;TRF;A;1;EUR;1;x\n'
    ingest(store, data)
    [(record, field, *_)] = quarantine(store)
    assert (record, field) == (2, "ts")


def test_non_utf8_bytes_quarantine_only_their_record(store: Store) -> None:
    data = (
        HEADER + "T1;01.07.2024 10:00;TRF;A;1;EUR;1;ok\nT2;01.07.2024 10:00;TRF;A;1;EUR;1;M\xfcller\n"
        "T3;01.07.2024 10:00;TRF;A;1;EUR;1;fine\n"
    ).encode("latin-1")
    r = ingest(store, data)
    assert (r.read, r.loaded, r.quarantined) == (3, 2, 1)
    [(record, field, value, reason, raw)] = quarantine(store)
    assert (record, field, value) == (2, "attrs.note", repr(b"M\xfcller"))
    assert "UTF-8" in reason and "NOTE" in reason
    assert raw.endswith("M\\xfcller")
    assert_reconciles(store, r)


def test_declared_encoding_is_decoded(store: Store) -> None:
    mapping = MAPPING.replace('thousands: "."}', 'thousands: ".", encoding: latin-1}')
    data = (HEADER + "T1;01.07.2024 10:00;TRF;A;1;EUR;1;M\xfcller\n").encode("latin-1")
    r = ingest(store, data, mapping)
    assert r.loaded == 1
    assert store.con.execute("SELECT attrs->>'note' FROM events").fetchone() == ("Müller",)


def test_wrong_column_count_is_quarantined_with_exact_record_number(store: Store) -> None:
    rows = [f"T{i};01.07.2024 10:00;TRF;A;1;EUR;1;x" for i in range(1, 8)]
    rows[3] = "T4;01.07.2024 10:00;TRF;A;1;EUR"  # two columns short
    rows[5] = "T6;bad date;TRF;A;1;EUR;1;x"
    r = ingest(store, HEADER + "\n".join(rows) + "\n", batch_size=2)
    assert (r.read, r.loaded, r.quarantined) == (7, 5, 2)
    q = quarantine(store)
    assert [(rec, field) for rec, field, *_ in q] == [(4, "record"), (6, "ts")]
    assert "expected 8 columns" in q[0][3] and q[0][4] == rows[3]
    assert_reconciles(store, r)


def test_duplicates_within_file_and_against_store(store: Store) -> None:
    line = "T{};01.07.2024 10:00;TRF;A;{};EUR;1;x\n"
    r1 = ingest(store, HEADER + line.format(1, 1) + line.format(2, 2) + line.format(1, 99))
    assert (r1.read, r1.loaded, r1.duplicates) == (3, 2, 1)
    # The first occurrence wins.
    assert store.con.execute("SELECT amount FROM events WHERE event_id = 'T1'").fetchone() == (Decimal(1),)
    r2 = ingest(store, HEADER + line.format(2, 2) + line.format(3, 3), name="next.csv")
    assert (r2.read, r2.loaded, r2.duplicates) == (2, 1, 1)
    assert_reconciles(store, r1)
    assert_reconciles(store, r2)


def test_same_file_twice_adds_nothing(store: Store) -> None:
    data = HEADER + "".join(f"T{i};01.07.2024 10:00;TRF;A{i % 3};{i};EUR;1;x\n" for i in range(50)) + "X;bad;;;;;;\n"
    r1 = ingest(store, data, batch_size=7)
    before = store.con.execute("SELECT count(*) FROM events").fetchone()
    ids_before = store.con.execute("SELECT count(*) FROM identities").fetchone()
    r2 = ingest(store, data, batch_size=7)
    assert (r1.loaded, r1.quarantined) == (50, 1)
    assert (r2.read, r2.loaded, r2.quarantined, r2.duplicates) == (51, 0, 1, 50)
    assert store.con.execute("SELECT count(*) FROM events").fetchone() == before
    assert store.con.execute("SELECT count(*) FROM identities").fetchone() == ids_before
    assert_reconciles(store, r2)


def test_counts_reconcile_on_a_mixed_file_in_small_batches(store: Store) -> None:
    lines = []
    for i in range(200):
        kind = "" if i % 17 == 0 else "TRF"
        amount = "abc" if i % 23 == 0 else f"{i},5"
        event_id = f"T{i % 150}"  # 50 duplicates
        lines.append(f"{event_id};01.07.2024 10:00;{kind};A;{amount};EUR;1;x")
    r = ingest(store, HEADER + "\n".join(lines) + "\n", batch_size=13)
    assert r.read == 200 and r.quarantined > 0 and r.duplicates > 0
    assert_reconciles(store, r)
    records = [row[0] for row in quarantine(store)]
    assert records == sorted(set(records)) and all(1 <= n <= 200 for n in records)


def test_missing_column_is_an_input_error_naming_it(store: Store) -> None:
    from flagstone.errors import InputError

    with pytest.raises(InputError) as err:
        ingest(store, "TXN_ID;BOOKED\nT1;x\n")
    assert "TYPE" in str(err.value) and "m.yaml" in str(err.value)
    assert store.con.execute("SELECT count(*) FROM ingest_batches").fetchone() == (0,)
    with pytest.raises(InputError, match=r"set csv\.delimiter"):
        ingest(store, HEADER + "T1;x;x;x;x;x;x;x\n", MAPPING.replace('delimiter: ";", ', ""))


def test_header_only_and_empty_files(store: Store) -> None:
    r = ingest(store, HEADER)
    assert (r.read, r.loaded) == (0, 0)
    r = ingest(store, "", name="empty.csv")
    assert r.read == 0
    assert_reconciles(store, r)


def test_progress_bar_only_when_asked_and_only_on_stderr(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    ingest(store, HEADER + "T1;01.07.2024 10:00;TRF;A;1;EUR;1;x\n", progress=True)
    shown = capsys.readouterr()
    assert "bank.csv" in shown.err and shown.out == ""
    ingest(store, HEADER + "T2;01.07.2024 10:00;TRF;A;1;EUR;1;x\n")
    assert capsys.readouterr() == ("", "")


def test_public_names() -> None:
    import flagstone.ingest as ingest_pkg

    assert {"ingest_file", "IngestResult", "load_mapping", "Mapping", "Pseudonymiser"} <= set(ingest_pkg.__all__)
    assert all(hasattr(ingest_pkg, name) for name in ingest_pkg.__all__)


def test_round_is_explicit_and_only_on_request(store: Store) -> None:
    rows = HEADER + "r1;01.03.2024 10:00;TRF;A1;1234,567891;EUR;;\n" + "r2;01.03.2024 10:00;TRF;A1;0,125;EUR;;\n"
    r = ingest(store, rows)
    assert (r.loaded, r.quarantined) == (1, 1)
    assert "set `round`" in quarantine(store)[0][3]

    rounded = MAPPING.replace("  amount: AMOUNT", "  amount: {column: AMOUNT, round: 2}")
    rounded = rounded.replace("source: bank", "source: bank2")
    r = ingest(store, rows, mapping=rounded)
    assert (r.loaded, r.quarantined) == (2, 0)
    got = dict(store.con.execute("SELECT event_id, amount FROM events WHERE source = 'bank2'").fetchall())
    assert got == {"r1": Decimal("1234.57"), "r2": Decimal("0.13")}
