"""Audit entries for the data commands (ingest, scan, export, report, serve), and the cases a scan
makes: the glue between the detection side and the oversight side, in one place."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
from sqlalchemy import select

from flagstone.alerts import active_scores
from flagstone.audit.events import AlertsScored, AuditEvent, Ingested, RuleChanged, Scanned
from flagstone.oversight.context import Oversight, cli_actor
from flagstone.oversight.schema import audit_entries
from flagstone.oversight.sync import SyncResult, copy_outcomes, sync_alerts
from flagstone.rules.ir import Rule
from flagstone.store import Store


def record(store_path: str | Path | None, events: Iterable[AuditEvent], actor: str | None = None) -> None:
    """Write ``events`` to the audit log of the store's case database."""
    ov = Oversight.open(store_path)
    try:
        for e in events:
            ov.audit.record(actor or cli_actor(), e)
    finally:
        ov.close()


def rule_changes(ov: Oversight, rules: Iterable[Rule]) -> list[RuleChanged]:
    """A change event for each rule whose file differs from the one its last audited use had."""
    with ov.engine.connect() as con:
        last = {
            r.target: json.loads(r.details).get("sha256")
            for r in con.execute(
                select(audit_entries.c.target, audit_entries.c.details)
                .where(audit_entries.c.action == RuleChanged.action)
                .order_by(audit_entries.c.seq)
            )
        }
    out = []
    for rule in rules:
        digest = _file_sha256(rule.meta.path)
        if last.get(rule.meta.id) != digest:
            out.append(RuleChanged(rule.meta.id, rule.meta.version, digest, last.get(rule.meta.id)))
    return out


def _file_sha256(path: str) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def before_scan(store: Store) -> None:
    """With a triage model active, bring the store's copy of decided cases up to date, so that the
    scan's new alerts are scored knowing their accounts' earlier outcomes."""
    if not active_scores(store.con):
        return
    ov = Oversight.open(store.path)
    try:
        copy_outcomes(ov, store)
    finally:
        ov.close()


def after_scan(
    store: Store, rules: Iterable[Rule], scan_id: int, engine: str, alerts: int, scored: tuple[str, int] | None = None
) -> SyncResult:
    """Audit a scan on the store (and any rule that changed since it was last used, and the
    scoring of its new alerts by the active triage model, ``scored``), then make cases of them."""
    rules = list(rules)
    ov = Oversight.open(store.path)
    try:
        actor = cli_actor()
        for change in rule_changes(ov, rules):
            ov.audit.record(actor, change)
        ov.audit.record(actor, Scanned(str(scan_id), engine, tuple(r.meta.id for r in rules), alerts))
        if scored is not None:
            ov.audit.record(actor, AlertsScored(*scored))
        return sync_alerts(ov, store)
    finally:
        ov.close()


def service_hook(store_path: Path, sync_every: float = 10.0) -> Callable[[duckdb.DuckDBPyConnection, str, int], None]:
    """For ``flagstone serve``: audit each absorbed segment of the intake log as an ingest, and make
    cases of the service's alerts at most every ``sync_every`` seconds."""
    ov = Oversight.open(store_path)
    last_sync = 0.0

    def on_absorbed(con: duckdb.DuckDBPyConnection, segment: str, events: int) -> None:
        nonlocal last_sync
        ov.audit.record("service", Ingested("serve", segment, 0, events, events, 0, 0))
        if time.monotonic() - last_sync >= sync_every:
            sync_alerts(ov, con)
            last_sync = time.monotonic()

    return on_absorbed
