"""Exported alerts carry the active triage model's priority and explanation, or NULL."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
from test_evaluate import add_alert

from flagstone.alerts import export_alerts
from flagstone.store import Store

T0 = datetime(2025, 1, 10, 12, 0)


def exported(store: Store) -> dict[str, tuple[object, object]]:
    buf = io.StringIO()
    export_alerts(store, "jsonl", None, stdout=buf)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    return {r["alert_id"]: (r["priority"], r["explanation"]) for r in rows}


def add_model(store: Store, model_id: str, active: bool) -> None:
    store.con.execute(
        "INSERT INTO triage_models (model_id, created_at, card, files, active) VALUES (?, ?, '{}', '{}', ?)",
        [model_id, T0, active],
    )


def add_score(store: Store, alert_id: str, model_id: str, priority: float, text: str) -> None:
    store.con.execute(
        "INSERT INTO alert_scores (alert_id, model_id, priority, explanation, contributions, scored_at) "
        "VALUES (?, ?, ?, ?, '[]', ?)",
        [alert_id, model_id, priority, text, T0],
    )


def test_only_the_active_models_scores_are_exported(tmp_path: Path) -> None:
    with Store(tmp_path / "s.duckdb") as store:
        add_alert(store, "a1", "rule.a", [("bank", "b1")])
        add_alert(store, "a2", "rule.a", [("bank", "b2")])
        assert exported(store) == {"a1": (None, None), "a2": (None, None)}
        add_model(store, "m1", active=False)
        add_model(store, "m2", active=True)
        add_score(store, "a1", "m1", 0.9, "old model")
        add_score(store, "a1", "m2", 0.25, "paid by 11 new accounts: +0.21")
        assert exported(store) == {"a1": (0.25, "paid by 11 new accounts: +0.21"), "a2": (None, None)}
        out = tmp_path / "a.parquet"
        export_alerts(store, "parquet", out)
        assert pq.read_table(out).column("priority").to_pylist() == [0.25, None]


def test_a_store_made_before_triage_exports_without_scores(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with Store(path) as store:
        add_alert(store, "a1", "rule.a", [("bank", "b1")])
    con = duckdb.connect(str(path))
    con.execute("DROP TABLE alert_scores; DROP TABLE triage_models")
    con.close()
    with Store(path, read_only=True) as old:  # read-only: the tables are not made
        assert exported(old) == {"a1": (None, None)}
