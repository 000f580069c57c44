"""Durability, for real: `flagstone serve` in its own process is killed (SIGKILL) while events
are being posted, between them poison (values that once broke the writer, and a body over the
limit), restarted, and sent everything again. Every poison request is refused with 4xx, every event
it acknowledged is stored once, nothing is doubled, and the alerts are exactly those of a batch
scan of the same events."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_data import canonical_file, demo_files, free_port, reference_store, start_server

from flagstone.ingest import canonical_mapping_text, ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.serve import create_key
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
LIMIT = 2**20
POISON = [  # JSON text; each has an event id of its own, never stored
    '{"event_id": "x1", "ts": "0001-01-01T00:00:00+14:00", "kind": "cash_deposit"}',
    '{"event_id": "x2\\ud800", "ts": "2024-01-01T00:00:00", "kind": "cash_deposit"}',
    '{"event_id": "x3", "ts": "2024-01-01T00:00:00", "kind": "k", "attrs": {"k": ' + "[" * 1000 + "]" * 1000 + "}}",
    '{"event_id": "x4", "ts": "2024-01-01T00:00:00", "kind": "k", "attrs": {"k": NaN}}',
    '{"event_id": "x5", "ts": "2024-01-01T00:00:00", "kind": "k", "attrs": {"k": 1' + "0" * 400 + "}}",
    '{"event_id": "x6", "ts": "2024-01-01T00:00:00", "kind": "k", "attrs": {"k\\u0000": "v"}}',
    '{"event_id": "x7", "ts": "2024-01-01T00:00:00", "kind": "k", "amount": "1e999999999"}',
    '{"event_id": "x8", "ts": "2024-01-01T00:00:00", "kind": "k", "attrs": {"k": "' + "x" * LIMIT + '"}}',
]


def test_killed_mid_stream_nothing_lost_nothing_doubled(tmp_path: Path) -> None:
    demo = demo_files(tmp_path / "demo", events=20_000)
    raw = tmp_path / "raw.duckdb"
    reference_store(raw, demo)
    with Store(raw) as st:
        ingest_file(st, demo.bank, demo.bank_mapping, progress=False)
        ingest_file(st, demo.shop, demo.shop_mapping, progress=False)
    lines = canonical_file(raw, tmp_path / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    # The batch reference: the same file ingested and scanned.
    (tmp_path / "api.yaml").write_text(canonical_mapping_text("api"))
    batch = tmp_path / "batch.duckdb"
    with Store(batch) as st:
        ingest_file(st, tmp_path / "events.jsonl", tmp_path / "api.yaml", progress=False)
        scan_store(st, load_rules([REPO / "packs" / "aml", REPO / "packs" / "precursors"]), progress=False)

    served = tmp_path / "served.duckdb"
    shutil.copy(f"{batch}.key", f"{served}.key")
    key = create_key(served, "kill-test")
    auth = {"Authorization": f"Bearer {key}"}
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/events"

    acknowledged: list[dict[str, Any]] = []
    refused: list[int] = []

    def post_one_by_one() -> None:
        with httpx.Client(timeout=10) as client:
            for i, event in enumerate(events):
                try:
                    if i % 25 == 0:
                        poison = POISON[i // 25 % len(POISON)]
                        refused.append(client.post(url, content=poison.encode(), headers=auth).status_code)
                    r = client.post(url, json=event, headers=auth)
                except httpx.HTTPError:
                    return  # the server is gone
                assert r.status_code == 200, r.text
                acknowledged.append(r.json()["decisions"][0])

    server = start_server(served, port, "--max-body-bytes", str(LIMIT))
    poster = threading.Thread(target=post_one_by_one)
    poster.start()
    while len(acknowledged) < 400 and poster.is_alive():
        time.sleep(0.01)
    os.kill(server.pid, signal.SIGKILL)
    server.wait()
    poster.join()
    assert 400 <= len(acknowledged) < len(events)
    assert len(refused) >= len(POISON) and set(refused) <= {413, 422}, refused

    server = start_server(served, port)
    try:
        with httpx.Client(timeout=60) as client:
            answers = []
            for i in range(0, len(events), 500):
                r = client.post(url, json=events[i : i + 500], headers=auth)
                assert r.status_code == 200, r.text
                answers += r.json()["decisions"]
            # Every acknowledged event is answered from the store, with its original decision.
            for before, again in zip(acknowledged, answers, strict=False):
                assert again["retry"] and {**again, "retry": False, "index": 0} == {**before, "index": 0}
            assert not any(a["retry"] for a in answers[len(acknowledged) + 1 :])
    finally:
        server.send_signal(signal.SIGINT)  # a graceful stop absorbs what the log holds
        server.wait(timeout=60)

    with Store(served, read_only=True) as st:
        assert st.scalar("SELECT count(*) FROM events") == len(events)
        assert st.scalar("SELECT count(DISTINCT (source, event_id)) FROM events") == len(events)
        query = (
            'SELECT alert_id, rule_id, group_key, first_ts, last_ts, fire_event_id, evidence, "values", reason '
            "FROM alerts ORDER BY alert_id"
        )
        got = st.con.execute(query).fetchall()
    with Store(batch, read_only=True) as st:
        expected = st.con.execute(query).fetchall()
    assert len(expected) > 5
    assert got == expected


pytestmark = pytest.mark.slow
