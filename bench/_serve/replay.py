"""Replay = scan: the same events ingested and scanned (store A) and posted to a server (store B) must
give the same alerts. The restart of server B, which rebuilds its state from the stored events, is timed.
"""

from __future__ import annotations

import http.client
import json
import shutil
import time
from collections import Counter
from itertools import islice
from pathlib import Path

import duckdb

from _serve.data import batch_body, read_lines
from _serve.server import HOST, PACKS, SOURCE, Server, create_key
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.scan import scan_store
from flagstone.store import Store

REPLAY_BATCH = 1000  # events per request; also the most --batch may ask for
# Every alerts column but scan_id, which differs between any two stores by construction.
ALERT_COLUMNS = (
    "alert_id, rule_id, rule_version, severity, group_key, first_ts, last_ts, fire_source, fire_event_id, "
    'evidence_sources, evidence, "values"::VARCHAR AS "values", reason'
)


def replay_run(work: Path, events_file: Path, available: int, replay_events: int) -> bool:
    """Ingest + scan (store A) against the same events posted to a server (store B); True if equal."""
    from flagstone.serve import canonical_mapping_text  # only the replay needs it (and newer code)

    n = min(replay_events, available)
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
    try:
        post_s, statuses, failures, first_failure = post_all(server.port, key, replay_file)
    finally:
        server.stop()
    shown = ", ".join(f"{s} {c:,}" for s, c in sorted(statuses.items()))
    print(
        f"replay B (server): {n:,} events posted in batches of {REPLAY_BATCH} in {post_s:.1f} s = "
        f"{n / post_s:,.0f} events/s; decisions: {shown}; failed requests {failures}"
    )
    if first_failure:
        print(f"  first failure: {first_failure}")

    restart_line(server, key, n)

    same, lines = compare_alerts(store_a, store_b)
    for line in lines:
        print(line)
    equal = same and failures == 0
    print(f"alerts equal: {'yes' if equal else 'no'}" + ("" if failures == 0 else f" ({failures} failed requests)"))
    return equal


def post_all(port: int, key: str, replay_file: Path) -> tuple[float, Counter[str], int, str]:
    """The file's events in order, one request after the other (closed loop: the order is the point).

    Returns the seconds taken, the decisions by status, the failed requests and the first failure.
    """
    statuses: Counter[str] = Counter()
    failures = 0
    first_failure = ""
    con = http.client.HTTPConnection(HOST, port, timeout=600)
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
    return post_s, statuses, failures, first_failure


def restart_line(server: Server, key: str, n: int) -> None:
    """A restart replays the stored events to rebuild the state: how long it takes on this store."""
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
