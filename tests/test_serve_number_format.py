"""A source's number format is the same in its files and in the records it posts: under one mapping,
`flagstone serve --mapping` makes of a posted record exactly the event `flagstone ingest` makes of
the CSV row holding the same values (a JSON string is read like CSV text, with the mapping's
decimal mark and thousands separator; a JSON number is a number), and refuses with 422, naming the
field, exactly the records the ingest quarantines."""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serve_data import PACKS

from flagstone.ingest import ingest_file, load_mapping
from flagstone.rules import load_rules
from flagstone.serve import ScoringService, create_app, create_key
from flagstone.store import Store

# (decimal mark, thousands separator) as a mapping's `csv` section gives them
FORMATS = [(",", "."), (".", ","), (",", " "), (".", None)]
HEADER = ["TXN_ID", "BOOKED", "TYPE", "ACCOUNT", "AMOUNT", "QTY"]
COMPARED = "event_id, source, ts, kind, actor, amount, currency, quantity"
_ids = itertools.count()


def mapping_text(decimal: str, thousands: str | None) -> str:
    csv = {"delimiter": ";", "decimal": decimal, "thousands": thousands}
    return f"""
source: bank
csv: {json.dumps(csv)}
fields:
  event_id: TXN_ID
  ts: {{column: BOOKED, format: "%d.%m.%Y %H:%M"}}
  kind: {{column: TYPE, map: {{CASH_DEP: cash_deposit, TRF: transfer}}}}
  actor: ACCOUNT
  amount: AMOUNT
  currency: {{value: EUR}}
  quantity: QTY
"""


@dataclass(frozen=True)
class Served:
    client: TestClient
    auth: dict[str, str]
    service: ScoringService
    mapping: Path
    decimal: str
    thousands: str | None


@pytest.fixture(scope="module", params=FORMATS, ids=lambda f: f"decimal{f[0]!r}-thousands{f[1]!r}")
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    decimal, thousands = request.param
    folder = tmp_path_factory.mktemp("numbers")
    mapping = folder / "bank.yaml"
    mapping.write_text(mapping_text(decimal, thousands))
    path = folder / "s.duckdb"
    key = create_key(path, "tests")
    service = ScoringService(path, list(load_rules(PACKS[:1])), [load_mapping(mapping)])
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield Served(client, {"Authorization": f"Bearer {key}"}, service, mapping, decimal, thousands)


def written(value: Decimal, decimal: str, thousands: str | None, grouped: bool) -> str:
    """``value`` as the source writes it: its decimal mark, and thousands grouped when it groups."""
    sign = "-" if value < 0 else ""
    whole, _, frac = f"{abs(value):f}".partition(".")
    if grouped and thousands:
        whole = f"{int(whole):,}".replace(",", thousands)
    return sign + whole + (decimal + frac if frac else "")


amounts = st.decimals(min_value=-(10**14) + 1, max_value=10**14 - 1, places=4, allow_nan=False)
# A JSON number is read as a double: exact for amounts of up to 15 significant digits (docs/mapping.md).
json_amounts = st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False)
# Text that is no number in any of the formats, or has too many places or digits.
bad_text = st.sampled_from(["12a", "1,2,3.4.5", "--1", "1.5e", "0,00001", "0.00001", "123456789012345,6", "€5"])


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["text", "grouped", "number", "bad"]),
            amounts,
            json_amounts,
            bad_text,
            st.sampled_from(["CASH_DEP", "TRF"]),
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_posted_records_convert_as_the_csv_file_does(
    served: Served, rows: list[tuple[str, Decimal, Decimal, str, str]]
) -> None:
    csv_rows: list[list[str]] = []
    records: list[dict[str, Any]] = []
    for kind, amount, json_amount, bad, typ in rows:
        event_id = f"e{next(_ids)}"
        if kind == "bad":
            cell, posted = bad, bad
        elif kind == "number":
            cell = written(json_amount, served.decimal, served.thousands, grouped=False)
            posted = float(json_amount) if json_amount != json_amount.to_integral() else int(json_amount)
        else:
            cell = written(amount, served.decimal, served.thousands, grouped=kind == "grouped")
            posted = cell
        csv_rows.append([event_id, "01.07.2024 10:00", typ, f"acc-{event_id}", cell, "2"])
        records.append({**dict(zip(HEADER, csv_rows[-1], strict=True)), "AMOUNT": posted})

    expected, quarantined = _ingested(served, csv_rows)
    answers = [served.client.post("/v1/events", json=r, headers=served.auth) for r in records]
    assert all(a.status_code in (200, 422) for a in answers), [a.text for a in answers if a.status_code >= 500]
    refused = {r["TXN_ID"] for r, a in zip(records, answers, strict=True) if a.status_code == 422}
    assert refused == quarantined
    for a in answers:
        if a.status_code == 422:
            assert [p["field"] for p in a.json()["detail"]] == ["amount"]
    served.service.flush()
    ids = sorted(expected)
    got = served.service.reader().execute(
        f"SELECT {COMPARED} FROM events WHERE event_id IN (SELECT unnest(?)) ORDER BY event_id", [ids]
    )
    assert {row[0]: row for row in got.fetchall()} == expected


def _ingested(served: Served, rows: list[list[str]]) -> tuple[dict[str, tuple[Any, ...]], set[str]]:
    """The events a CSV ingest makes of ``rows`` (by event id), and the ids it quarantines."""
    folder = Path(tempfile.mkdtemp(dir=served.mapping.parent))
    try:
        store_path = folder / "batch.duckdb"
        shutil.copy(f"{served.service.store.path}.key", f"{store_path}.key")
        data = folder / "bank.csv"
        data.write_text("\n".join(";".join(r) for r in [HEADER, *rows]) + "\n", encoding="utf-8")
        with Store(store_path) as store:
            ingest_file(store, data, served.mapping, progress=False)
            events = store.con.execute(f"SELECT {COMPARED} FROM events").fetchall()
            bad = store.con.execute("SELECT parsed->>'event_id' FROM quarantine WHERE field = 'amount'").fetchall()
            assert store.con.execute("SELECT count(*) FROM quarantine WHERE field <> 'amount'").fetchone() == (0,)
        return {e[0]: e for e in events}, {b[0] for b in bad}
    finally:
        shutil.rmtree(folder)


def test_a_json_number_is_never_reformatted(served: Served) -> None:
    """1234.5 posted as a number is 1234.5 whatever the source's thousands separator is."""
    record = {"TXN_ID": f"n{next(_ids)}", "BOOKED": "01.07.2024 10:00", "TYPE": "TRF", "ACCOUNT": "a", "QTY": 1}
    answer = served.client.post("/v1/events", json={**record, "AMOUNT": 1234.5}, headers=served.auth)
    assert answer.status_code == 200, answer.text
    served.service.flush()
    got = served.service.reader().execute("SELECT amount FROM events WHERE event_id = ?", [record["TXN_ID"]])
    assert got.fetchall() == [(Decimal("1234.5"),)]


def test_a_bad_number_is_422_naming_the_field_and_the_format(served: Served) -> None:
    record = {"TXN_ID": f"b{next(_ids)}", "BOOKED": "01.07.2024 10:00", "TYPE": "TRF", "ACCOUNT": "a", "QTY": 1}
    answer = served.client.post("/v1/events", json={**record, "AMOUNT": "12a"}, headers=served.auth)
    assert answer.status_code == 422
    [problem] = answer.json()["detail"]
    assert problem["index"] == 0 and problem["field"] == "amount" and problem["value"] == "12a"
    assert problem["reason"].startswith(f"column 'AMOUNT': not a number; expected e.g. 1234{served.decimal}56")
