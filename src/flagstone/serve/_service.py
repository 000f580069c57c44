"""The scoring service's core: records in, decisions out, every accepted event durable first.

One writer thread scores. Requests queue up; the writer takes everything waiting (a *group
commit*), converts each source's records, recognises retries, scores the new events in time order,
and appends events, decisions, identities and alerts to the intake log (``_log``), on disk,
before any of those requests is answered. A second thread absorbs closed log segments into the
store about once a second. A request is all-or-nothing: with one bad record nothing of it is
scored or logged.

What a client can get wrong is refused before the writer (``_intake``, then the converters), so a
group fails only through a fault of the service. Its scoring is tentative until its log line is on
disk (``RealtimeEngine.begin``): a group that fails before is undone at the cost of the groups it
touched, and its requests are tried again one by one, so the failure costs only the request that
causes it. A failure to write the log (or any other fault of the writer) is not survivable in
place: the requests get 503, ``health`` turns to "failed", and ``on_failure`` asks the process to
exit so that a supervisor starts it again (the log on disk is the truth it restarts from).

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
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from flagstone.alerts import alert_id, alert_rows, scan_record
from flagstone.engines.realtime import RealtimeEngine, order_key
from flagstone.errors import FlagstoneError, InputError
from flagstone.events import EVENT_COLUMNS
from flagstone.ingest import CanonicalIntake, Mapping, Pseudonymiser, RecordConverter
from flagstone.rules import ir
from flagstone.rules.finding import Finding
from flagstone.serve._absorb import Absorber, SetAside
from flagstone.serve._intake import printable, value_problem
from flagstone.serve._log import INTERNAL_ERRORS, IntakeLog, entry_line, log_folder
from flagstone.serve._seen import SeenKeys, ensure_key_indexes, lookup
from flagstone.store import Store

MAX_BATCH = 1000  # records per request
MAX_GROUP = 5000  # records per group commit
GROUP_BYTES = 16 * 2**20  # request bytes per group commit (one request may exceed it alone)
EVENT_COLS = [c.name for c in EVENT_COLUMNS]
KEY_FIRST = ["source", "event_id", *(c for c in EVENT_COLS if c not in ("source", "event_id"))]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Rejected(FlagstoneError):
    """A request refused whole: 422 for bad records, 409 for an event id reused with other content,
    503 when the service has failed (nothing of the request was acknowledged; sending it again
    later is safe, a retry gets the original decision)."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        self.status = status
        self.errors = errors
        super().__init__("; ".join(f"record {e['index']}: {e['field']}: {e['reason']}" for e in errors))


def _request_problem(field: str | None, value: str | None, reason: str) -> dict[str, Any]:
    return {"index": None, "field": field, "value": value, "reason": reason}


@dataclass
class _Submission:
    source: str
    records: Sequence[dict[str, Any]]
    future: Future[list[dict[str, Any]]]
    size: int = 0  # bytes of the request body, to bound a group commit
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
        on_set_aside: Callable[[SetAside], None] | None = None,
        on_failure: Callable[[], None] | None = None,
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
        self._identities_lock = threading.Lock()  # see _absorb.Absorber
        self.on_absorbed = on_absorbed  # e.g. the audit log and the cases (flagstone.oversight.activity)
        self.on_set_aside = on_set_aside  # lines of the log that could not be absorbed (audited)
        self.on_failure = on_failure  # the writer failed: e.g. stop the web server, exit non-zero
        self.failure: str | None = None  # set once, by the writer; the service then refuses with 503
        self.absorb_problem: str | None = None  # the absorber's last failure, until it succeeds again
        self._unabsorbable: set[str] = set()  # segments that could neither be read nor moved aside
        self._absorb_con = con.cursor()
        self._absorber = Absorber(self.store, self._absorb_con, self._identities_lock)
        self._reader = con.cursor()  # the writer's own reads (retries)
        self._pending: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # logged, not yet absorbed
        ensure_key_indexes(con)
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
        self._absorb_thread = threading.Thread(target=self._absorb_loop, name="flagstone-absorber", daemon=True)
        self._absorb_thread.start()

    # -- public face ----------------------------------------------------------------------------

    @property
    def default_source(self) -> str | None:
        return next(iter(self.intakes)) if len(self.intakes) == 1 else None

    def submit(self, source: str, records: Sequence[dict[str, Any]], size: int = 0) -> Future[list[dict[str, Any]]]:
        """Queue one request (``size``: its body's bytes, if known); the future gives one decision
        per record, or raises ``Rejected``. Records are JSON values, as ``json.loads`` makes them."""
        future: Future[list[dict[str, Any]]] = Future()
        problems: list[dict[str, Any]] = []
        if source not in self.intakes:
            known = ", ".join(sorted(self.intakes))
            problems = [_request_problem("source", source, f"unknown source; the service takes {known}")]
        elif not records or len(records) > MAX_BATCH:
            problems = [_request_problem("events", str(len(records)), f"a request holds 1 to {MAX_BATCH} events")]
        else:
            problems = [p for i, r in enumerate(records) if (p := value_problem(i, r)) is not None]
        if problems:
            future.set_exception(Rejected(422, problems))
        elif self.failure is not None:
            future.set_exception(self._failed())
        else:
            self._queue.put(_Submission(source, records, future, size))
        return future

    def flush(self) -> None:
        """Absorb everything logged so far into the store (GET /v1/alerts and close do this)."""
        done: Future[list[dict[str, Any]]] = Future()
        self._queue.put(_Submission("", [], done))  # an empty submission: the writer rotates the log
        done.result()
        self.absorb_all()

    def health(self) -> tuple[str, str | None]:
        """ "ok"; "degraded" while the absorber fails (answers go on, the log grows); "failed" once
        the writer has failed (every request is refused until the process is restarted)."""
        if self.failure is not None:
            return "failed", self.failure
        if self.absorb_problem is not None:
            return "degraded", self.absorb_problem
        return "ok", None

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join()
        self._stop.set()
        self._absorb_thread.join()
        try:
            self.log.rotate()
            self.absorb_all()
        except Exception as exc:  # what is logged stays on disk; the next start absorbs it
            print(f"flagstone serve: the intake log stays to be absorbed at the next start: {exc}", file=sys.stderr)
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
        meta = [scan_record(r, engine="realtime") for r in self.rules.values()]
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
            group: list[_Submission] = []
            try:
                taken = self._next_group()
                if taken is None:
                    return
                group = taken
                if self.failure is not None:
                    for sub in group:
                        sub.future.set_exception(self._failed())
                    continue
                self._commit(group)
            except BaseException as exc:  # never die silently: fail loudly, keep refusing requests
                self._fail(exc, group)

    def _next_group(self) -> list[_Submission] | None:
        """Everything waiting, up to MAX_GROUP records and GROUP_BYTES of requests; None to stop.
        Flushes (empty submissions) rotate the log and are answered here."""
        while True:
            try:
                first = self._queue.get(timeout=0.25)
                break
            except queue.Empty:
                if self.log.age() > self.segment_seconds:  # idle: let the absorber have the open segment
                    self.log.rotate()
        if first is None:
            return None
        if self.log.age() > self.segment_seconds:
            self.log.rotate()
        group = [first]
        records, size = len(first.records), first.size
        while records < MAX_GROUP and size < GROUP_BYTES:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # stop after this group
                break
            group.append(nxt)
            records += len(nxt.records)
            size += nxt.size
        # From here a request's future cannot be cancelled (its client gone: asyncio.wrap_future
        # cancels it), so answering it cannot raise; a cancelled one is dropped unscored.
        group = [s for s in group if s.future.set_running_or_notify_cancel()]
        flushes = [s for s in group if not s.records]
        if flushes:
            self.log.rotate()
            for sub in flushes:
                if self.failure is not None:
                    sub.future.set_exception(self._failed())
                else:
                    sub.future.set_result([])
        return [s for s in group if s.records]

    def _commit(self, group: list[_Submission]) -> None:
        """Score the group tentatively, write its log line, then keep the scoring. A failure before
        the write is undone; with several requests in the group each is tried alone, so that only
        the one that fails is refused. A failure to write is the service's own: it raises."""
        group = [s for s in group if not s.future.done()]
        if not group:
            return
        self.engine.begin()
        try:
            accepted = self._convert(group)
            self._find_retries(accepted)
            fired, updated = self._score(accepted)
            line, identities = self._entry(accepted, fired, updated)
        except INTERNAL_ERRORS:
            self.engine.rollback()
            raise
        except Exception as exc:
            self.engine.rollback()
            if len(group) > 1:
                for sub in group:
                    self._commit([sub])
            else:
                self._refuse(group[0], exc)
            return
        try:
            if line is not None:
                self.log.append(line)
        except BaseException:
            self.engine.rollback()
            raise
        self.engine.commit()
        self._acknowledge(accepted, identities)

    def _acknowledge(self, accepted: list[_Submission], identities: dict[str, list[list[str]]]) -> None:
        """The group's line is on disk: remember what it holds, and answer its requests."""
        for source, rows in identities.items():
            self.intakes[source].stored(rows)
        for s in accepted:
            for event, digest, decision in zip(s.events, s.hashes, s.decisions, strict=True):
                if decision is not None and not decision["retry"]:
                    key = (event["source"], event["event_id"])
                    self._pending[key] = (digest, decision)
                    self.seen.add(*key)
        self.counters.groups += 1
        self.counters.events += sum(1 for s in accepted for d in s.decisions if d is not None and not d["retry"])
        self.counters.retries += sum(1 for s in accepted for d in s.decisions if d is not None and d["retry"])
        for s in accepted:
            for d in s.decisions:
                if d is not None and not d["retry"]:
                    self.counters.late += d["status"] == "late"
                    for a in d["alerts"]:
                        self.counters.alerts[a["rule_id"]] = self.counters.alerts.get(a["rule_id"], 0) + 1
        if time.monotonic() - self.counters.measured_at > 1.0:  # walking the state costs; once a second
            self._measure_state()
        for s in accepted:
            s.future.set_result([d for d in s.decisions if d is not None])

    def _refuse(self, sub: _Submission, exc: Exception) -> None:
        """A request that failed on its own, past every check: a gap in the checks, so it is refused
        with what went wrong (and the trace on stderr, to be reported), and nothing of it is kept."""
        print(f"flagstone serve: a request failed past the checks ({sub.source}):", file=sys.stderr)
        traceback.print_exception(exc, file=sys.stderr)
        reason = (
            f"the service could not score this request ({type(exc).__name__}: {str(exc)[:300]}); nothing of it "
            "was stored. This is a gap in the service's checks: please report it"
        )
        sub.future.set_exception(Rejected(422, [_request_problem(None, None, printable(reason))]))

    def _fail(self, exc: BaseException, group: list[_Submission]) -> None:
        """The writer cannot go on: refuse everything from now on and ask the process to exit."""
        if self.failure is None:
            self.failure = printable(f"the writer failed: {type(exc).__name__}: {exc}")
            print(f"flagstone serve: {self.failure}; stopping (exit status 3)", file=sys.stderr, flush=True)
            traceback.print_exception(exc, file=sys.stderr)
        for sub in group:
            if not sub.future.done():
                sub.future.set_exception(self._failed())
        if self.on_failure is not None:
            try:
                self.on_failure()
            except Exception as hook_exc:  # pragma: no cover - the hook only sets a flag
                print(f"flagstone serve: cannot stop: {hook_exc}", file=sys.stderr, flush=True)

    def _failed(self) -> Rejected:
        reason = (
            f"the service has failed and must be restarted ({self.failure}); this request was not acknowledged. "
            "Send it again once the service is back: a retry is answered with the original decision"
        )
        return Rejected(503, [_request_problem(None, None, reason)])

    # -- the absorber ---------------------------------------------------------------------------

    def _absorb_loop(self) -> None:
        while not self._stop.wait(self.absorb_every):
            try:
                self.absorb_all()
            except Exception as exc:  # keep serving: the segment stays on disk and is tried again
                print(f"flagstone serve: cannot absorb the intake log yet: {exc}", file=sys.stderr, flush=True)
                self._stop.wait(5.0)

    def absorb_all(self) -> None:
        """Move every closed log segment into the store (one transaction each). Lines that cannot be
        absorbed are set aside and reported; a failure of the store or the disk raises (and
        ``health`` says "degraded" until an attempt succeeds)."""
        with self._absorb_lock:
            try:
                for path in self.log.closed_segments():
                    if path.name not in self._unabsorbable:
                        self._absorb_one(path)
            except Exception as exc:
                self.absorb_problem = printable(f"cannot absorb the intake log: {type(exc).__name__}: {exc}")
                raise
            stuck = ", ".join(sorted(self._unabsorbable))
            self.absorb_problem = f"intake segments that can be neither read nor set aside: {stuck}" if stuck else None

    def _absorb_one(self, path: Path) -> None:
        try:
            done = self._absorber.absorb(path, foreign=path.name not in self.log.created)
        except OSError as exc:  # could neither read nor move it: leave it, say so, go on with the others
            self._unabsorbable.add(path.name)
            print(
                f"flagstone serve: cannot read or set aside intake segment {path}: {exc}", file=sys.stderr, flush=True
            )
            return
        for key in done.keys:
            self._pending.pop(key, None)
        if done.set_aside is not None:
            self._report_set_aside(done.set_aside)
        if self.on_absorbed is not None and done.keys:
            try:
                self.on_absorbed(self._absorb_con, path.name, len(done.keys))
            except Exception as exc:  # the events are stored; say loudly what was not recorded
                print(f"flagstone serve: cannot audit segment {path.name}: {exc}", file=sys.stderr, flush=True)

    def _report_set_aside(self, aside: SetAside) -> None:
        where = f"lines {', '.join(map(str, aside.lines))}" if aside.lines else "the whole file"
        print(
            f"flagstone serve: intake segment {aside.segment}: {where} could not be absorbed ({aside.reason}); "
            f"moved to {aside.moved_to}, {aside.kept:,} events of its other lines kept",
            file=sys.stderr,
            flush=True,
        )
        if self.on_set_aside is not None:
            try:
                self.on_set_aside(aside)
            except Exception as exc:
                print(f"flagstone serve: cannot audit the set-aside segment {aside.segment}: {exc}", file=sys.stderr)

    def _convert(self, group: list[_Submission]) -> list[_Submission]:
        """Convert each source's records with one query; reject requests with a bad record."""
        by_source: dict[str, list[_Submission]] = {}
        for sub in group:
            by_source.setdefault(sub.source, []).append(sub)
        accepted = []
        for source, subs in by_source.items():
            records = [r for s in subs for r in s.records]
            intake = self.intakes[source]
            # A mapped source stores identities itself, as the absorber does (see _absorb.Absorber).
            with self._identities_lock if isinstance(intake, RecordConverter) else nullcontext():
                events, errors = intake.convert(records)
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
        stored.update(_stored_decisions(self._reader, maybe))
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
            s.decisions[i] = {
                "index": i,
                "source": event["source"],
                "event_id": event["event_id"],
                "status": "late" if decision.late else "scored",
                "alerts": [self.alert(f) for f in decision.fired],
                "updated_alerts": [alert_id(f, self.rules[f.rule_id].meta.param_set) for f in decision.updated],
                "retry": False,
            }
        for s, i, other, j in self._copies:
            s.decisions[i] = {**(other.decisions[j] or {}), "index": i, "retry": True}
        return [final[k] for k in fired], [f for k, f in final.items() if k not in fired]

    def _entry(
        self, subs: list[_Submission], fired: list[Finding], updated: list[Finding]
    ) -> tuple[bytes | None, dict[str, list[list[str]]]]:
        """The group's log line (its new events, decisions, identities and alerts), or None when it
        holds nothing new; and the identities it carries, by source."""
        rows = [(s.events[i], s.hashes[i], d) for s in subs for i, d in enumerate(s.decisions) if d and not d["retry"]]
        identities: dict[str, list[list[str]]] = {}
        for source in {sub.source for sub in subs}:
            identities[source] = self.intakes[source].take_identities([e for e, _, _ in rows if e["source"] == source])
        if not rows and not any(identities.values()):
            return None, identities
        now = _now().isoformat()
        entry = {
            "events": [{**e, "batch_id": self.batch_ids[e["source"]]} for e, _, _ in rows],
            "served": [[e["source"], e["event_id"], now, h, json.dumps(d, default=str)] for e, h, d in rows],
            "identities": [i for rows_ in identities.values() for i in rows_],
            "alerts": [_logged(row) for f in fired for row in alert_rows(self.rules[f.rule_id], [f], self.scan_id)],
            "updates": [_logged(row) for f in updated for row in alert_rows(self.rules[f.rule_id], [f], self.scan_id)],
        }
        return entry_line(entry), identities

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


def _stored_decisions(con: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, dict[str, Any] | None]]:
    """(content hash, decision) of the keys already served; (content hash, None) of those only
    ingested (by `flagstone ingest`), whatever their time."""
    out: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
        (source, event_id): (digest, json.loads(decision))
        for source, event_id, digest, decision in lookup(
            con, "served", ["source", "event_id", "content_hash", "decision"], keys
        )
    }
    for row in lookup(con, "events", KEY_FIRST, keys - out.keys()):
        event = dict(zip(KEY_FIRST, row, strict=True))  # as the converters make it: the hashes compare
        out[(event["source"], event["event_id"])] = (content_hash(event), None)
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
