"""Parquet export: a lossless, date-partitioned copy of the canonical store without identities."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import EVENT_COLS, REPO, ev, exported_demo, load_duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.engines import DuckDBEngine
from flagstone.errors import InputError
from flagstone.events import CATALOGUE_COLUMNS, ENTITY_COLUMNS
from flagstone.export import STAGING, attach_export, export_parquet
from flagstone.rules import load_rules
from flagstone.store import Store

EVENTS_SELECT = f"SELECT {', '.join(EVENT_COLS)}, batch_id FROM events ORDER BY source, event_id"
ENTITY_COLS = [c.name for c in ENTITY_COLUMNS] + ["source", "batch_id"]
CATALOGUE_COLS = [c.name for c in CATALOGUE_COLUMNS] + ["source", "batch_id"]
MAX_DECIMAL = "99999999999999.9999"

# Values at the edges: largest and smallest decimals, microseconds either side of midnight, unicode
# and nested JSON, missing optional fields.
EDGE_EVENTS = [
    ev("e1", 0, amount=MAX_DECIMAL, quantity="0.0001", attrs={"ref": "Grüße €", "n": [1, {"x": None}]}),
    ev("e2", 0, amount="-" + MAX_DECIMAL, currency=None),
    ev("e3", 23.5, amount="0", kind="cash_deposit", place="Zürich HB", channel="atm"),
    ev("e4", 0, counterparty="b", item="H2O2", category="precursor.hydrogen_peroxide", quantity="12.5"),
    ev("e5", 0, actor=None, amount=None, attrs=None),
]
EDGE_EVENTS[2]["ts"] = datetime(2024, 1, 1, 23, 59, 59, 999999)
EDGE_EVENTS[3]["ts"] = datetime(2024, 1, 2, 0, 0, 0, 1)
EDGE_EVENTS[4]["ts"] = datetime(1999, 12, 31, 12, 0, 0, 123456)
EDGE_EVENTS[4]["source"] = "t"


def fill(con: duckdb.DuckDBPyConnection, events: list[dict[str, Any]]) -> None:
    load_duckdb(con, events, {"a": {"pep": True, "monthly_income": Decimal("1234.5678"), "country": "DE"}})
    con.execute("INSERT INTO entities VALUES ('a', 'person', false, 99.0001, 'AT', 't', 2)")  # a later load
    con.execute("INSERT INTO catalogue VALUES ('H2O2', 'precursor.hydrogen_peroxide', 'Wasserstoffperoxid', 'c', 1)")
    con.execute("INSERT INTO identities VALUES ('a', 'nonce'::BLOB, 'secret-ciphertext'::BLOB)")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    st = Store(tmp_path / "flagstone.duckdb")
    fill(st.con, EDGE_EVENTS)
    yield st
    st.close()


def read_back(out: Path) -> duckdb.DuckDBPyConnection:
    """Read the export with plain DuckDB Parquet reading, as any other engine would."""
    con = duckdb.connect()
    con.execute(
        f"CREATE VIEW events AS SELECT * FROM read_parquet('{out}/events/**/*.parquet', hive_partitioning = true)"
    )
    return con


def test_round_trip_is_lossless(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "export"
    result = export_parquet(store, out, progress=False)
    assert (result.events, result.partitions, result.files) == (5, 3, 3)
    assert (result.entities, result.catalogue) == (2, 1)

    con = read_back(out)
    assert con.execute(EVENTS_SELECT).fetchall() == store.con.execute(EVENTS_SELECT).fetchall()
    e1 = con.execute("SELECT amount, quantity, attrs FROM events WHERE event_id = 'e1'").fetchall()[0]
    assert e1 == (Decimal(MAX_DECIMAL), Decimal("0.0001"), EDGE_EVENTS[0]["attrs"])
    types = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE events)").fetchall())
    assert types == {
        **{c: "VARCHAR" for c in EVENT_COLS},
        "ts": "TIMESTAMP",
        "amount": "DECIMAL(18,4)",
        "quantity": "DECIMAL(18,4)",
        "batch_id": "BIGINT",
        "date": "DATE",
    }
    # In the files themselves: exact decimals, timestamps without a time zone, JSON as a string.
    schema = pq.read_schema(next((out / "events").glob("date=*/*.parquet")))
    assert schema.field("amount").type == pa.decimal128(18, 4)
    assert schema.field("ts").type == pa.timestamp("us")
    assert schema.field("attrs").type == pa.string()
    assert "date" not in schema.names

    for table, cols, key in (("entities", ENTITY_COLS, "batch_id"), ("catalogue", CATALOGUE_COLS, "item")):
        select = f"SELECT {', '.join(cols)} FROM {{}} ORDER BY {key}"
        exported = duckdb.sql(select.format(f"read_parquet('{out}/{table}.parquet')")).fetchall()
        assert exported == store.con.execute(select.format(table)).fetchall()
        assert exported


def test_partitions_are_the_dates_of_ts(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_parquet(store, out, progress=False)
    folders = sorted(p.name for p in (out / "events").iterdir())
    assert folders == ["date=1999-12-31", "date=2024-01-01", "date=2024-01-02"]
    rows = read_back(out).execute("SELECT event_id, date, CAST(ts AS DATE) FROM events ORDER BY event_id").fetchall()
    assert [(r[0], str(r[1])) for r in rows] == [
        ("e1", "2024-01-01"),
        ("e2", "2024-01-01"),
        ("e3", "2024-01-01"),  # 23:59:59.999999 stays on its day
        ("e4", "2024-01-02"),
        ("e5", "1999-12-31"),
    ]
    assert all(r[1] == r[2] for r in rows)
    # Each file holds only its folder's date.
    for folder in (out / "events").iterdir():
        days = duckdb.sql(f"SELECT DISTINCT CAST(ts AS DATE) FROM read_parquet('{folder}/*.parquet')").fetchall()
        assert [f"date={d[0]}" for d in days] == [folder.name]


def test_identities_are_not_exported(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_parquet(store, out, progress=False)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == [
        "catalogue.parquet",
        "entities.parquet",
        "events/date=1999-12-31/data_0.parquet",
        "events/date=2024-01-01/data_0.parquet",
        "events/date=2024-01-02/data_0.parquet",
    ]
    for path in out.rglob("*.parquet"):
        assert not {"pseudonym", "nonce", "ciphertext"} & set(pq.read_schema(path).names)
        assert b"secret-ciphertext" not in path.read_bytes()


def test_refuses_a_folder_that_is_not_empty(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_parquet(store, out, progress=False)
    with pytest.raises(InputError, match="not empty; pass --overwrite") as info:
        export_parquet(store, out, progress=False)
    assert str(out) in str(info.value)

    (out / "events" / "date=2000-01-01").mkdir()
    (out / "events" / "date=2000-01-01" / "stale.parquet").write_text("old")
    (out / "README.txt").write_text("mine")
    store.con.execute("DELETE FROM events WHERE event_id = 'e5'")
    result = export_parquet(store, out, overwrite=True, progress=False)
    assert (result.events, result.partitions) == (4, 2)
    assert sorted(p.name for p in (out / "events").iterdir()) == ["date=2024-01-01", "date=2024-01-02"]
    assert (out / "README.txt").read_text() == "mine"  # only the export's own outputs are replaced
    assert not (out / STAGING).exists()


def test_a_failed_export_leaves_the_earlier_one(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "export"
    export_parquet(store, out, progress=False)
    before = sorted(out.rglob("*"))
    store.con.execute("DROP TABLE catalogue")  # the third table cannot be written
    with pytest.raises(duckdb.Error):
        export_parquet(store, out, overwrite=True, progress=False)
    assert sorted(out.rglob("*")) == before


def test_empty_store(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.duckdb") as st:
        result = export_parquet(st, tmp_path / "export", progress=False)
    assert (result.events, result.partitions, result.files, result.entities) == (0, 0, 0, 0)
    con = duckdb.connect()
    attach_export(con, tmp_path / "export")
    assert con.execute("SELECT count(*) FROM events").fetchall() == [(0,)]
    assert con.execute("SELECT typeof(amount), typeof(attrs) FROM events").fetchall() == []


def test_cli(store: Store, tmp_path: Path) -> None:
    path = str(store.path)
    store.close()
    out = tmp_path / "export"
    cli = CliRunner()
    result = cli.invoke(app, ["export", "--store", path, "--parquet", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"exported 5 events in 3 date partitions (3 files), 2 entities and 1 catalogue items to {out} in "
    )
    assert "(identities not exported)" in result.output

    again = cli.invoke(app, ["export", "--store", path, "--parquet", str(out), "--quiet"])
    assert again.exit_code == 2
    assert f"error: {out}: folder is not empty; pass --overwrite" in " ".join(again.output.split())
    replaced = cli.invoke(app, ["export", "--store", path, "--parquet", str(out), "--quiet", "--overwrite"])
    assert replaced.exit_code == 0, replaced.output

    help_text = cli.invoke(app, ["export", "--help"]).output
    assert "identities" in help_text and "--overwrite" in help_text


# Random events: every value the schema allows comes back exactly.
decimals = st.decimals(min_value=Decimal("-" + MAX_DECIMAL), max_value=Decimal(MAX_DECIMAL), places=4)
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
random_event = st.fixed_dictionaries(
    {
        "ts": st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 1, 1)),
        "kind": texts,
        "actor": st.none() | texts,
        "amount": st.none() | decimals,
        "quantity": st.none() | decimals,
        "place": st.none() | texts,
        "attrs": st.none() | st.dictionaries(st.text(max_size=3), st.integers() | texts, max_size=2),
    }
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(random_event, max_size=12))
def test_random_events_round_trip(events: list[dict[str, Any]]) -> None:
    rows = [ev(f"r{i}", **e) for i, e in enumerate(events)]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "s.duckdb") as store:
        fill(store.con, rows)
        result = export_parquet(store, Path(tmp) / "x", progress=False)
        assert result.events == len(rows)
        assert result.partitions == result.files == len({e["ts"].date() for e in events})
        back = duckdb.connect()
        attach_export(back, Path(tmp) / "x")
        assert back.execute(EVENTS_SELECT).fetchall() == store.con.execute(EVENTS_SELECT).fetchall()


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Path]]:
    yield from exported_demo(tmp_path_factory.mktemp("export_demo"), 3_000, 3)


def test_demo_export_is_whole_and_pseudonymous(demo_store: tuple[Store, Path]) -> None:
    demo, out = demo_store
    con = read_back(out)
    assert con.execute(EVENTS_SELECT).fetchall() == demo.con.execute(EVENTS_SELECT).fetchall()
    dates = demo.con.execute("SELECT DISTINCT 'date=' || CAST(ts AS DATE) FROM events ORDER BY 1").fetchall()
    assert sorted(p.name for p in (out / "events").iterdir()) == [d[0] for d in dates]
    # No real account number from the bank's file appears anywhere in the export.
    with (out.parent / "data" / "bank.csv").open(encoding="utf-8") as f:
        accounts = {row["ACCOUNT"] for row in csv.DictReader(f, delimiter=";")}
    assert accounts and demo.scalar("SELECT count(*) FROM identities") > 0
    exported = {v for (v,) in con.execute("SELECT actor FROM events UNION SELECT counterparty FROM events").fetchall()}
    exported |= {v for (v,) in duckdb.sql(f"SELECT entity FROM read_parquet('{out}/entities.parquet')").fetchall()}
    assert not accounts & exported
    assert all(v is None or v.startswith("p_") for v in exported)


def test_scanning_the_export_gives_the_same_alerts(demo_store: tuple[Store, Path]) -> None:
    demo, out = demo_store
    con = duckdb.connect()
    attach_export(con, out)
    ruleset = load_rules(sorted(p for p in (REPO / "packs").iterdir() if p.is_dir()))
    fired = 0
    for rule in ruleset:
        expected = sorted(DuckDBEngine(demo.con).run(rule), key=repr)
        assert sorted(DuckDBEngine(con).run(rule), key=repr) == expected, rule.meta.id
        fired += len(expected)
    assert fired > 0
