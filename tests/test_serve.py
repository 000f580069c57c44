"""The scoring service: replaying files through it gives exactly the batch scan's alerts (records in
a source's mapping, and canonical events over HTTP); retries, bad input, keys, restarts and
metrics behave as docs/serve.md says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_data import PACKS, DemoFiles, canonical_file, demo_files, reference_store, time_order

from flagstone.ingest import canonical_mapping_text, ingest_file, load_mapping
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.serve import ScoringService, create_app, create_key
from flagstone.serve._absorb import absorb
from flagstone.serve._log import IntakeLog
from flagstone.store import Store

ALERT_FIELDS = (
    "alert_id, rule_id, rule_version, severity, group_key, first_ts, last_ts, fire_source, "
    'fire_event_id, evidence_sources, evidence, "values", reason'
)
CANONICAL_PACKS = PACKS[:2]  # aml and precursors (pep needs the customer records, keyed by the bank's ids)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoFiles:
    return demo_files(tmp_path_factory.mktemp("demo"), events=40_000)


@pytest.fixture(scope="module")
def batch_store(demo: DemoFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bank (as JSON lines) and shop files ingested and scanned in batch."""
    path = tmp_path_factory.mktemp("batch") / "batch.duckdb"
    reference_store(path, demo)
    with Store(path) as store:
        ingest_file(store, demo.bank, demo.bank_mapping, progress=False)
        ingest_file(store, demo.shop, demo.shop_mapping, progress=False)
        scan_store(store, load_rules(PACKS), progress=False)
    return path


@pytest.fixture(scope="module")
def canonical(batch_store: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same events as canonical JSON lines, and a store that ingested and scanned that file."""
    folder = tmp_path_factory.mktemp("canonical")
    events = canonical_file(batch_store, folder / "events.jsonl")
    mapping = folder / "api.yaml"
    mapping.write_text(canonical_mapping_text("api"))
    path = folder / "batch.duckdb"
    with Store(path) as store:
        ingest_file(store, events, mapping, progress=False)
        scan_store(store, load_rules(CANONICAL_PACKS), progress=False)
    return events, path


def _alerts(where: Path | ScoringService) -> list[tuple[Any, ...]]:
    query = f"SELECT {ALERT_FIELDS} FROM alerts ORDER BY alert_id"
    if isinstance(where, ScoringService):
        where.flush()  # what was logged, absorbed
        return where.reader().execute(query).fetchall()
    with Store(where, read_only=True) as st:
        return st.con.execute(query).fetchall()


def _count(service: ScoringService, table: str) -> int:
    service.flush()
    return int(service.reader().execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def _mapped_service(store: Path, demo: DemoFiles) -> ScoringService:
    mappings = [load_mapping(demo.bank_mapping), load_mapping(demo.shop_mapping)]
    return ScoringService(store, list(load_rules(PACKS)), mappings)


def test_records_in_their_mapping_give_the_batch_scans_alerts(
    tmp_path: Path, demo: DemoFiles, batch_store: Path
) -> None:
    """Each record sent on its own (queued at once, so the service groups them as under load):
    every alert of the batch scan, with the same id, evidence, values and reason."""
    path = tmp_path / "served.duckdb"
    reference_store(path, demo, key_from=batch_store)
    service = _mapped_service(path, demo)
    records = list(time_order(batch_store, demo))
    futures = [service.submit(source, [record]) for source, record in records]
    decisions = [f.result() for f in futures]
    expected = _alerts(batch_store)
    assert len(expected) > 15  # one precursor basket now, where there were two
    assert {a[1] for a in expected} >= {
        "aml.structuring",
        "precursors.basket",
        "pep.spending_above_income",
        "aml.pass_through",
    }
    assert _alerts(service) == expected
    assert sum(len(d[0]["alerts"]) for d in decisions) == len(expected)
    assert _count(service, "events") == len(records)
    service.close()


@pytest.fixture
def served(tmp_path: Path, canonical: tuple[Path, Path]) -> Iterator[tuple[TestClient, dict[str, str], ScoringService]]:
    path = tmp_path / "served.duckdb"
    key = create_key(path, "tests")
    (tmp_path / "served.duckdb.key").write_text(Path(f"{canonical[1]}.key").read_text())
    (tmp_path / "served.duckdb.key").chmod(0o600)
    service = ScoringService(path, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    with TestClient(create_app(service)) as client:
        yield client, {"Authorization": f"Bearer {key}"}, service


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_canonical_events_over_http_give_the_batch_scans_alerts(served: Any, canonical: tuple[Path, Path]) -> None:
    client, auth, service = served
    events = _lines(canonical[0])
    for i in range(0, len(events), 250):
        r = client.post("/v1/events", json=events[i : i + 250], headers=auth)
        assert r.status_code == 200, r.text
    expected = _alerts(canonical[1])
    assert len(expected) > 12  # one precursor basket now, where there were two
    assert _alerts(service) == expected
    assert _count(service, "events") == len(events)


def test_a_decision_explains_each_alert(served: Any, canonical: tuple[Path, Path]) -> None:
    client, auth, _ = served
    events = _lines(canonical[0])
    fired = None
    for i in range(0, len(events), 500):
        decisions = client.post("/v1/events", json=events[i : i + 500], headers=auth).json()["decisions"]
        fired = next((d for d in decisions if d["alerts"]), None)
        if fired:
            break
    assert fired is not None and fired["status"] == "scored" and not fired["retry"]
    alert = fired["alerts"][0]
    assert alert["fire"] == {"source": "api", "event_id": fired["event_id"]}
    assert alert["evidence"][-1] == alert["fire"] and alert["values"] and alert["reason"]
    listed = client.get("/v1/alerts", params={"rule_id": alert["rule_id"]}, headers=auth).json()["alerts"]
    assert alert in listed


def test_retry_returns_the_original_decision_and_changes_nothing(served: Any, canonical: tuple[Path, Path]) -> None:
    client, auth, service = served
    batch = _lines(canonical[0])[:20]
    first = client.post("/v1/events", json=batch, headers=auth).json()["decisions"]
    again = client.post("/v1/events", json=batch, headers=auth).json()["decisions"]
    assert [d["retry"] for d in again] == [True] * 20
    assert [{**d, "retry": False} for d in again] == first
    twice = client.post("/v1/events", json=[batch[0], batch[0]], headers=auth).json()["decisions"]
    assert [d["retry"] for d in twice] == [True, True]
    changed = {**batch[3], "amount": "99"}
    r = client.post("/v1/events", json=changed, headers=auth)
    assert r.status_code == 409 and r.json()["detail"][0]["field"] == "event_id"
    assert _count(service, "events") == _count(service, "served") == 20


def test_a_bad_event_rejects_the_whole_batch(served: Any, canonical: tuple[Path, Path]) -> None:
    client, auth, service = served
    batch = _lines(canonical[0])[:10]
    batch[6] = {**batch[6], "ts": "yesterday"}
    r = client.post("/v1/events", json=batch, headers=auth)
    assert r.status_code == 422
    [problem] = r.json()["detail"]
    assert problem["index"] == 6 and problem["field"] == "ts" and problem["value"] == "yesterday"
    assert "ISO 8601" in problem["reason"]
    cases = [
        ([], "body"),
        ([1, 2], "body"),
        ({"ts": "2024-01-01T00:00:00", "kind": "x"}, "event_id"),
        ({**batch[0], "amount": "1.23456"}, "4 decimal places"),
        ({**batch[0], "currency": "EURO"}, "ISO 4217"),
        ({**batch[0], "colour": "red"}, "colour"),
        ([batch[0]] * 1001, "1,001"),
    ]
    for body, expected in cases:
        r = client.post("/v1/events", json=body, headers=auth)
        assert r.status_code == 422 and expected in json.dumps(r.json()), r.text
    r = client.post("/v1/events?source=nowhere", json=batch[:1], headers=auth)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "source"
    assert _count(service, "events") == 0


def test_requests_without_a_valid_key_get_401(served: Any, canonical: tuple[Path, Path]) -> None:
    client, auth, service = served
    event = _lines(canonical[0])[0]
    for headers in [{}, {"Authorization": "Bearer fsk_0000_nope"}, {"Authorization": auth["Authorization"] + "x"}]:
        for method, url in [("POST", "/v1/events"), ("GET", "/v1/alerts"), ("GET", "/v1/metrics")]:
            r = client.request(method, url, json=event, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (headers, url)
    assert client.get("/v1/health").status_code == 200
    stored = Path(f"{service.store.path}.keys").read_text()
    secret = auth["Authorization"].split("_", 2)[2]
    assert secret not in stored and "secret_sha256" in stored  # only a hash is kept
    assert _count(service, "events") == 0


def test_metrics_in_prometheus_text(served: Any, canonical: tuple[Path, Path]) -> None:
    client, auth, _ = served
    client.post("/v1/events", json=_lines(canonical[0])[:5], headers=auth)
    text = client.get("/v1/metrics", headers=auth).text
    assert 'flagstone_requests_total{endpoint="/v1/events",status="200"} 1.0' in text
    assert 'flagstone_request_seconds_bucket{endpoint="/v1/events",le="0.02"}' in text
    assert "flagstone_events_scored_total 5.0" in text
    assert 'flagstone_alerts_total{rule="aml.structuring"}' in text
    assert "flagstone_events_in_state " in text


def test_restart_rebuilds_the_state_from_the_store(tmp_path: Path, demo: DemoFiles, batch_store: Path) -> None:
    """Half the records, a restart, the other half: the same alerts as without the restart."""
    path = tmp_path / "restart.duckdb"
    reference_store(path, demo, key_from=batch_store)
    records = list(time_order(batch_store, demo))
    half = len(records) // 2
    for part in (records[:half], records[half:]):
        service = _mapped_service(path, demo)
        for f in [service.submit(source, [record]) for source, record in part]:
            f.result()
        service.close()
    assert _alerts(path) == _alerts(batch_store)


def test_episode_alerts_grow_in_the_store_as_in_a_batch_scan(tmp_path: Path) -> None:
    """An ``evidence: episode`` rule: alerts fired by the service are rewritten as their episode
    grows, ending equal to the batch scan's."""
    rule = tmp_path / "burst.yaml"
    rule.write_text(
        json.dumps(
            {
                "id": "t.burst",
                "version": 1,
                "title": "burst",
                "severity": "low",
                "kind": "window",
                "match": "kind = 'transfer'",
                "group_by": ["actor"],
                "window": "2h",
                "aggregates": {"n": "count(*)", "total": "sum(amount)"},
                "having": "n >= 3",
                "evidence": "episode",
            }
        )
    )
    events = [
        {
            "event_id": f"e{i:03d}",
            "ts": f"2024-05-01T{i // 6:02d}:{i % 6 * 10:02d}:00",
            "kind": "transfer",
            "actor": f"acc{i % 2 if i < 40 else 9}",
            "amount": str(10 + i),
        }
        for i in range(60)
    ]
    lines = tmp_path / "events.jsonl"
    lines.write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "api.yaml").write_text(canonical_mapping_text("api"))
    batch = tmp_path / "batch.duckdb"
    with Store(batch) as store:
        ingest_file(store, lines, tmp_path / "api.yaml", progress=False)
        scan_store(store, load_rules([rule]), progress=False)
    served = tmp_path / "served.duckdb"
    Path(f"{served}.key").write_text(Path(f"{batch}.key").read_text())
    Path(f"{served}.key").chmod(0o600)
    service = ScoringService(served, list(load_rules([rule])), canonical=["api"])
    decisions = [service.submit("api", [e]).result()[0] for e in events]
    assert any(d["updated_alerts"] for d in decisions)
    expected = _alerts(batch)
    assert expected and max(len(a[10]) for a in expected) > 3  # an episode longer than one window
    assert _alerts(service) == expected
    service.close()


def test_no_accepted_event_is_lost_while_segments_turn_over(tmp_path: Path, monkeypatch: Any) -> None:
    """Segments opened and absorbed as fast as possible, from several client threads at once, with
    a slow folder listing (the race's window made wide): the absorber must never take (and delete) a
    segment the writer is still appending to."""
    listing = IntakeLog.segments

    def slow_listing(self: IntakeLog) -> list[Path]:
        time.sleep(0.002)
        return listing(self)

    monkeypatch.setattr(IntakeLog, "segments", slow_listing)
    service = ScoringService(
        tmp_path / "s.duckdb",
        list(load_rules(CANONICAL_PACKS)),
        canonical=["api"],
        segment_seconds=0.005,
        absorb_every=0.0,
    )
    events = [
        {
            "event_id": f"e{i}",
            "ts": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}",
            "kind": "cash_deposit",
            "actor": f"a{i % 7}",
            "amount": "9500",
        }
        for i in range(3000)
    ]

    def send(part: list[dict[str, Any]]) -> None:
        for event in part:
            service.submit("api", [event]).result()

    threads = [threading.Thread(target=send, args=(events[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _count(service, "events") == _count(service, "served") == len(events)
    service.close()


def _line(*event_ids: str, **changes: Any) -> str:
    """One log line (a group commit) holding these events, as the writer writes it."""
    events = [
        {"event_id": e, "source": "api", "ts": "2024-01-01T00:00:00", "kind": "x", "batch_id": 1} for e in event_ids
    ]
    served = [["api", e, "2024-01-01T00:00:00", "h", "{}"] for e in event_ids]
    entry = {"events": events, "served": served, "identities": [], "alerts": [], "updates": [], **changes}
    return json.dumps(entry) + "\n"


def test_a_bad_line_is_set_aside_and_the_others_kept(tmp_path: Path) -> None:
    """Only a torn last line is dropped silently. A line DuckDB cannot read in the middle of a segment
    costs that line alone: the others are absorbed, it is moved to unreadable/ and reported."""
    store = Store(tmp_path / "s.duckdb")
    folder = tmp_path / "log"
    folder.mkdir()
    segment = folder / "00000000000000000001-aaaaaa.jsonl"
    segment.write_text(_line("e1", "e2") + _line("e3", events="not a list") + "{not json\n" + _line("e4"))
    done = absorb(store, store.con.cursor(), segment)
    assert sorted(done.keys) == [("api", "e1"), ("api", "e2"), ("api", "e4")] and not segment.exists()
    assert done.set_aside is not None and done.set_aside.lines == (2, 3) and done.set_aside.kept == 3
    aside = (folder / "unreadable" / segment.name).read_text().splitlines()
    assert aside == [_line("e3", events="not a list").strip(), "{not json"]
    assert store.scalar("SELECT count(*) FROM events") == 3
    segment = folder / "00000000000000000002-bbbbbb.jsonl"
    segment.write_text(_line("e5") + '{"events": [{"event_id"')  # torn by a crash: fine
    done = absorb(store, store.con.cursor(), segment)
    assert done.keys == [("api", "e5")] and done.set_aside is None and not segment.exists()
    store.close()
