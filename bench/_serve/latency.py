"""Latency at fixed rates: one fresh server, one open-loop step per rate, the server's metrics at the end."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path

from loadgen import LoadProcess, Result, Target, summarise

from _serve.data import read_lines, request_bodies
from _serve.server import HOST, SOURCE, Server, create_key


def latency_run(
    work: Path,
    events_file: Path,
    available: int,
    *,
    rates: Sequence[float],
    seconds: float,
    batch: int,
    connections: int,
    drain: float,
    slo_ms: float,
) -> None:
    """Each rate (events/s) for ``seconds``, on consecutive events of the file; prints as it goes."""
    counts = [int(rate * seconds) // batch * batch for rate in rates]
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
        f"{seconds:g} s per step, {batch} event(s) per request, {connections} connections, "
        f"open loop from a separate process"
    )
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    target = Target(HOST, server.port, f"/v1/events?source={SOURCE}", headers)
    best: float | None = None
    try:
        with LoadProcess() as gen:
            offset = 0
            for rate, count in zip(rates, counts, strict=True):
                bodies = request_bodies(read_lines(events_file, offset, count), batch)
                offset += count
                result = gen.run(target, bodies, rate / batch, connections, drain)
                report, p99, errors = step_lines(rate, batch, result)
                for line in report:
                    print(line)
                if p99 < slo_ms / 1000 and errors == 0:
                    best = rate if best is None else max(best, rate)
                time.sleep(1)  # let the server finish the last commits before the next step
        print(
            f"highest rate with p99 < {slo_ms:g} ms and no errors: "
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


def ms(seconds: float) -> str:
    return "inf" if math.isinf(seconds) else f"{seconds * 1000:.1f}"


def step_lines(rate: float, batch: int, r: Result) -> tuple[list[str], float, int]:
    """Report lines, the p99 in seconds and the number of errors of one step at ``rate`` events/s."""
    s = summarise(r, per_request=batch)
    lines = [
        f"rate {rate:,.0f} ev/s: achieved {s.answered_rate:,.0f} ev/s answered ({s.requests:,} requests of "
        f"{batch} event(s)); latency ms p50 {ms(s.p50)} p95 {ms(s.p95)} p99 {ms(s.p99)} max {ms(s.max)}; "
        f"errors {s.errors:,}",
        f"  generator: sent {s.sent_rate:,.0f} ev/s, schedule lag ms p99 {ms(s.lag_p99)} max {ms(s.lag_max)}",
    ]
    if s.errors:
        lines.append(f"  errors: {s.error_counts}; first: {r.error_sample}")
    return lines, s.p99, s.errors


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
