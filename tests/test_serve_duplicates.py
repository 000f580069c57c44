"""One (source, event_id) is stored once, whatever path brought it: an event loaded by `flagstone
ingest` and posted again is a duplicate (same content) or a conflict (409: other content, such as
another time), however far its time lies from the others posted with it; a log segment that holds
an event the store already has (ingested while the segment waited) does not store it again; and
afterwards `flagstone scan` and the case sync run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_data import PACKS, valid_event
from typer.testing import CliRunner

from flagstone.cli import app
from flagstone.ingest import canonical_mapping_text, ingest_file
from flagstone.rules import load_rules
from flagstone.serve import ScoringService, create_app, create_key
from flagstone.serve._absorb import absorb
from flagstone.store import Store

# Three deposits just under 10,000 within a week: aml.structuring fires at the third.
INGESTED = [
    {**valid_event(i), "event_id": f"d{i}", "ts": f"2024-03-0{i}T10:00:00", "actor": "acc-s", "amount": "9500"}
    for i in range(1, 4)
]


def _flagstone(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"flagstone {' '.join(args)} crashed: {result.output}") from result.exception
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def ingested(tmp_path: Path) -> Path:
    """A store that `flagstone ingest` loaded the deposits into, with an audit key (made explicitly)."""
    path = tmp_path / "s.duckdb"
    lines = tmp_path / "api.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in INGESTED))
    (tmp_path / "api.yaml").write_text(canonical_mapping_text("api"))
    with Store(path) as store:
        ingest_file(store, lines, tmp_path / "api.yaml", progress=False)
    return path


def _keys(path: Path) -> list[tuple[Any, ...]]:
    with Store(path, read_only=True) as store:
        return store.con.execute("SELECT source, event_id, count(*) FROM events GROUP BY ALL ORDER BY ALL").fetchall()


def test_an_ingested_event_posted_again_is_never_stored_twice(ingested: Path) -> None:
    key = create_key(ingested, "tests")
    auth = {"Authorization": f"Bearer {key}"}
    service = ScoringService(ingested, list(load_rules(PACKS[:2])), canonical=["api"])
    with TestClient(create_app(service)) as client:
        # Posted with others far later in time: the look-up is not bounded by the request's times.
        later = [valid_event(i) for i in range(100, 105)]
        moved = {**INGESTED[1], "ts": "2024-03-02T10:00:01"}
        r = client.post("/v1/events", json=[*later, moved], headers=auth)
        assert r.status_code == 409, r.text
        [problem] = r.json()["detail"]
        assert problem["index"] == 5 and problem["field"] == "event_id" and problem["value"] == "d2"
        r = client.post("/v1/events", json={**INGESTED[2], "amount": "9600"}, headers=auth)
        assert r.status_code == 409
        r = client.post("/v1/events", json=[*later, INGESTED[1]], headers=auth)  # the same content
        assert r.status_code == 200, r.text
        same = r.json()["decisions"][5]
        assert same["status"] == "duplicate" and same["retry"] and same["alerts"] == []
        assert client.get("/v1/alerts", headers=auth).status_code == 200
    assert all(n == 1 for _, _, n in _keys(ingested))
    assert len(_keys(ingested)) == 3 + 5
    _flagstone("scan", "--store", str(ingested), "--rules", str(PACKS[0]))
    _flagstone("cases", "sync", "--store", str(ingested))
    assert all(n == 1 for _, _, n in _keys(ingested))


def test_a_segment_holding_a_stored_event_does_not_store_it_again(ingested: Path, tmp_path: Path) -> None:
    """The service logged d2 (say before a crash) and `flagstone ingest` then loaded the same file:
    absorbing the segment afterwards keeps the one stored copy, and counts only what it added."""
    folder = tmp_path / "log"
    folder.mkdir()
    segment = folder / "00000000000000000001-aaaaaa.jsonl"
    events = [
        {**INGESTED[1], "source": "api", "batch_id": 1},
        {**valid_event(7), "source": "api", "batch_id": 1},
        {**valid_event(7), "source": "api", "batch_id": 1},  # twice in the segment itself
    ]
    served = [["api", e["event_id"], "2024-01-01T00:00:00", "h", "{}"] for e in events[:2]]
    entry = {"events": events, "served": served, "identities": [], "alerts": [], "updates": []}
    segment.write_text(json.dumps(entry) + "\n")
    store = Store(ingested)
    done = absorb(store, store.con.cursor(), segment)
    store.close()
    assert [k[:2] for k in _keys(ingested)] == [("api", "d1"), ("api", "d2"), ("api", "d3"), ("api", "v7")]
    assert all(n == 1 for _, _, n in _keys(ingested))
    assert done.keys == [("api", "v7")]
