"""Quarantine you can see: `flagstone quarantine counts` counts exactly what ingest quarantined, by
batch, file, field and reason; `list` filters; `export` writes every record as `show` shows it
(identifiers pseudonymised, never the raw text), streamed and audited; and `flagstone ingest`
names a file's top reasons under its reconciliation line."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.errors import InputError
from flagstone.ingest import IngestResult, ingest_file
from flagstone.oversight import quarantine as q
from flagstone.store import Store

MAPPING = """
source: bank
csv: {delimiter: ";", decimal: ",", thousands: "."}
fields:
  event_id: TXN_ID
  ts: {column: BOOKED, format: "%d.%m.%Y %H:%M"}
  kind: {column: TYPE, map: {CASH_DEP: cash_deposit, TRF: transfer}, unmapped: quarantine}
  actor: ACCOUNT
  amount: AMOUNT
  currency: CUR
attrs:
  customer_name: NAME
personal: [attrs.customer_name]
"""
HEADER = "TXN_ID;BOOKED;TYPE;ACCOUNT;AMOUNT;CUR;NAME"
# What each defect does to a good row, and the field its record is quarantined under.
DEFECTS: dict[str, tuple[int, str]] = {  # defect -> (column index, field)
    "amount": (4, "amount"),
    "ts": (1, "ts"),
    "currency": (5, "currency"),
    "kind": (2, "kind"),
    "event_id": (0, "event_id"),
}
ENV = ("FLAGSTONE_KEY", "FLAGSTONE_KEY_FILE", "FLAGSTONE_DB", "FLAGSTONE_CONFIG", "FLAGSTONE_STORE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (*ENV, "FLAGSTONE_AUDIT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def secret(i: int) -> str:
    return f"SECRET-ACCT-{i:05d}"


def good_row(i: int) -> list[str]:
    return [f"t{i}", "01.07.2024 10:00", "TRF", secret(i), "1.234,50", "EUR", f"SECRET-NAME-{i:05d}"]


def bad_value(defect: str, text: str) -> str:
    """A value that ``defect`` quarantines, built from ``text`` (lower-case letters)."""
    return {
        "amount": f"{text}1,5",
        "ts": f"{text} 01.07.2024",
        "currency": f"X{text.upper()}QQ"[:4].ljust(4, "Q"),
        "kind": f"W{text.upper()}",
        "event_id": "  ",
    }[defect]


def write_file(folder: Path, name: str, rows: list[tuple[str | None, str]]) -> tuple[Path, list[str]]:
    """A CSV of good rows and rows with one defect each (``None``: good; ``record``: too few
    columns); returns the file and each row's quarantine field (``""`` for a good row)."""
    lines, fields = [HEADER], []
    for i, (defect, text) in enumerate(rows):
        row = good_row(i)
        if defect == "record":
            row = row[:4]
        elif defect is not None:
            column, _ = DEFECTS[defect]
            row[column] = bad_value(defect, text)
        lines.append(";".join(row))
        fields.append("" if defect is None else DEFECTS[defect][1] if defect != "record" else "record")
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, fields


def ingest(store: Store, path: Path) -> IngestResult:
    mapping = path.parent / "bank.yaml"
    mapping.write_text(MAPPING)
    return ingest_file(store, path, mapping, progress=False)


rows_strategy = st.lists(
    st.tuples(
        st.sampled_from([None, None, "record", *DEFECTS]),
        st.text(alphabet="abcxyz", min_size=1, max_size=5),
    ),
    min_size=1,
    max_size=40,
)


@given(rows=rows_strategy)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_counts_are_what_ingest_quarantined(tmp_path: Path, rows: list[tuple[str | None, str]]) -> None:
    """Each example is a new batch in one store: counts of that batch by field equal the defects
    planted, with the first record and its value; by batch, file and reason they add up."""
    with Store(tmp_path / "s.duckdb") as store:
        name = f"bank-{store.scalar('SELECT count(*) FROM ingest_batches')}.csv"
        path, fields = write_file(tmp_path, name, rows)
        r = ingest(store, path)
        planted = Counter(f for f in fields if f)
        assert r.quarantined == sum(planted.values())
        this = q.QuarantineFilter(batch_id=r.batch_id)
        groups, total = q.count_groups(store, ["field"], this, limit=100)
        assert {g.field: g.count for g in groups} == planted and total == len(planted)
        assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)
        for g in groups:
            first = fields.index(g.field or "") + 1
            assert (g.first_batch, g.first_record, g.batch_id, g.reason) == (r.batch_id, first, None, None)
            defect = next((d for d, (_, f) in DEFECTS.items() if f == g.field), None)
            if defect in ("amount", "ts", "currency", "kind"):
                assert g.example == bad_value(defect, rows[first - 1][1])
        if r.quarantined:
            by_batch, _ = q.count_groups(store, ["batch", "file"], q.QuarantineFilter(file=name))
            assert [(g.batch_id, g.file, g.count) for g in by_batch] == [(r.batch_id, str(path), r.quarantined)]
            by_reason, _ = q.count_groups(store, ["reason"], this, limit=100)
            assert sum(g.count for g in by_reason) == r.quarantined
        for field, n in planted.items():
            listed = q.list_quarantine(store, q.QuarantineFilter(r.batch_id, field=field), limit=1000)
            assert sorted(rec.record for rec in listed) == [i + 1 for i, f in enumerate(fields) if f == field]
            assert q.count_quarantine(store, q.QuarantineFilter(r.batch_id, field=field)) == n


def test_grouping_by_something_unknown_names_the_option(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store, pytest.raises(InputError) as err:
        q.count_groups(store, ["batch", "colour"])
    assert "--by" in str(err.value) and "colour" in str(err.value) and "reason" in str(err.value)


MIXED = [(None, "a"), ("amount", "abc"), ("record", "a"), ("ts", "x"), ("currency", "y"), ("amount", "z")]
MIXED += [("kind", "b"), (None, "a"), ("event_id", "a"), ("amount", "q")]


@pytest.fixture
def quarantined(tmp_path: Path) -> Path:
    """A store with two batches of quarantined records (the second: the same file loaded again)."""
    path, _ = write_file(tmp_path, "bank.csv", MIXED)
    with Store(tmp_path / "s.duckdb") as store:
        assert ingest(store, path).quarantined == 8
        assert ingest(store, path).quarantined == 8
    return tmp_path / "s.duckdb"


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def shown(store: Path) -> Iterator[dict[str, Any]]:
    """Every quarantined record as `flagstone quarantine show` prints it."""
    with Store(store, read_only=True) as st:
        keys = st.con.execute("SELECT batch_id, record FROM quarantine ORDER BY ALL").fetchall()
    for batch, record in keys:
        yield json.loads(run("quarantine", "show", str(batch), str(record), "--store", str(store)))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_writes_every_record_as_show_does_and_no_identifier(
    quarantined: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(q, "PAGE", 3)  # several pages, as with a million records
    out = quarantined.parent / f"q.{fmt}"
    printed = run("quarantine", "export", "--out", out, "--store", quarantined)
    assert "wrote 16 quarantined records" in printed
    text = out.read_text(encoding="utf-8")
    assert "SECRET" not in text
    if fmt == "jsonl":
        exported = [json.loads(line) for line in text.splitlines()]
    else:
        exported = [_typed(row) for row in csv.DictReader(io.StringIO(text, newline=""))]
    key = lambda r: (r["batch_id"], r["record"])  # noqa: E731
    assert sorted(exported, key=key) == sorted(shown(quarantined), key=key)
    assert [r["batch_id"] for r in exported] == [1] * 8 + [2] * 8  # batch by batch
    log = run("audit", "log", "--action", "export", "--store", quarantined)
    assert f"quarantine ({fmt})" in log and '"rows": 16' in log


def _typed(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row with the types `show` gives (an empty cell is a missing value)."""
    return {
        **{k: v or None for k, v in row.items()},
        "batch_id": int(row["batch_id"]),
        "record": int(row["record"]),
        "source": row["source"],
        "file": row["file"],
        "reason": row["reason"],
        "parsed": json.loads(row["parsed"]) if row["parsed"] else None,
        "sealed": row["sealed"] == "True",
    }


def test_export_and_list_filter_by_batch_file_field_and_reason(quarantined: Path) -> None:
    store = ["--store", str(quarantined)]
    out = quarantined.parent / "amount.jsonl"
    run("quarantine", "export", "--out", out, "--batch", "2", "--field", "amount", "--file", "bank.csv", *store)
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["batch_id"], r["record"], r["field"]) for r in exported] == [(2, n, "amount") for n in (2, 6, 10)]
    assert exported[1]["value"] == "z1,5" and exported[1]["parsed"]["actor"].startswith("p_")
    run("quarantine", "export", "--out", out, "--reason", "UNKNOWN CURRENCY", *store)
    assert [json.loads(line)["record"] for line in out.read_text().splitlines()] == [5, 5]
    run("quarantine", "export", "--out", out, "--file", "other.csv", *store)
    assert out.read_text() == ""

    listed = run("quarantine", "list", "--field", "kind", "--batch", "1", *store)
    assert "WB" in listed and "amount" not in listed
    few = CliRunner().invoke(app, ["quarantine", "list", "--limit", "3", *store])
    assert few.exit_code == 0 and "3 of 16 records shown" in few.output


def test_counts_on_the_command_line(quarantined: Path) -> None:
    store = ["--store", str(quarantined)]
    by_field = run("quarantine", "counts", "--by", "field", *store)
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in by_field.splitlines() if "│" in line]
    assert rows[0] == ["6", "amount", "1 2", "abc1,5"]  # 3 a batch, the largest group first, its first record
    assert [r[1] for r in rows] == ["amount", "currency", "event_id", "kind", "record", "ts"]  # 2 each, by name
    both = run("quarantine", "counts", "--by", "batch,field", "--reason", "not a number", *store)
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in both.splitlines() if "│" in line]
    assert [r[:3] for r in rows] == [["3", "1", "amount"], ["3", "2", "amount"]]
    bad = CliRunner().invoke(app, ["quarantine", "counts", "--by", "colour", *store])
    assert bad.exit_code == 2 and "--by" in bad.output and "colour" in bad.output


def test_export_needs_a_format_it_can_tell(quarantined: Path) -> None:
    result = CliRunner().invoke(app, ["quarantine", "export", "--out", "q.txt", "--store", str(quarantined)])
    assert result.exit_code == 2 and "--format" in result.output
    run("quarantine", "export", "--out", "q.txt", "--format", "csv", "--store", quarantined)
    assert Path("q.txt").read_text().startswith("batch_id,record,source,file,field,value,reason,parsed,sealed")


def test_ingest_names_the_top_reasons_and_where_to_see_more(tmp_path: Path) -> None:
    rows = [("amount", "x")] * 7 + [("ts", "y")] * 3 + [(None, "a")] * 2 + [("currency", "c"), ("kind", "k")]
    rows += [("record", "r"), ("event_id", "e")]
    path, _ = write_file(tmp_path, "bank.csv", rows)
    (tmp_path / "bank.yaml").write_text(MAPPING)
    printed = run("ingest", path, "--mapping", tmp_path / "bank.yaml", "--store", "s.duckdb", "-q")
    lines = printed.splitlines()
    assert "read 16 = loaded 2 + quarantined 14 + duplicates 0" in lines[0]
    assert lines[1].split()[:2] == ["7", "amount:"], printed
    assert "(e.g. 'x1,5', record 1)" in lines[1]
    assert lines[2].split()[:2] == ["3", "ts:"]
    assert len(lines) == 7 and "1 more reason;" in lines[6]
    assert "`flagstone quarantine counts --batch 1 --store s.duckdb`" in lines[6]
    assert "SECRET" not in printed

    clean, _ = write_file(tmp_path, "clean.csv", [(None, "a")])
    assert len(run("ingest", clean, "--mapping", tmp_path / "bank.yaml", "--store", "s.duckdb", "-q").splitlines()) == 1
