"""Request pacing and latency recording: one open-loop run against one HTTP endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from loadgen._http import Connection, connect, read_response, request_bytes

# Statuses that are not HTTP's: the request was never answered.
NO_ANSWER = 0  # still unanswered when the drain time ran out
CONNECTION_ERROR = -1  # the connection failed or the response could not be read


@dataclass(frozen=True)
class Target:
    """Where every request of a run goes; ``headers`` come after Host, before Content-Length."""

    host: str
    port: int
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass
class Result:
    """Every request of one run, in the order they were due; times in seconds."""

    requests: int
    latencies: list[float]  # from due time to response; math.inf when unanswered
    statuses: Counter[int]  # HTTP status, NO_ANSWER or CONNECTION_ERROR -> requests
    error_sample: str  # the first non-200 answer, for the report
    schedule_lag: list[float]  # how late the generator itself put each request on the queue
    last_sent: float  # from the first due time
    last_answer: float  # from the first due time; math.inf when nothing was answered


async def run_async(target: Target, bodies: Sequence[bytes], rate: float, connections: int, drain: float) -> Result:
    """Send ``bodies`` at ``rate`` requests/s, then wait up to ``drain`` s for the last answers."""
    # Requests are built before the clock starts so that building them costs nothing on it.
    requests = [request_bytes(target.method, target.host, target.port, target.path, target.headers, b) for b in bodies]
    n = len(requests)
    latencies = [math.inf] * n
    statuses = [NO_ANSWER] * n
    lags = [0.0] * n
    error_sample = ""
    last_answer = 0.0
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    remaining = n
    all_answered = asyncio.Event()
    loop = asyncio.get_running_loop()
    clock = time.perf_counter

    async def worker(conn: Connection | None) -> None:
        nonlocal error_sample, last_answer, remaining
        while True:
            i, due = await queue.get()
            try:
                if conn is None:
                    conn = await connect(target.host, target.port)
                reader, writer = conn
                writer.write(requests[i])
                status, body, close = await read_response(reader)
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
                status, body, close = CONNECTION_ERROR, repr(exc).encode(), True
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

    # Connections are opened before the clock starts: a run measures the server, not TCP set-up.
    conns = await asyncio.gather(*(connect(target.host, target.port) for _ in range(connections)))
    workers = [loop.create_task(worker(c)) for c in conns]
    interval = 1.0 / rate
    start = clock() + 0.1
    for i in range(n):
        due = start + i * interval
        # asyncio's timer runs on another clock and may wake a little early: never send before due.
        while (delay := due - clock()) > 0:
            await asyncio.sleep(delay)
        lags[i] = clock() - due
        queue.put_nowait((i, due))
    last_sent = clock() - start
    # The unanswered keep latency inf and status NO_ANSWER.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(all_answered.wait(), timeout=drain)
    for w in workers:
        w.cancel()
    await asyncio.gather(*workers, return_exceptions=True)
    for c in conns:
        c[1].close()
    return Result(
        requests=n,
        latencies=latencies,
        statuses=Counter(statuses),
        error_sample=error_sample,
        schedule_lag=lags,
        last_sent=last_sent,
        last_answer=(last_answer - start) if last_answer else math.inf,
    )


def run(target: Target, bodies: Sequence[bytes], rate: float, connections: int, drain: float) -> Result:
    """``run_async`` on a loop of its own; a module-level function so that a process pool can call it."""
    try:
        import uvloop  # optional; several times faster than the default loop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(run_async(target, bodies, rate, connections, drain))  # type: ignore[no-any-return]
