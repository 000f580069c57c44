"""Oversight of what the rules found: ``cases sync`` makes cases of alerts, ``web`` is where people
review them, and ``retention run`` deletes data past its period except what a case holds.

Every command here works on the case database (``--db``, ``$FLAGSTONE_DB``, or
``<store>.cases.sqlite`` beside the store) and writes what it does to the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from flagstone.cli._common import ConfigOpt, DbOpt, StoreOpt, err, friendly, open_oversight, out

cases_app = typer.Typer(
    name="cases", help="Cases made from alerts, for review.", no_args_is_help=True, rich_markup_mode="markdown"
)
retention_app = typer.Typer(
    name="retention", help="Delete data past its retention period.", no_args_is_help=True, rich_markup_mode="markdown"
)


@cases_app.command("sync")
@friendly
def cases_sync(store: StoreOpt = None, db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Make a case of every alert in the store that has none yet (with its evidence and the
    encrypted identities of its parties). `flagstone scan` does this itself; use this after
    `flagstone serve`, whose alerts reach the store as it runs."""
    from flagstone.oversight.sync import sync_alerts
    from flagstone.store import Store

    ov = open_oversight(store, db, config)
    try:
        with Store(ov.store_path, read_only=True) as st:
            result = sync_alerts(ov, st)
    finally:
        ov.close()
    out.print(
        f"{result.cases:,} new cases, {result.evidence:,} evidence events, {result.identities:,} identities copied",
        highlight=False,
    )


@retention_app.command("run")
@friendly
def retention_run(
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    days: Annotated[
        int | None, typer.Option(help="Keep this many days (default: retention.days of the configuration, 1826).")
    ] = None,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Count the period back from this UTC time instead of now.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
) -> None:
    """Delete events older than the retention period, except those a case holds (legal hold: an
    open case, or a filed report). Also deletes quarantined records of old batches, old alerts and
    service decisions, identities nothing refers to any more, and old dismissed cases. Prints what
    was purged and what was held; the purge is audited."""
    from flagstone.oversight.retention import run_retention
    from flagstone.store import Store

    ov = open_oversight(store, db, config)
    try:
        with Store(ov.store_path, create=False) as st:
            result = run_retention(ov, st, days=days, as_of=as_of, dry_run=dry_run)
    finally:
        ov.close()
    for line in result.summary_lines():
        out.print(line, highlight=False, soft_wrap=True)


@friendly
def web(
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    sync: Annotated[bool, typer.Option(help="Make cases of new alerts in the store before starting.")] = True,
) -> None:
    """The case review web UI: alert queue, case view with evidence, reveal with a reason, and
    reports that need two people (proposed by one, approved by a second supervisor) before their
    goAML XML can be filed. Users come from `flagstone users add`. Everything is audited."""
    import uvicorn

    from flagstone.errors import StoreError
    from flagstone.oversight.sync import sync_alerts
    from flagstone.store import Store
    from flagstone.web import create_web_app

    ov = open_oversight(store, db, config)
    if sync:
        try:
            with Store(ov.store_path, read_only=True) as st:
                result = sync_alerts(ov, st)
            err.print(f"{result.cases:,} new cases from the store's alerts", highlight=False)
        except StoreError as exc:
            err.print(f"cases not synced ({exc}); showing the cases already in the database", highlight=False)
    err.print(f"case review on http://{host}:{port}", highlight=False)
    uvicorn.run(create_web_app(ov), host=host, port=port, log_level="warning")
