"""An open-loop HTTP load generator that any benchmark can import (``bench/`` is on ``sys.path``
when a script in it runs).

Open loop: request i is due at start + i / rate whatever the server does, and its latency runs from
that due time, so a slow server cannot slow the load down and hide its own queueing (coordinated
omission). The client is raw HTTP/1.1 on asyncio streams (uvloop when installed) over keep-alive
connections opened before the clock starts; a request waits on the clock for a free connection.

    from loadgen import LoadProcess, Target, summarise

    target = Target("127.0.0.1", port, "/v1/events?source=api", {"Content-Type": "application/json"})
    with LoadProcess() as gen:                       # the generator runs in a process of its own
        result = gen.run(target, bodies, rate=500, connections=64, drain=30)   # rate: requests/s
    s = summarise(result)
    print(s.p50, s.p99, s.errors, s.error_counts)    # seconds; math.inf when a request went unanswered

``run`` does the same in the calling process. ``Result`` keeps every request's latency and status;
``summarise`` turns it into nearest-rank percentiles, achieved rates and an error breakdown.
"""

from loadgen._openloop import CONNECTION_ERROR, NO_ANSWER, Result, Target, run
from loadgen._process import LoadProcess
from loadgen._stats import Summary, percentile, summarise

__all__ = [
    "CONNECTION_ERROR",
    "NO_ANSWER",
    "LoadProcess",
    "Result",
    "Summary",
    "Target",
    "percentile",
    "run",
    "summarise",
]
