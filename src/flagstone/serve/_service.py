"""The scoring service's core: records in, decisions out, every accepted event durable first.

One writer thread scores. Requests queue up; the writer takes everything waiting (a *group
commit*), converts each source's records, recognises retries, scores the new events in time order,
and appends events, decisions, identities and alerts to the intake log (``_log``), on disk,
before any of those requests is answered. A second thread absorbs closed log segments into the
store about once a second. A request is all-or-nothing: with one bad record nothing of it is
scored or logged.

On start-up the log left by an earlier run is absorbed first, then the real-time state is rebuilt
by replaying the stored events in time order: the store is the only truth, so a restart (or a
crash) loses no window and gives no alert twice.
"""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flagstone.alerts import alert_id, alert_rows
from flagstone.engines.realtime import RealtimeEngine, order_key
from flagstone.errors import FlagstoneError, InputError
from flagstone.events import EVENT_COLUMNS
from flagstone.ingest import CanonicalIntake, Mapping, Pseudonymiser, RecordConverter
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.serve._log import IntakeLog, absorb, log_folder
from flagstone.serve._seen import SeenKeys
from flagstone.store import Store

MAX_BATCH = 1000  # records per request
MAX_GROUP = 5000  # records per group commit
EVENT_COLS = [c.name for c in EVENT_COLUMNS]
_ARROW_TYPES = {
    "string": pa.string(),
    "decimal": pa.decimal128(18, 4),
    "timestamp": pa.timestamp("us"),
    "boolean": pa.bool_(),
    "json": pa.string(),
}
EVENTS_ARROW = pa.schema([*((c.name, _ARROW_TYPES[c.type]) for c in EVENT_COLUMNS), ("batch_id", pa.int64())])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Rejected(FlagstoneError):
    """A request refused whole: 422 for bad records, 409 for an event id reused with other content."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        self.status = status
        self.errors = errors
        super().__init__("; ".join(f"record {e['index']}: {e['field']}: {e['reason']}" for e in errors))


@dataclass
class _Submission:
    source: str
    records: Sequence[dict[str, Any]]
    future: Future[list[dict[str, Any]]]
    events: list[dict[str, Any]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    decisions: list[dict[str, Any] | None] = field(default_factory=list)


@dataclass
class Counters:
    """What /v1/metrics reports besides request timings (updated by the writer only)."""

    events: int = 0
    retries: int = 0
    late: int = 0
    alerts: dict[str, int] = field(default_factory=dict)
    groups: int = 0
    state_events: int = 0
    state_groups: int = 0
    measured_at: float = 0.0


def content_hash(event: dict[str, Any]) -> str:
    """Of the event as stored (pseudonymised), so that the hash says nothing about clear identities."""
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


class ScoringService:
    """Owns the store, the converters per source and the real-time engine; see the module docstring."""

    def __init__(
        self,
        store_path: str | Path | None,
        rules: Sequence[ir.Rule],
        mappings: Sequence[Mapping] = (),
        *,
        canonical: Sequence[str] = (),
        lateness: timedelta = timedelta(hours=1),
        segment_seconds: float = 1.0,
        absorb_every: float = 0.5,
        on_progress: Callable[[int], None] | None = None,
        on_absorbed: Callable[[duckdb.DuckDBPyConnection, str, int], None] | None = None,
    ) -> None:
        sources = [m.source for m in mappings] + list(canonical)
        if not sources:
            raise InputError(
                "the service needs a source: --source NAME (canonical events) or --mapping FILE", field="--source"
            )
        if len(set(sources)) != len(sources):
            raise InputError("two sources have the same name", field="source", value=", ".join(sources))
        self.store = Store(store_path)
        # Absorbing a second of events is small work; one DuckDB thread leaves the other core to the
        # web loop and the writer instead of competing with them for both.
        self.store.con.execute("SET threads = 1")
        # DuckDB checkpoints its write-ahead log into the database file every 16 MB by default, and
        # while it does, answers stall for 100-300 ms (measured: p99 at 1,000 events/s went from
        # 129 ms to 12 ms without it). Once a gigabyte (about a quarter of an hour at 1,000 events/s)
        # keeps those pauses rare; closing the store checkpoints anyway.
        self.store.con.execute("SET checkpoint_threshold = '1GB'")
        self.rules = {r.meta.id: r for r in rules}
        self._exit = ExitStack()
        con = self.store.con
        pseudonymiser = Pseudonymiser.for_store(self.store.path)
        self._exit.enter_context(pseudonymiser.bound(con))
        self.intakes: dict[str, RecordConverter | CanonicalIntake] = {
            m.source: RecordConverter(con, m, pseudonymiser) for m in mappings
        }
        self.intakes.update({name: CanonicalIntake(name, pseudonymiser) for name in canonical})
        self.engine = RealtimeEngine(list(rules), _entities(self.store), lateness=lateness)
        self.counters = Counters()
        self.log = IntakeLog(log_folder(self.store.path))
        self.segment_seconds = segment_seconds  # how long a log segment stays open
        self.absorb_every = absorb_every
        self._absorb_lock = threading.Lock()
        self.on_absorbed = on_absorbed  # e.g. the audit log and the cases (flagstone.oversight.activity)
        self._absorb_con = con.cursor()
        self._reader = con.cursor()  # the writer's own reads (retries)
        self._pending: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # logged, not yet absorbed
        self.absorb_all()
        stored = int(self.store.scalar("SELECT count(*) FROM events"))
        self.seen = SeenKeys(2 * stored + 1_000_000)
        self.scan_id = self._register_scan()
        self.batch_ids = {name: self._register_batch(name) for name in sources}
        self.replayed = self._rebuild(on_progress)
        self._queue: queue.Queue[_Submission | None] = queue.Queue()
        self._writer = threading.Thread(target=self._run, name="flagstone-writer", daemon=True)
        self._writer.start()
        self._stop = threading.Event()
        self._absorber = threading.Thread(target=self._absorb_loop, name="flagstone-absorber", daemon=True)
        self._absorber.start()

    # -- public face ----------------------------------------------------------------------------

    @property
    def default_source(self) -> str | None:
        return next(iter(self.intakes)) if len(self.intakes) == 1 else None

    def submit(self, source: str, records: Sequence[dict[str, Any]]) -> Future[list[dict[str, Any]]]:
        """Queue one request; the future gives one decision per record, or raises ``Rejected``."""
        future: Future[list[dict[str, Any]]] = Future()
        if source not in self.intakes:
            known = ", ".join(sorted(self.intakes))
            future.set_exception(
                Rejected(
                    422,
                    [
                        {
                            "index": None,
                            "field": "source",
                            "value": source,
                            "reason": f"unknown source; the service takes {known}",
                        }
                    ],
                )
            )
        elif not records or len(records) > MAX_BATCH:
            future.set_exception(
                Rejected(
                    422,
                    [
                        {
                            "index": None,
                            "field": "events",
                            "value": str(len(records)),
                            "reason": f"a request holds 1 to {MAX_BATCH} events",
                        }
                    ],
                )
            )
        else:
            self._queue.put(_Submission(source, records, future))
        return future

    def flush(self) -> None:
        """Absorb everything logged so far into the store (GET /v1/alerts and close do this)."""
        done: Future[list[dict[str, Any]]] = Future()
        self._queue.put(_Submission("", [], done))  # an empty submission: the writer rotates the log
        done.result()
        self.absorb_all()

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join()
        self._stop.set()
        self._absorber.join()
        self.log.rotate()
        self.absorb_all()
        self._exit.close()
        for cursor in (self._absorb_con, self._reader):
            cursor.close()
        self.store.con.execute("UPDATE scans SET finished_at = ? WHERE scan_id = ?", [_now(), self.scan_id])
        self.store.close()

    def reader(self) -> Any:
        """A cursor for reads from other threads (DuckDB cursors are safe to use alongside the writer)."""
        return self.store.con.cursor()

    # -- start-up -------------------------------------------------------------------------------

    def _register_scan(self) -> int:
        con = self.store.con
        scan_id = self.store.next_id("scans", "scan_id")
        meta = [
            {"id": r.meta.id, "version": r.meta.version, "path": r.meta.path, "engine": "realtime"}
            for r in self.rules.values()
        ]
        con.execute(
            "INSERT INTO scans (scan_id, started_at, rules) VALUES (?, ?, ?)", [scan_id, _now(), json.dumps(meta)]
        )
        return scan_id

    def _register_batch(self, source: str) -> int:
        batch_id = self.store.next_id("ingest_batches", "batch_id")
        self.store.con.execute(
            "INSERT INTO ingest_batches (batch_id, source, target, file, started_at) VALUES (?, ?, 'events', ?, ?)",
            [batch_id, source, f"flagstone serve (scan {self.scan_id})", _now()],
        )
        return batch_id

    def _rebuild(self, on_progress: Callable[[int], None] | None) -> int:
        """Replay every stored event in time order; alerts it fires are already stored."""
        n = 0
        batches = (
            self.store.con.cursor()
            .sql(f"SELECT {', '.join(EVENT_COLS)} FROM events ORDER BY ts, event_id, source")
            .to_arrow_reader(50_000)
        )
        for batch in batches:
            for event in batch.to_pylist():
                self.engine.score(event)
                self.seen.add(event["source"], event["event_id"])
            n += batch.num_rows
            if on_progress:
                on_progress(n)
        self.engine.evict()
        self._measure_state()
        return n

    def _measure_state(self) -> None:
        self.counters.state_events = self.engine.state_events()
        self.counters.state_groups = self.engine.open_groups()
        self.counters.measured_at = time.monotonic()

    # -- the writer -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=0.25)
            except queue.Empty:
                if self.log.age() > self.segment_seconds:  # idle: let the absorber have the open segment
                    self.log.rotate()
                continue
            if first is None:
                return
            if self.log.age() > self.segment_seconds:
                self.log.rotate()
            group = [first]
            size = len(first.records)
            while size < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(nxt)
                size += len(nxt.records)
            flushes = [s for s in group if not s.records]
            if flushes:
                self.log.rotate()
                for sub in flushes:
                    sub.future.set_result([])
            work = [s for s in group if s.records]
            if work:
                self._commit_group(work)

    def _commit_group(self, group: list[_Submission]) -> None:
        try:
            accepted = self._convert(group)
            self._find_retries(accepted)
            fired, updated = self._score(accepted)
            self._log(accepted, fired, updated)
        except BaseException as exc:
            for sub in group:
                if not sub.future.done():
                    sub.future.set_exception(exc)
            self._recover()
            return
        self.counters.groups += 1
        if time.monotonic() - self.counters.measured_at > 1.0:  # walking the state costs; once a second
            self._measure_state()
        for sub in accepted:
            sub.future.set_result([d for d in sub.decisions if d is not None])

    def _recover(self) -> None:
        """After a failure the engine may hold events that were not logged: start again from the store."""
        self.log.rotate()
        self.absorb_all()
        self.engine = RealtimeEngine(list(self.rules.values()), _entities(self.store), lateness=self.engine.lateness)
        self._rebuild(None)

    # -- the absorber ---------------------------------------------------------------------------

    def _absorb_loop(self) -> None:
        while not self._stop.wait(self.absorb_every):
            try:
                self.absorb_all()
            except Exception as exc:  # keep serving: the segment stays on disk and is tried again
                print(f"flagstone serve: cannot absorb the intake log yet: {exc}", file=sys.stderr, flush=True)
                self._stop.wait(5.0)

    def absorb_all(self) -> None:
        """Move every closed log segment into the store (one transaction each)."""
        with self._absorb_lock:
            for path in self.log.closed_segments():
                keys = absorb(self.store, self._absorb_con, path)
                for key in keys:
                    self._pending.pop(key, None)
                if self.on_absorbed is not None and keys:
                    try:
                        self.on_absorbed(self._absorb_con, path.name, len(keys))
                    except Exception as exc:  # the events are stored; say loudly what was not recorded
                        print(f"flagstone serve: cannot audit segment {path.name}: {exc}", file=sys.stderr, flush=True)

    def _convert(self, group: list[_Submission]) -> list[_Submission]:
        """Convert each source's records with one query; reject requests with a bad record."""
        by_source: dict[str, list[_Submission]] = {}
        for sub in group:
            by_source.setdefault(sub.source, []).append(sub)
        accepted = []
        for source, subs in by_source.items():
            records = [r for s in subs for r in s.records]
            events, errors = self.intakes[source].convert(records)
            bad: dict[int, list[dict[str, Any]]] = {}
            starts = []
            offset = 0
            for s in subs:
                starts.append(offset)
                offset += len(s.records)
            for err in errors:
                owner = max(i for i, start in enumerate(starts) if start <= err.index)
                bad.setdefault(owner, []).append(
                    {"index": err.index - starts[owner], "field": err.field, "value": err.value, "reason": err.reason}
                )
            good = iter(events)
            for i, s in enumerate(subs):
                if i in bad:
                    for _ in range(len(s.records) - len(bad[i])):
                        next(good)
                    s.future.set_exception(Rejected(422, bad[i]))
                    continue
                s.events = [next(good) for _ in s.records]
                s.hashes = [content_hash(e) for e in s.events]
                accepted.append(s)
        return accepted

    def _find_retries(self, subs: list[_Submission]) -> None:
        """Fill in the stored decision of every event accepted before (a retry); refuse a reused id.
        An event sent twice within one group is scored once; the second copy gets the first's decision."""
        keys = {(e["source"], e["event_id"]) for s in subs for e in s.events}
        stored: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
            k: self._pending[k] for k in keys if k in self._pending
        }
        maybe = {k for k in keys if k not in stored and self.seen.might_hold(*k)}
        if maybe:
            times = [e["ts"] for s in subs for e in s.events if (e["source"], e["event_id"]) in maybe]
            stored.update(_stored_decisions(self._reader, maybe, times))
        first: dict[tuple[str, str], tuple[str, _Submission, int]] = {}
        self._copies: list[tuple[_Submission, int, _Submission, int]] = []
        for s in list(subs):
            s.decisions = []
            conflicts = []
            for i, (event, digest) in enumerate(zip(s.events, s.hashes, strict=True)):
                key = (event["source"], event["event_id"])
                s.decisions.append(None)
                if key in stored:
                    known, decision = stored[key]
                    if known and known != digest:
                        conflicts.append(_conflict(i, event))
                    else:
                        s.decisions[i] = {**(decision or _ingested(key)), "index": i, "retry": True}
                elif key in first:
                    known, other, j = first[key]
                    if known != digest:
                        conflicts.append(_conflict(i, event))
                    else:
                        self._copies.append((s, i, other, j))
                        s.decisions[i] = {"retry": True}  # filled in after scoring
                else:
                    first[key] = (digest, s, i)
            if conflicts:
                s.future.set_exception(Rejected(409, conflicts))
                subs.remove(s)
                self._copies = [c for c in self._copies if c[2] is not s and c[0] is not s]

    def _score(self, subs: list[_Submission]) -> tuple[list[Finding], list[Finding]]:
        """Score the new events in time order; the alerts to insert and the episode alerts to update."""
        fresh = [(s, i) for s in subs for i, d in enumerate(s.decisions) if d is None]
        fresh.sort(key=lambda si: order_key(si[0].events[si[1]]))
        fired: set[tuple[str, tuple[Any, ...], tuple[str, str]]] = set()
        final: dict[tuple[str, tuple[Any, ...], tuple[str, str]], Finding] = {}
        for s, i in fresh:
            event = s.events[i]
            decision = self.engine.score(event)
            for f in [*decision.fired, *decision.updated]:
                final[(f.rule_id, f.group, f.fire)] = f
            fired.update((f.rule_id, f.group, f.fire) for f in decision.fired)
            self.counters.events += 1
            self.counters.late += decision.late
            for f in decision.fired:
                self.counters.alerts[f.rule_id] = self.counters.alerts.get(f.rule_id, 0) + 1
            s.decisions[i] = {
                "index": i,
                "source": event["source"],
                "event_id": event["event_id"],
                "status": "late" if decision.late else "scored",
                "alerts": [self.alert(f) for f in decision.fired],
                "updated_alerts": [alert_id(f) for f in decision.updated],
                "retry": False,
            }
        for s, i, other, j in self._copies:
            s.decisions[i] = {**(other.decisions[j] or {}), "index": i, "retry": True}
        self.counters.retries += sum(1 for s in subs for d in s.decisions if d is not None and d["retry"])
        return [final[k] for k in fired], [f for k, f in final.items() if k not in fired]

    def _log(self, subs: list[_Submission], fired: list[Finding], updated: list[Finding]) -> None:
        """Append the group's new events, decisions, identities and alerts to the log, on disk."""
        rows = [(s.events[i], s.hashes[i], d) for s in subs for i, d in enumerate(s.decisions) if d and not d["retry"]]
        identities = [i for s in {sub.source for sub in subs} for i in self.intakes[s].take_identities()]
        if not rows and not identities:
            return
        now = _now().isoformat()
        entry = {
            "events": [{**e, "batch_id": self.batch_ids[e["source"]]} for e, _, _ in rows],
            "served": [[e["source"], e["event_id"], now, h, json.dumps(d, default=str)] for e, h, d in rows],
            "identities": identities,
            "alerts": [_logged(row) for f in fired for row in alert_rows(self.rules[f.rule_id], [f], self.scan_id)],
            "updates": [_logged(row) for f in updated for row in alert_rows(self.rules[f.rule_id], [f], self.scan_id)],
        }
        self.log.append(entry)
        for e, h, d in rows:
            key = (e["source"], e["event_id"])
            self._pending[key] = (h, d)
            self.seen.add(*key)

    def alert(self, f: Finding) -> dict[str, Any]:
        """A finding as the API shows it (the stored alert row, with values and evidence unpacked)."""
        [row] = alert_rows(self.rules[f.rule_id], [f], self.scan_id)
        return api_alert(row)


def api_alert(row: dict[str, Any]) -> dict[str, Any]:
    values = row["values"]
    return {
        "alert_id": row["alert_id"],
        "rule_id": row["rule_id"],
        "rule_version": row["rule_version"],
        "severity": row["severity"],
        "group_key": row["group_key"],
        "reason": row["reason"],
        "values": json.loads(values) if isinstance(values, str) else values,
        "first_ts": row["first_ts"].isoformat(),
        "last_ts": row["last_ts"].isoformat(),
        "fire": {"source": row["fire_source"], "event_id": row["fire_event_id"]},
        "evidence": [
            {"source": s, "event_id": e} for s, e in zip(row["evidence_sources"], row["evidence"], strict=True)
        ],
    }


def _logged(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "first_ts": row["first_ts"].isoformat(), "last_ts": row["last_ts"].isoformat()}


def _conflict(i: int, event: dict[str, Any]) -> dict[str, Any]:
    return {
        "index": i,
        "field": "event_id",
        "value": event["event_id"],
        "reason": "this event id was accepted before with different content",
    }


def _ingested(key: tuple[str, str]) -> dict[str, Any]:
    """The decision for an event stored before it was sent here (by a batch ingest): not scored."""
    return {"source": key[0], "event_id": key[1], "status": "duplicate", "alerts": [], "updated_alerts": []}



def _stored_decisions(
    con: Any, keys: set[tuple[str, str]], times: list[datetime]
) -> dict[tuple[str, str], tuple[str, dict[str, Any] | None]]:
    """(content hash, decision) of the keys already served; ("", None) for ones only ingested
    (by `flagstone ingest`; the time range keeps DuckDB to the few row groups they can be in)."""
    if not keys:
        return {}
    wanted = pa.table({"source": [k[0] for k in keys], "event_id": [k[1] for k in keys]})  # noqa: F841 - in SQL
    rows = con.execute(
        "SELECT s.source, s.event_id, s.content_hash, s.decision FROM served s JOIN wanted USING (source, event_id) "
        "UNION ALL SELECT e.source, e.event_id, '', NULL FROM events e JOIN wanted USING (source, event_id) "
        "WHERE e.ts BETWEEN ? AND ?",
        [min(times), max(times)],
    ).fetchall()
    out: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {}
    for source, event_id, digest, decision in rows:
        if digest or (source, event_id) not in out:  # a served event is in both tables: its decision wins
            out[(source, event_id)] = (digest, json.loads(decision) if decision else None)
    return out


def _entities(store: Store) -> dict[str, dict[str, Any]]:
    """Each entity's latest load, as the batch engines read it."""
    cur = store.con.cursor()
    rel = cur.execute(
        "SELECT * EXCLUDE (source, batch_id) FROM entities "
        "QUALIFY row_number() OVER (PARTITION BY entity ORDER BY batch_id DESC) = 1"
    )
    names = [d[0] for d in rel.description]
    return {row[0]: dict(zip(names, row, strict=True)) for row in rel.fetchall()}
