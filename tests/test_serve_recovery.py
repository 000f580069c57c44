"""A failure of one group commit costs that group, never the whole state: the real-time engine
scores a group tentatively and undoes it (touching only the groups it changed), a group whose
scoring fails is retried request by request so that only the failing request is refused, no
failure replays the store, and a writer that cannot write its log says so (health "failed", 503)
instead of dying silently."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rule_strategies import events, rules
from serve_data import PACKS, ScoreCounter, valid_event

from flagstone.engines.realtime import RealtimeEngine
from flagstone.rules import load_rules
from flagstone.serve import ScoringService, create_app, create_key
from flagstone.serve._log import IntakeLog

CANONICAL_PACKS = PACKS[:2]


def _decisions(engine: RealtimeEngine, evs: list[dict[str, Any]]) -> list[Any]:
    out = []
    for e in evs:
        d = engine.score(e)
        out.append((d.late, sorted(map(repr, d.fired)), sorted(map(repr, d.updated))))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rule_texts=st.lists(rules, min_size=2, max_size=3),
    evs=events(max_size=30),
    cut=st.tuples(st.integers(0, 30), st.integers(0, 30)),
    poison=st.one_of(st.none(), st.integers(0, 30)),
    keep=st.booleans(),
)
def test_undo_restores_exactly_the_state_before(
    tmp_path_factory: Any,
    rule_texts: list[str],
    evs: list[dict[str, Any]],
    cut: tuple[int, int],
    poison: int | None,
    keep: bool,
) -> None:
    """Prefix, a tentative chunk, suffix: after ``rollback`` the suffix is decided exactly as if the
    chunk had never been seen (after ``commit``, as if it had been scored plainly), also when the
    chunk fails half-way through an event (after some rules took it, before the others did)."""
    folder = tmp_path_factory.getbasetemp() / "undo"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(rule_texts):
        path = folder / f"r{i}.yaml"
        path.write_text(text.replace('"t.random"', f'"t.random{i}"'))
        paths.append(path)
    ruleset = list(load_rules(paths))
    evs = sorted(evs, key=lambda e: (e["ts"], e["event_id"], e["source"]))
    a, b = sorted(cut)
    prefix, chunk, suffix = evs[:a], evs[a:b], evs[b:]
    tentative = RealtimeEngine(ruleset, evict_every=3)
    plain = RealtimeEngine(ruleset, evict_every=3)
    _decisions(tentative, prefix)
    _decisions(plain, prefix)
    tentative.begin()
    failing = poison is not None and poison < len(chunk) and not keep
    if failing:
        assert poison is not None
        last = tentative.scorers[-1]
        real = last.score

        def fails(event: Any, late: bool, decision: Any) -> None:
            if event is chunk[poison]:
                raise TypeError("injected")
            real(event, late, decision)

        last.score = fails  # type: ignore[method-assign]
        with pytest.raises(TypeError):
            _decisions(tentative, chunk)
        last.score = real  # type: ignore[method-assign]
    else:
        _decisions(tentative, chunk)
    if keep:
        tentative.commit()
        _decisions(plain, chunk)
    else:
        tentative.rollback()
    assert _decisions(tentative, suffix) == _decisions(plain, suffix)
    if not keep:  # (a commit may evict at another moment than plain scoring: the same decisions, other memory)
        assert tentative.state_events() == plain.state_events()
        assert tentative.open_groups() == plain.open_groups()


# -- the service --------------------------------------------------------------------------------


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    """A store the service has put 300 events into (so that a replay would score 300)."""
    path = tmp_path / "s.duckdb"
    service = ScoringService(path, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    for f in [service.submit("api", [valid_event(i) for i in range(k, k + 100)]) for k in (0, 100, 200)]:
        f.result()
    service.close()
    return path


def _held_group(service: ScoringService, waiting: int) -> Any:
    """Make the writer's next group hold the next ``waiting`` submissions: a blocker request is
    queued, and its log append waits until they are queued behind it. Returns once the writer is
    held there, with the function that releases it."""
    held, release = threading.Event(), threading.Event()
    real = service.log.append
    calls = [0]

    def append(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            held.set()
            release.wait(30)
        return real(*args)

    service.log.append = append  # type: ignore[method-assign]
    blocker = service.submit("api", [{**valid_event(0), "event_id": "blocker"}])
    assert held.wait(30)

    def go() -> None:
        deadline = time.monotonic() + 30
        while service._queue.qsize() < waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        blocker.result()

    return go


def test_a_failing_request_costs_only_itself_and_replays_nothing(stored: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three requests in one group commit; scoring one of them raises (a gap in the checks,
    injected). That request is refused with what went wrong, the other two are answered as if it
    had not been there, and no stored event is scored again (no replay)."""
    service = ScoringService(stored, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    real = RealtimeEngine.score

    def poisoned(engine: RealtimeEngine, event: Any) -> Any:
        if event["event_id"] == "boom":
            raise TypeError("injected failure")
        return real(engine, event)

    monkeypatch.setattr(RealtimeEngine, "score", poisoned)
    counting = ScoreCounter(monkeypatch)
    release = _held_group(service, 3)
    before = valid_event(500)
    boom = {**valid_event(501), "event_id": "boom"}
    after = valid_event(502)
    futures = [service.submit("api", [e]) for e in (before, boom, after)]
    release()
    assert futures[0].result()[0]["status"] == "scored"
    assert futures[2].result()[0]["status"] == "scored"
    with pytest.raises(Exception) as refused:
        futures[1].result()
    assert getattr(refused.value, "status", None) == 422
    assert "TypeError: injected failure" in refused.value.errors[0]["reason"]  # type: ignore[attr-defined]
    # The blocker, the first attempt of the group (up to the failure), then each request alone.
    assert counting.n <= 1 + 3 + 3
    service.flush()
    ids = {r[0] for r in service.reader().execute("SELECT event_id FROM events").fetchall()}
    assert {before["event_id"], after["event_id"]} <= ids and "boom" not in ids
    assert service.health() == ("ok", None)
    service.close()


@pytest.fixture
def client(stored: Path) -> Iterator[tuple[TestClient, dict[str, str], ScoringService]]:
    key = create_key(stored, "tests")
    stopped = threading.Event()
    service = ScoringService(stored, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    service.on_failure = stopped.set
    service.stopped = stopped  # type: ignore[attr-defined]
    with TestClient(create_app(service)) as client:
        yield client, {"Authorization": f"Bearer {key}"}, service


def test_a_writer_that_cannot_write_its_log_fails_loudly(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk refuses the log: the request gets 503 (not acknowledged), health turns to "failed"
    with the reason and answers 503, every later request is refused at once (none hangs), and the
    service asks its process to stop."""
    http, auth, service = client
    assert http.post("/v1/events", json=valid_event(1000), headers=auth).status_code == 200

    def disk_full(self: IntakeLog, *args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(IntakeLog, "append", disk_full)
    r = http.post("/v1/events", json=valid_event(1001), headers=auth)
    assert r.status_code == 503 and "No space left on device" in r.json()["detail"][0]["reason"]
    health = http.get("/v1/health")
    assert health.status_code == 503
    assert health.json()["status"] == "failed" and "No space left on device" in health.json()["reason"]
    assert service.stopped.wait(5)
    assert http.post("/v1/events", json=valid_event(1002), headers=auth).status_code == 503
    assert http.get("/v1/alerts", headers=auth).status_code == 503


def test_large_batches_merged_into_one_group_are_read_back_after_restart(tmp_path: Path) -> None:
    """Four concurrent batches of about 10 MB each, held so that the writer merges them into one group
    commit larger than DuckDB reads by default (``maximum_object_size``: 16 MB, in practice lines
    up to 32 MB): the absorber reads it, and a restart finds every event."""
    path = tmp_path / "big.duckdb"
    service = ScoringService(path, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    padding = "x" * 10_000
    batches = [[{**valid_event(k * 1000 + i), "attrs": {"note": padding}} for i in range(1000)] for k in range(1, 5)]
    release = _held_group(service, 4)
    lines: list[int] = []
    held = service.log.append

    def measured(line: Any) -> None:
        lines.append(len(line) if isinstance(line, bytes) else len(json.dumps(line, default=str)))
        held(line)

    service.log.append = measured  # type: ignore[method-assign]
    futures = [service.submit("api", b) for b in batches]  # sizes not given: nothing bounds the group
    release()
    for f in futures:
        assert len(f.result()) == 1000
    assert max(lines) > 32 * 2**20
    service.close()
    assert not list(Path(f"{path}.intake").glob("*.jsonl"))  # all absorbed
    again = ScoringService(path, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    assert again.reader().execute("SELECT count(*) FROM events").fetchall() == [(4001,)]
    again.close()


def test_a_request_whose_client_went_away_does_not_stop_the_writer(stored: Path) -> None:
    """A client that gives up while its request waits (asyncio cancels the future it awaited): the
    writer skips the request or answers into the void, and goes on answering the others."""
    service = ScoringService(stored, list(load_rules(CANONICAL_PACKS)), canonical=["api"])
    release = _held_group(service, 2)
    gone = service.submit("api", [valid_event(600)])
    waiting = service.submit("api", [valid_event(601)])
    assert gone.cancel()
    release()
    assert waiting.result(timeout=30)[0]["status"] == "scored"
    assert service.submit("api", [valid_event(602)]).result(timeout=30)[0]["status"] == "scored"
    assert service.health() == ("ok", None)
    service.close()


def test_an_absorber_that_fails_leaves_the_service_answering_and_degraded(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store refuses the log for a while (its disk, say): events are still answered (the log
    holds them), health says "degraded" with the reason, GET /v1/alerts answers 503; once the store
    takes the log again, all is absorbed and health is "ok"."""
    http, auth, service = client
    from flagstone.serve._absorb import Absorber  # (here: the module is new, the other tests run on old code too)

    real = Absorber.absorb

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise duckdb.IOException("IO Error: could not write to the store (injected)")

    monkeypatch.setattr(Absorber, "absorb", refused)
    assert http.post("/v1/events", json=valid_event(700), headers=auth).status_code == 200
    r = http.get("/v1/alerts", headers=auth)
    assert r.status_code == 503 and "injected" in r.json()["detail"][0]["reason"]
    health = http.get("/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert "injected" in health.json()["reason"]
    monkeypatch.setattr(Absorber, "absorb", real)
    assert http.get("/v1/alerts", headers=auth).status_code == 200
    assert http.get("/v1/health").json()["status"] == "ok"
    ids = {r[0] for r in service.reader().execute("SELECT event_id FROM events").fetchall()}
    assert "v700" in ids
