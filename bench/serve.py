"""Benchmark of the real-time scoring service (``flagstone serve``): latency under load, and replay = scan.

1. Data: generates the demo (``--events``), ingests it into a temporary store and writes its bank and
   shop events in time order (ORDER BY ts, event_id, source) as canonical JSON lines, event ids
   prefixed with their source ("bank:TX...") so that they are unique; decimals as strings, ts as ISO.
2. Latency: starts ``flagstone serve`` (packs aml + precursors, ``--source api``) on a fresh, empty
   store and, from a separate process, sends the file's events in order at fixed rates (``--rates``
   events/s, ``--seconds`` each, ``--batch`` events per request). Open loop: request i is due at
   start + i / rate whatever the server does, and its latency runs from that due time, so a slow
   server cannot slow the load down and hide its own queueing (coordinated omission). The client is
   raw HTTP/1.1 on asyncio streams (uvloop when installed) over ``--connections`` keep-alive
   connections; a request waits for a free connection on the clock. Prints per step the target and
   achieved rates, latency percentiles and errors, how far the generator's schedule slipped (its own
   keep-up), the highest rate whose p99 is under ``--slo-ms`` with no errors, and the server's
   state metrics at the end.
3. Replay (``--replay``, default on): store A = ``flagstone ingest`` of the first ``--replay-events``
   events with ``flagstone.serve.canonical_mapping_text("api")`` and a scan; store B = a fresh server
   (same pseudonymisation key) sent the same events in order, 1,000 per request. The alerts of A and
   B (every column but scan_id) must be equal; exit status 1 when they are not.

All output is plain lines, ready to paste into a note. The machine is shared by client and server
(loopback), so on few cores the client's CPU competes with the server's.

    python bench/serve.py                                   # 1M demo events, rates 250..2000, 30 s each
    python bench/serve.py --events 20000 --seconds 3 --rates 250,500 --replay-events 20000
    python bench/serve.py --no-replay --events 200000 --batch 10 --rates 1000,5000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import math
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import duckdb

from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

REPO = Path(__file__).resolve().parent.parent
PACKS = [REPO / "packs" / p for p in ("aml", "precursors")]
SOURCE = "api"
HOST = "127.0.0.1"
REPLAY_BATCH = 1000
# Every alerts column but scan_id, which differs between any two stores by construction.
ALERT_COLUMNS = (
    "alert_id, rule_id, rule_version, severity, group_key, first_ts, last_ts, fire_source, fire_event_id, "
    'evidence_sources, evidence, "values"::VARCHAR AS "values", reason'
)
CANONICAL_SQL = """
COPY (
    SELECT source || ':' || event_id AS event_id,
           CASE WHEN date_trunc('second', ts) = ts THEN strftime(ts, '%Y-%m-%dT%H:%M:%S')
                ELSE strftime(ts, '%Y-%m-%dT%H:%M:%S.%f') END AS ts,
           kind, actor, counterparty, currency, item, category, place, channel,
           amount::VARCHAR AS amount, quantity::VARCHAR AS quantity
    FROM events WHERE source IN ('bank', 'shop')
    ORDER BY events.ts, events.event_id, events.source
) TO '{path}' (FORMAT JSON)
"""


def flagstone_cmd(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "flagstone", *map(str, args)]


# -- data -----------------------------------------------------------------------------------------


def prepare_events(work: Path, events: int, seed: int) -> Path:
    """The demo's bank and shop events as canonical JSON lines in time order; returns the file."""
    t = time.perf_counter()
    info = generate_demo(work / "demo", events=events, seed=seed, progress=False)
    print(f"generate: {info.events:,} demo events (seed {seed}) in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    store_path = work / "demo.duckdb"
    with Store(store_path) as store:
        # Transit taps are not sent; the catalogue gives shop lines their category.
        for path, mapping in info.ingest_order():
            if mapping.stem != "transit":
                ingest_file(store, path, mapping, progress=False)
        out = work / "canonical.jsonl"
        store.con.execute(CANONICAL_SQL.format(path=str(out).replace("'", "''")))
    lines = count_lines(out)
    print(
        f"canonical file: {lines:,} bank + shop events in time order, {out.stat().st_size / 2**20:,.0f} MiB, "
        f"written in {time.perf_counter() - t:.1f} s"
    )
    return out


def count_lines(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def read_lines(path: Path, start: int, count: int) -> list[bytes]:
    with path.open("rb") as fh:
        return [line.rstrip(b"\n") for line in islice(fh, start, start + count)]


def batch_body(lines: Sequence[bytes]) -> bytes:
    return b"[" + b",".join(lines) + b"]"


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def create_key(store: Path) -> str:
    done = subprocess.run(
        flagstone_cmd("keys", "create", "--name", "bench", "--store", store), capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"flagstone keys create failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


@dataclass
class Server:
    store: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 600) -> None:
        rules = [a for p in PACKS for a in ("--rules", str(p))]
        cmd = flagstone_cmd("serve", "--store", self.store, *rules, "--source", SOURCE, "--port", str(self.port))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"flagstone serve exited ({self.proc.returncode}):\n{self.log.read_text()}")
            try:
                if self.get("/v1/health")[0] == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"flagstone serve not healthy after {timeout:.0f} s:\n{self.log.read_text()}")

    def get(self, path: str, key: str | None = None) -> tuple[int, str]:
        con = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            con.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
            resp = con.getresponse()
            return resp.status, resp.read().decode()
        finally:
            con.close()

    def stop(self) -> None:
        """Ctrl-C, as an operator would: uvicorn shuts down and the service closes the store."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            print(f"warning: the server on {self.store} did not stop within 120 s and was killed")


# -- the load generator (runs in a process of its own) --------------------------------------------


@dataclass
class StepResult:
    rate: float  # target, events/s
    batch: int
    requests: int
    events: int
    latencies: list[float]  # seconds from due time to response, math.inf when unanswered
    statuses: Counter[int]  # -1: connection failed, 0: no answer before the end of the step
    error_sample: str
    schedule_lag: list[float]  # how late the generator put each request on the queue
    last_sent: float  # seconds from start
    last_answer: float


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length, chunked, close = 0, False, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if not chunked:
        return status, await reader.readexactly(length), close
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        body += await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body), close


async def _load_step(
    port: int, key: str, bodies: list[bytes], events: int, rate: float, batch: int, connections: int, drain: float
) -> StepResult:
    head = (
        f"POST /v1/events?source={SOURCE} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    # Requests are built before the clock starts so that building them costs nothing on it.
    requests = [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]
    n = len(requests)
    latencies = [math.inf] * n
    statuses = [0] * n
    lags = [0.0] * n
    error_sample = ""
    last_answer = 0.0
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    remaining = n
    all_answered = asyncio.Event()
    loop = asyncio.get_running_loop()
    clock = time.perf_counter

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer

    async def worker(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        nonlocal error_sample, last_answer, remaining
        while True:
            i, due = await queue.get()
            try:
                if conn is None:
                    conn = await connect()
                reader, writer = conn
                writer.write(requests[i])
                status, body, close = await _read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                status, body, close = -1, repr(exc).encode(), True
            latencies[i] = clock() - due
            statuses[i] = status
            last_answer = max(last_answer, latencies[i] + due)
            if status != 200 and not error_sample:
                error_sample = f"HTTP {status}: {body[:300].decode(errors='replace')}"
            # uvicorn drops the connection after an unhandled error without saying so.
            if (close or status >= 500) and conn is not None:
                conn[1].close()
                conn = None
            remaining -= 1
            if remaining == 0:
                all_answered.set()

    # Connections are opened before the clock starts: the steps measure scoring, not TCP set-up.
    conns = await asyncio.gather(*(connect() for _ in range(connections)))
    workers = [loop.create_task(worker(c)) for c in conns]
    interval = 1.0 / (rate / batch)
    start = clock() + 0.1
    for i in range(n):
        due = start + i * interval
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        lags[i] = clock() - due
        queue.put_nowait((i, due))
    last_sent = clock() - start
    # The unanswered keep latency inf and status 0.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_answered.wait(), timeout=drain)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    for c in conns:
        c[1].close()
    return StepResult(
        rate=rate,
        batch=batch,
        requests=n,
        events=events,
        latencies=latencies,
        statuses=Counter(statuses),
        error_sample=error_sample,
        schedule_lag=lags,
        last_sent=last_sent,
        last_answer=(last_answer - start) if last_answer else math.inf,
    )


def load_step(
    port: int, key: str, lines: list[bytes], rate: float, batch: int, connections: int, drain: float
) -> StepResult:
    """One open-loop step; the entry point of the generator process."""
    try:
        import uvloop  # optional; several times faster than the default loop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    bodies = [lines[i] if batch == 1 else batch_body(lines[i : i + batch]) for i in range(0, len(lines), batch)]
    return runner(_load_step(port, key, bodies, len(lines), rate, batch, connections, drain))


# -- reporting ------------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency that happened)."""
    if not sorted_values:
        return math.nan
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q / 100 * len(sorted_values)) - 1))]


def ms(seconds: float) -> str:
    return "inf" if math.isinf(seconds) else f"{seconds * 1000:.1f}"


def step_lines(r: StepResult) -> tuple[list[str], float, int]:
    """Report lines, the p99 in seconds and the number of errors of one step."""
    lat = sorted(r.latencies)
    ok = r.statuses.get(200, 0)
    errors = r.requests - ok
    answered_rate = ok * r.batch / r.last_answer if ok and r.last_answer > 0 else 0.0
    # Between the first and the last send: n requests span n - 1 intervals.
    sent_rate = (r.requests - 1) * r.batch / r.last_sent if r.requests > 1 and r.last_sent > 0 else math.nan
    lags = sorted(r.schedule_lag)
    p99 = percentile(lat, 99)
    lines = [
        f"rate {r.rate:,.0f} ev/s: achieved {answered_rate:,.0f} ev/s answered ({r.requests:,} requests of "
        f"{r.batch} event(s)); latency ms p50 {ms(percentile(lat, 50))} p95 {ms(percentile(lat, 95))} "
        f"p99 {ms(p99)} max {ms(lat[-1])}; errors {errors:,}",
        f"  generator: sent {sent_rate:,.0f} ev/s, schedule lag ms p99 {ms(percentile(lags, 99))} max {ms(lags[-1])}",
    ]
    if errors:
        shown = ", ".join(
            f"{'no answer' if s == 0 else 'connection error' if s < 0 else f'HTTP {s}'} x{c:,}"
            for s, c in sorted(r.statuses.items())
            if s != 200
        )
        lines.append(f"  errors: {shown}; first: {r.error_sample}")
    return lines, p99, errors


def metric_lines(text: str) -> list[str]:
    """The state gauges and event counters, and the server's own mean time per POST /v1/events."""
    wanted = (
        "flagstone_events_in_state",
        "flagstone_groups_in_state",
        "flagstone_events_scored_total",
        "flagstone_events_late_total",
        "flagstone_commits_total",
    )
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    lines = [f"{name} {samples[name]:,.0f}" for name in wanted if name in samples]
    count = samples.get('flagstone_request_seconds_count{endpoint="/v1/events"}', 0)
    total = samples.get('flagstone_request_seconds_sum{endpoint="/v1/events"}', 0)
    if count:
        lines.append(f"server-side mean time per POST /v1/events {total / count * 1000:.1f} ms over {count:,.0f}")
    return lines


# -- the steps ------------------------------------------------------------------------------------


def latency_run(args: argparse.Namespace, work: Path, events_file: Path, available: int) -> None:
    rates = [float(r) for r in args.rates.split(",")]
    counts = [int(rate * args.seconds) // args.batch * args.batch for rate in rates]
    if sum(counts) > available:
        raise SystemExit(
            f"the steps send {sum(counts):,} events but the file holds {available:,}; raise --events "
            "(about 70% of the demo's events are bank and shop events)"
        )
    store = work / "latency.duckdb"
    key = create_key(store)
    server = Server(store, work / "latency-server.log")
    t = time.perf_counter()
    server.start()
    print(
        f"latency: server on port {server.port} ready in {time.perf_counter() - t:.1f} s; "
        f"{args.seconds:g} s per step, {args.batch} event(s) per request, {args.connections} connections, "
        f"open loop from a separate process"
    )
    best: float | None = None
    try:
        # spawn: the generator starts clean instead of inheriting this process's DuckDB threads.
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            offset = 0
            for rate, count in zip(rates, counts, strict=True):
                lines = read_lines(events_file, offset, count)
                offset += count
                future = pool.submit(load_step, server.port, key, lines, rate, args.batch, args.connections, args.drain)
                result = future.result()
                report, p99, errors = step_lines(result)
                for line in report:
                    print(line)
                if p99 < args.slo_ms / 1000 and errors == 0:
                    best = rate if best is None else max(best, rate)
                time.sleep(1)  # let the server finish the last commits before the next step
        print(
            f"highest rate with p99 < {args.slo_ms:g} ms and no errors: "
            + (f"{best:,.0f} events/s" if best is not None else "none")
        )
        status, text = server.get("/v1/metrics", key)
        if status != 200:
            print(f"metrics: HTTP {status}: {text[:300]}")
        else:
            for line in metric_lines(text):
                print(f"metrics: {line}")
    finally:
        server.stop()


def replay_run(args: argparse.Namespace, work: Path, events_file: Path, available: int) -> bool:
    """Ingest + scan (store A) against the same events posted to a server (store B); True if equal."""
    from flagstone.serve import canonical_mapping_text  # only the replay needs it (and newer code)

    n = min(args.replay_events, available)
    replay_file = events_file
    if n < available:
        replay_file = work / "replay.jsonl"
        replay_file.write_bytes(b"".join(line + b"\n" for line in read_lines(events_file, 0, n)))
    mapping = work / "canonical.yaml"
    mapping.write_text(canonical_mapping_text(SOURCE))

    store_a, store_b = work / "replay-a.duckdb", work / "replay-b.duckdb"
    with Store(store_a) as store:
        t = time.perf_counter()
        ingested = ingest_file(store, replay_file, mapping, progress=False)
        ingest_s = time.perf_counter() - t
        t = time.perf_counter()
        scan_store(store, load_rules(PACKS), progress=False)
        scan_s = time.perf_counter() - t
    print(f"replay A (ingest + scan): {ingested.summary()}")
    print(f"replay A: ingest {ingest_s:.1f} s + scan {scan_s:.1f} s = {n / (ingest_s + scan_s):,.0f} events/s")

    # Same key, so both stores give every actor the same pseudonym and the alerts can be compared.
    shutil.copy(f"{store_a}.key", f"{store_b}.key")
    key = create_key(store_b)
    server = Server(store_b, work / "replay-server.log")
    server.start()
    statuses: Counter[str] = Counter()
    failures = 0
    first_failure = ""
    try:
        con = http.client.HTTPConnection(HOST, server.port, timeout=600)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        t = time.perf_counter()
        with replay_file.open("rb") as fh:
            while batch := [line.rstrip(b"\n") for line in islice(fh, REPLAY_BATCH)]:
                con.request("POST", f"/v1/events?source={SOURCE}", body=batch_body(batch), headers=headers)
                resp = con.getresponse()
                body = resp.read()
                if resp.status != 200:
                    failures += 1
                    first_failure = first_failure or f"HTTP {resp.status}: {body[:300].decode(errors='replace')}"
                    con.close()  # uvicorn may have dropped it; the next request reconnects
                    continue
                statuses.update(d["status"] for d in json.loads(body)["decisions"])
        post_s = time.perf_counter() - t
        con.close()
    finally:
        server.stop()
    shown = ", ".join(f"{s} {c:,}" for s, c in sorted(statuses.items()))
    print(
        f"replay B (server): {n:,} events posted in batches of {REPLAY_BATCH} in {post_s:.1f} s = "
        f"{n / post_s:,.0f} events/s; decisions: {shown}; failed requests {failures}"
    )
    if first_failure:
        print(f"  first failure: {first_failure}")

    # A restart replays the stored events to rebuild the state: how long it takes on this store.
    t = time.perf_counter()
    server.start()
    restart_s = time.perf_counter() - t
    _, metrics = server.get("/v1/metrics", key)
    in_state = next(
        (line.split()[-1] for line in metrics.splitlines() if line.startswith("flagstone_events_in_state")), "?"
    )
    server.stop()
    print(
        f"restart on {n:,} stored events: healthy after {restart_s:.1f} s ({n / restart_s:,.0f} events/s replayed); "
        f"events in state {in_state}"
    )

    same, lines = compare_alerts(store_a, store_b)
    for line in lines:
        print(line)
    equal = same and failures == 0
    print(f"alerts equal: {'yes' if equal else 'no'}" + ("" if failures == 0 else f" ({failures} failed requests)"))
    return equal


def compare_alerts(store_a: Path, store_b: Path) -> tuple[bool, list[str]]:
    """Whether the two stores hold the same alerts (every column but scan_id), and lines that say how."""
    con = duckdb.connect()
    for name, path in (("a", store_a), ("b", store_b)):
        con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS {name} (READ_ONLY)")
    diffs = [
        con.execute(
            f"SELECT {ALERT_COLUMNS} FROM {x}.alerts EXCEPT ALL SELECT {ALERT_COLUMNS} FROM {y}.alerts "
            "ORDER BY rule_id, alert_id"
        ).fetchall()
        for x, y in (("a", "b"), ("b", "a"))
    ]
    by_rule = con.execute(
        "SELECT rule_id, count(*) FILTER (WHERE s = 'a'), count(*) FILTER (WHERE s = 'b') FROM "
        "(SELECT 'a' AS s, rule_id FROM a.alerts UNION ALL SELECT 'b', rule_id FROM b.alerts) GROUP BY rule_id "
        "ORDER BY rule_id"
    ).fetchall()
    con.close()
    lines = [
        f"replay alerts: scan {sum(r[1] for r in by_rule):,}, server {sum(r[2] for r in by_rule):,}; "
        + "; ".join(f"{rule} {a:,}/{b:,}" for rule, a, b in by_rule)
    ]
    for label, rows in zip(("only in the scan", "only from the server"), diffs, strict=True):
        if rows:
            lines.append(f"  {len(rows):,} alerts {label}, e.g.:")
            lines += [f"    {row}" for row in rows[:3]]
    return not diffs[0] and not diffs[1], lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="demo events to generate (default 1,000,000)")
    ap.add_argument("--seed", type=int, default=1, help="demo seed")
    ap.add_argument("--rates", default="250,500,1000,2000", help="latency steps, events/s, comma-separated")
    ap.add_argument("--seconds", type=float, default=30, help="length of each latency step")
    ap.add_argument("--batch", type=int, default=1, help="events per request in the latency steps")
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections of the load generator")
    ap.add_argument("--drain", type=float, default=30, help="seconds to wait for answers after a step's last send")
    ap.add_argument("--slo-ms", type=float, default=20, help="p99 target for 'highest rate' (default 20 ms)")
    ap.add_argument("--no-latency", dest="latency", action="store_false", help="skip the latency steps")
    ap.add_argument(
        "--replay",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="replay check: scan vs server on the same events (default on)",
    )
    ap.add_argument("--replay-events", type=int, default=1_000_000, help="events in the replay check (at most all)")
    ap.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one, removed)")
    args = ap.parse_args()
    if args.batch < 1 or args.batch > REPLAY_BATCH:
        ap.error(f"--batch must be between 1 and {REPLAY_BATCH}")

    work = args.keep or Path(tempfile.mkdtemp(prefix="flagstone-bench-serve-"))
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("*.duckdb*"):
        old.unlink()  # a kept folder from an earlier run: every store must start fresh
    print(f"bench/serve.py: {os.cpu_count()} CPUs, python {sys.version.split()[0]}, work folder {work}")
    equal = True
    try:
        events_file = prepare_events(work, args.events, args.seed)
        available = count_lines(events_file)
        if args.latency:
            latency_run(args, work, events_file, available)
        if args.replay:
            equal = replay_run(args, work, events_file, available)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if not equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
