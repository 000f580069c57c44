"""bench/loadgen, the load generator other benchmarks import: it paces, records and summarises
against a real HTTP/1.1 server (the standard library's, on loopback), errors included."""

from __future__ import annotations

import importlib
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def loadgen(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # As when a bench script runs: bench/ on sys.path.
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("loadgen")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the generator expects

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 503 if body == b"fail" else 200 if self.headers["X-Token"] == "t" else 401
        answer = b"nope" if status != 200 else body
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_percentile_is_nearest_rank(loadgen: ModuleType) -> None:
    values = [float(v) for v in range(1, 101)]
    assert [loadgen.percentile(values, q) for q in (0, 50, 95, 99, 100)] == [1.0, 50.0, 95.0, 99.0, 100.0]
    assert loadgen.percentile([3.0], 99) == 3.0
    assert math.isnan(loadgen.percentile([], 50))


def test_an_open_loop_run_records_every_request_and_its_errors(loadgen: ModuleType, port: int) -> None:
    target = loadgen.Target("127.0.0.1", port, "/anything", {"X-Token": "t"})
    bodies = [b"x%d" % i for i in range(40)]
    bodies[7] = b"fail"  # a 503: the generator drops that connection and opens another
    result = loadgen.run(target, bodies, rate=400, connections=4, drain=10)

    assert result.requests == 40
    assert result.statuses == {200: 39, 503: 1}
    assert result.error_sample == "HTTP 503: nope"
    assert len(result.latencies) == 40 and all(lat >= 0 and math.isfinite(lat) for lat in result.latencies)
    # 40 requests at 400/s are due over 97.5 ms: pacing never sends one before it is due. (No upper
    # bound: on a busy machine a request may wait any time; speed is measured in bench/, not here.)
    assert result.last_sent >= 0.0975

    s = loadgen.summarise(result, per_request=10)
    assert (s.requests, s.ok, s.errors, s.error_counts) == (40, 39, 1, "HTTP 503 x1")
    assert s.p50 <= s.p95 <= s.p99 <= s.max
    assert s.sent_rate == pytest.approx(39 * 10 / result.last_sent)


def test_a_run_in_its_own_process_gives_the_same_kind_of_result(loadgen: ModuleType, port: int) -> None:
    target = loadgen.Target("127.0.0.1", port, "/anything", {"X-Token": "wrong"})
    with loadgen.LoadProcess() as gen:
        result = gen.run(target, [b"a", b"b", b"c"], rate=100, connections=2, drain=10)
    assert result.statuses == {401: 3}
    assert loadgen.summarise(result).error_counts == "HTTP 401 x3"
