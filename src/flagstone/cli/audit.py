"""``flagstone audit``: make the audit log's key, verify the log, save a checkpoint of it, read it.

Reading and verifying need only the case database (``--db``, ``$FLAGSTONE_DB``, or
``<store>.cases.sqlite`` beside the store) and the public key; the check itself is audited when
the signing key is here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from flagstone.cli._common import DbOpt, StoreOpt, err, friendly, open_oversight, out
from flagstone.errors import InputError, printable, printable_json

if TYPE_CHECKING:  # the oversight stack is imported only when a command runs
    from sqlalchemy import Engine

audit_app = typer.Typer(
    name="audit", help="Check and read the tamper-evident audit log.", no_args_is_help=True, rich_markup_mode="markdown"
)


def _open_log_db(store: Path | None, db: str | None) -> tuple[Path, Engine]:
    """The store path and the case database, for reading the audit log: no signing key needed, so
    an older database is not upgraded here (that would go unaudited) but refused, naming the fix."""
    from flagstone.oversight.database import open_database, resolve_db_url
    from flagstone.store import resolve_store_path

    store_path = resolve_store_path(store)
    return store_path, open_database(resolve_db_url(db, store_path), upgrade_allowed=False)


@audit_app.command("init")
@friendly
def audit_init(store: StoreOpt = None, db: DbOpt = None) -> None:
    """Make the audit log's signing key, for a new store.

    Flagstone makes it by itself on first use when the key lives in the default place
    (<store>.audit-key); with $FLAGSTONE_AUDIT_KEY_FILE, run this once. Refused when a key, its .pub
    or its head file exists, or the log has entries: an audit key is never replaced.
    """
    from flagstone.audit import create_audit_key, head_path, public_key_path

    store_path, engine = _open_log_db(store, db)
    try:
        log = create_audit_key(engine, store_path)
    finally:
        engine.dispose()
    assert log.signer.path is not None
    out.print(f"audit key {log.signer.key_id} made: {log.signer.path} (keep it secret, and a copy safe)", markup=False)
    out.print(f"public key:  {public_key_path(log.signer.path)} (give it to whoever verifies the log)", markup=False)
    out.print(f"head file:   {head_path(log.signer.path)}", markup=False)


@audit_app.command("verify")
@friendly
def audit_verify(
    store: StoreOpt = None,
    db: DbOpt = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The audit key's public half. Default: <store>.audit-key.pub."),
    ] = None,
    witness: Annotated[
        Path | None,
        typer.Option("--witness", help="A checkpoint saved earlier by `flagstone audit checkpoint`, kept elsewhere."),
    ] = None,
) -> None:
    """Check every audit entry against its hash and the Merkle tree, and every checkpoint's signature.

    Exits 0 when the whole log verifies. Otherwise prints what is wrong, starting with the first bad
    entry (its number, time, actor and action), and exits 1. The log must also hold what the last
    checkpoint in the key's head file (<key>.head) signed, and with --witness what that checkpoint
    signed: a log cut short or wiped, with its checkpoints, cannot pass. Needs only the public key;
    the check is then audited when the signing key is here.
    """
    from flagstone.audit import Checkpoint, audit_key_path, head_path, load_public_key, public_key_path, verify
    from flagstone.audit.events import AuditVerified
    from flagstone.errors import AuditKeyError
    from flagstone.oversight.context import cli_actor

    store_path, engine = _open_log_db(store, db)
    try:
        key = audit_key_path(store_path)
        w = None
        if witness is not None:
            try:
                w = Checkpoint.from_json(witness.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError) as exc:
                raise InputError(
                    f"not a checkpoint saved by `flagstone audit checkpoint`: {exc}", path=witness
                ) from exc
        public = load_public_key(public_key or public_key_path(key))
        result = verify(engine, public, witness=w, head_file=head_path(key))
    finally:
        engine.dispose()
    if result.ok:
        out.print(f"audit log OK: {result.entries:,} entries, {result.checkpoints:,} signed checkpoints verified")
    else:
        err.print(f"[bold red]audit log FAILED[/] after {result.entries:,} good entries", markup=True, highlight=False)
    for p in result.problems:
        err.print(f"  {printable(p)}", markup=False, highlight=False, soft_wrap=True)
    if result.first_bad:
        first = printable_json(json.dumps(result.first_bad, ensure_ascii=False))
        err.print(f"  first bad entry: {first}", markup=False, highlight=False, soft_wrap=True)
    for note in result.notes:
        err.print(f"  note: {printable(note)}", markup=False, highlight=False, soft_wrap=True)
    # The check itself is an audited action (appended after it, so it never checks itself).
    try:
        ov = open_oversight(store, db)
    except AuditKeyError as exc:
        err.print(f"  not audited: {printable(str(exc))}", markup=False, highlight=False, soft_wrap=True)
    else:
        try:
            ov.audit.record(cli_actor(), AuditVerified(result.entries, result.ok, tuple(result.problems)))
        finally:
            ov.close()
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
@friendly
def audit_checkpoint(
    store: StoreOpt = None,
    db: DbOpt = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout).")] = None,
) -> None:
    """Print the newest signed checkpoint (tree size, root, time, signature) as JSON.

    Keep it somewhere the log's administrators cannot write (a ticket, an e-mail to the auditor,
    a regulator's portal); `flagstone audit verify --witness FILE` later proves the log was only
    appended to since.
    """
    from flagstone.audit import latest_checkpoint

    _, engine = _open_log_db(store, db)
    try:
        cp = latest_checkpoint(engine)
    finally:
        engine.dispose()
    if cp is None:
        raise InputError("the audit log is empty: nothing to checkpoint yet")
    text = cp.to_json()
    if out_path is None:
        print(text)
    else:
        out_path.write_text(text + "\n", encoding="utf-8")
        err.print(f"checkpoint of {cp.size:,} entries written to {printable(str(out_path))}", markup=False)


@audit_app.command("log")
@friendly
def audit_log(
    store: StoreOpt = None,
    db: DbOpt = None,
    action: Annotated[str | None, typer.Option(help="Only entries of this action, e.g. identity_revealed.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest entries.")] = 50,
) -> None:
    """Print the newest audit entries as JSON lines (sequence number, time, actor, action, target, details).

    Control characters in them (e.g. from a user name typed at the log-in) are written as JSON escapes.
    """
    from sqlalchemy import select

    from flagstone.oversight.schema import audit_entries

    _, engine = _open_log_db(store, db)
    try:
        query = select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(limit)
        if action:
            query = query.where(audit_entries.c.action == action)
        with engine.connect() as con:
            rows = list(con.execute(query))
    finally:
        engine.dispose()
    for r in reversed(rows):
        entry = {k: r._mapping[k] for k in ("seq", "ts", "actor", "action", "target")}
        entry["details"] = json.loads(r.details)
        print(printable_json(json.dumps(entry, ensure_ascii=False)))
