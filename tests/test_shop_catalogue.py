"""The recipe of docs/mapping.md, "A shop's own articles and the watched categories", run as written:
a shop with its own article numbers and groups gets the watched category of each article from a
catalogue file, its amounts computed from quantity and unit price, and the precursor basket fires
on the mixed purchase (peroxide, a timer, ball bearings) and on nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import REPO

from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

EXAMPLE = REPO / "examples" / "shop-catalogue"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.delenv("FLAGSTONE_KEY", raising=False)
    monkeypatch.delenv("FLAGSTONE_KEY_FILE", raising=False)
    with Store(tmp_path / "s.duckdb") as st:
        ingest_file(st, EXAMPLE / "watched_items.csv", EXAMPLE / "watched_items.yaml", progress=False)
        ingest_file(st, EXAMPLE / "orders.csv", EXAMPLE / "orders.yaml", progress=False)
        yield st


def test_purchases_get_the_watched_category_and_a_computed_amount(store: Store) -> None:
    rows = store.con.execute(
        "SELECT event_id, item, category, amount, attrs->>'article_group' FROM events ORDER BY event_id"
    ).fetchall()
    by_id = {r[0]: r[1:] for r in rows}
    assert len(rows) == 9 and store.scalar("SELECT count(*) FROM quarantine") == 0
    assert by_id["100231-1"] == ("40117", "precursor.hydrogen_peroxide", Decimal("17.9000"), "HAUSHALT")
    assert by_id["100388-1"][1] == "component.timer" and by_id["100512-1"][1] == "component.ball_bearings"
    assert by_id["100231-2"][1] is None  # potting soil: not a watched article, no category
    assert by_id["100512-1"][2] == Decimal("13.4700")  # 3 × 4,49


def test_the_basket_fires_on_the_mixed_purchase_only(store: Store) -> None:
    scan_store(store, load_rules([REPO / "packs" / "precursors"]), progress=False)
    alerts = store.con.execute("SELECT rule_id, evidence, values FROM alerts").fetchall()
    assert [(rule, sorted(evidence)) for rule, evidence, _ in alerts] == [
        ("precursors.basket", ["100231-1", "100388-1", "100512-1"])
    ]
    assert '"distinct": 3' in alerts[0][2]


def test_a_revised_catalogue_is_loaded_under_a_new_source(store: Store, tmp_path: Path) -> None:
    # The timer is taken off the list. Loaded again under the same source nothing changes (rows are
    # inserted once per source and item); under a new source, its rows win for later purchases.
    revised = tmp_path / "watched.csv"
    revised.write_text(
        (EXAMPLE / "watched_items.csv").read_text(encoding="utf-8").replace("component.timer", "kitchen.timer")
    )
    mapping = (EXAMPLE / "watched_items.yaml").read_text(encoding="utf-8")
    (tmp_path / "same.yaml").write_text(mapping)
    (tmp_path / "new.yaml").write_text(mapping.replace("watched_items_2025_06", "watched_items_2025_07"))

    def timer_bought(line: str) -> object:
        orders = tmp_path / f"{line}.csv"
        header = (EXAMPLE / "orders.csv").read_text(encoding="utf-8").splitlines()[0]
        orders.write_text(f"{header}\n{line};09.06.2025 10:00;K-9;20554;KUECHE;1;6,99;Online\n")
        ingest_file(store, orders, EXAMPLE / "orders.yaml", progress=False)
        return store.scalar("SELECT category FROM events WHERE event_id = ?", [line])

    ingest_file(store, revised, tmp_path / "same.yaml", progress=False)
    assert timer_bought("N-1") == "component.timer"
    ingest_file(store, revised, tmp_path / "new.yaml", progress=False)
    assert timer_bought("N-2") == "kitchen.timer"
