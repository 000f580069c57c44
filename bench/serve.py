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
import os
import shutil
import sys
import tempfile
from pathlib import Path

# The parts live beside this file (bench/ is sys.path[0] when it runs): loadgen is the reusable load
# generator, _serve what only this benchmark needs.
from _serve.data import count_lines, prepare_events
from _serve.latency import latency_run
from _serve.replay import REPLAY_BATCH, replay_run


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
            latency_run(
                work,
                events_file,
                available,
                rates=[float(r) for r in args.rates.split(",")],
                seconds=args.seconds,
                batch=args.batch,
                connections=args.connections,
                drain=args.drain,
                slo_ms=args.slo_ms,
            )
        if args.replay:
            equal = replay_run(work, events_file, available, args.replay_events)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    if not equal:
        sys.exit(1)


if __name__ == "__main__":
    main()
