"""`flagstone serve` as a supervisor sees it: a writer that cannot write its log makes the process
exit with status 3 (after answering 503), so that it is restarted; SIGINT stops it cleanly; and a
start-up never refuses because of an unreadable log segment: its bad lines are set aside, reported
and audited, and every other acknowledged event is kept."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx
from serve_data import PACKS, free_port, start_server, valid_event
from sqlalchemy import select

from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import audit_entries
from flagstone.rules import load_rules
from flagstone.serve import ScoringService, create_key

STOPPED = (0, 130)  # SIGINT: a clean stop, then uvicorn re-raises the signal (128 + 2), as Ctrl-C ends a program


def _store(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A new store with an API key (the audit key is made with the new log, on first use)."""
    path = tmp_path / "s.duckdb"
    return path, {"Authorization": f"Bearer {create_key(path, 'tests')}"}


def test_a_writer_failure_exits_3_and_a_restart_has_every_acknowledged_event(tmp_path: Path) -> None:
    path, auth = _store(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/events"
    server = start_server(path, port)
    try:
        first = httpx.post(url, json=valid_event(1), headers=auth, timeout=10)
        assert first.status_code == 200
        time.sleep(1.6)  # idle: the writer closes its segment
        intake = Path(f"{path}.intake")
        intake.rename(tmp_path / "moved")
        intake.write_text("not a folder")  # the next segment cannot be created: the log cannot be written
        r = httpx.post(url, json=valid_event(2), headers=auth, timeout=10)
        assert r.status_code == 503 and "restart" in r.json()["detail"][0]["reason"]
        assert server.wait(timeout=60) == 3
        assert server.stderr is not None and "the writer failed" in server.stderr.read().decode()
    finally:
        if server.poll() is None:
            server.kill()
    intake.unlink()
    (tmp_path / "moved").rename(intake)
    server = start_server(path, port)
    try:
        again = httpx.post(url, json=[valid_event(1), valid_event(2)], headers=auth, timeout=10).json()["decisions"]
        assert again[0]["retry"] and {**again[0], "retry": False} == first.json()["decisions"][0]
        assert not again[1]["retry"]  # refused with 503 before: never acknowledged, so scored now
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) in STOPPED


def _logged_lines(path: Path, events: list[dict[str, Any]]) -> tuple[list[bytes], list[Any]]:
    """The log lines a service writes for these events (one request each), and its decisions; the
    service's log then holds nothing (the lines are kept here instead)."""
    service = ScoringService(path, list(load_rules(PACKS[:2])), canonical=["api"])
    lines: list[bytes] = []
    service.log.append = lines.append  # type: ignore[method-assign]
    decisions = [service.submit("api", [e]).result()[0] for e in events]
    service.close()
    return lines, decisions


def test_an_unreadable_segment_is_set_aside_audited_and_the_rest_kept(tmp_path: Path) -> None:
    path, auth = _store(tmp_path)
    events = [valid_event(i) for i in range(3)]
    lines, decisions = _logged_lines(path, events)
    intake = Path(f"{path}.intake")
    (intake / "00000000000000000001-aaaaaa.jsonl").write_bytes(
        lines[0] + b'{"events": "torn in the middle\n' + lines[1]
    )
    (intake / "00000000000000000002-bbbbbb.jsonl").write_bytes(b"\x00\xff" * 100 + b"\n" + lines[2])
    port = free_port()
    server = start_server(path, port)
    try:
        again = httpx.post(f"http://127.0.0.1:{port}/v1/events", json=events, headers=auth, timeout=10)
        assert [d["retry"] for d in again.json()["decisions"]] == [True, True, True]
        assert [{**d, "retry": False, "index": 0} for d in again.json()["decisions"]] == decisions
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=60) in STOPPED
    assert server.stderr is not None
    stderr = server.stderr.read().decode()
    assert "00000000000000000001-aaaaaa.jsonl: lines 2 could not be absorbed" in stderr
    assert not list(intake.glob("*.jsonl"))  # the clean stop absorbed the rest
    aside = intake / "unreadable"
    assert (aside / "00000000000000000001-aaaaaa.jsonl").read_bytes() == b'{"events": "torn in the middle\n'
    assert (aside / "00000000000000000002-bbbbbb.jsonl").read_bytes() == b"\x00\xff" * 100 + b"\n"
    ov = Oversight.open(path)
    with ov.engine.connect() as con:
        rows = con.execute(
            select(audit_entries.c.actor, audit_entries.c.target, audit_entries.c.details).where(
                audit_entries.c.action == "intake_set_aside"
            )
        ).fetchall()
    ov.close()
    audited = {target: json.loads(details) for _, target, details in rows}
    assert audited["00000000000000000001-aaaaaa.jsonl"]["lines"] == [2]
    assert audited["00000000000000000001-aaaaaa.jsonl"]["kept"] == 2
    assert audited["00000000000000000002-bbbbbb.jsonl"]["kept"] == 1
    assert {actor for actor, _, _ in rows} == {"service"}
