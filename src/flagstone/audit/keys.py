"""Where the audit log's signing key comes from: the one place that decides whether Flagstone may
make one.

A key is made for a new log only, and never replaces anything:

- the log has no entry and no checkpoint, and
- neither the key nor its ``.pub`` nor its head file exists.

Then :func:`open_audit_log` makes it on first use (so ``make demo``, the tests and a first
``flagstone ingest`` need no extra step), unless ``$FLAGSTONE_AUDIT_KEY_FILE`` names the key's
file: a deployment that places the key itself makes it once, with ``flagstone audit init``
(:func:`create_audit_key`), so that a missing mount or a mistyped path is an error, not a new key.
The new key's first entry records it (``audit_key_created``).

In every other case a missing key is an error naming the file and what shows that a key existed,
because a new key would silently start a new history: the old ``.pub`` overwritten, a wiped log
verifying as "OK: 0 entries".
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, func, select

from flagstone.audit.events import AuditKeyCreated
from flagstone.audit.log import AuditLog
from flagstone.audit.signing import (
    AUDIT_KEY_ENV,
    Signer,
    audit_key_path,
    head_path,
    key_path_is_configured,
    public_key_path,
)
from flagstone.errors import AuditKeyError
from flagstone.oversight.schema import audit_checkpoints, audit_entries, audit_head

ACTOR = "system"


def open_audit_log(engine: Engine, store_path: str | Path) -> AuditLog:
    """The store's audit log with its key; the key is made only for a new log (see above)."""
    key = audit_key_path(store_path)
    if key.exists():
        return _existing(engine, key)
    if key_path_is_configured():
        raise AuditKeyError(
            f"no audit key here; ${AUDIT_KEY_ENV} names this file, so make the key once with "
            "`flagstone audit init` (or restore it from a backup)",
            path=key,
        )
    try:
        return create_audit_key(engine, store_path)
    except AuditKeyError:
        if key.exists():  # another process made it a moment ago
            return _existing(engine, key)
        raise


def create_audit_key(engine: Engine, store_path: str | Path) -> AuditLog:
    """Make the key of a new log (``flagstone audit init``); an error when the log or the key's
    files show that a key already existed.

    The key's files are made while holding the log's append lock, and its first entry commits in
    the same transaction, so no other process ever sees the key with an empty log.
    """
    key = audit_key_path(store_path)
    if key.exists():
        raise AuditKeyError("exists already; an audit key is never replaced", path=key)
    made: list[Path] = []
    try:
        with engine.begin() as con:
            con.execute(select(audit_head.c.size).where(audit_head.c.id == 1).with_for_update())
            if key.exists():  # made by another process while we waited for the lock
                raise _MadeMeanwhile
            problem = _not_new(con, key)
            if problem is not None:
                raise AuditKeyError(f"no audit key here, but {problem}", path=key)
            signer = Signer.create(key)
            made = [key, public_key_path(key)]
            log = AuditLog(engine, signer)
            log.record(ACTOR, AuditKeyCreated(signer.key_id, str(public_key_path(key))), con)
    except (_MadeMeanwhile, FileExistsError):
        return _existing(engine, key)
    except BaseException:
        for path in made:  # no key without its first entry
            path.unlink(missing_ok=True)
        raise
    log.sync_head()
    return log


class _MadeMeanwhile(Exception):
    pass


def _not_new(con: Connection, key: Path) -> str | None:
    """What shows that this log already had a key, or None for a new log."""
    entries = con.execute(select(func.count()).select_from(audit_entries)).scalar_one()
    newest = con.execute(
        select(audit_checkpoints.c.size, audit_checkpoints.c.key_id).order_by(audit_checkpoints.c.size.desc()).limit(1)
    ).first()
    if entries or newest is not None:
        signed = f", signed with key {newest.key_id}" if newest is not None else ""
        return (
            f"the audit log has {max(entries, newest.size if newest else 0):,} entries{signed}; restore that key "
            "from a backup (a new key cannot continue this log, and is never made in its place)"
        )
    for path, what in ((public_key_path(key), "the public half"), (head_path(key), "the last checkpoint")):
        if path.exists():
            return (
                f"{path} exists ({what} of a key this store had) while the log is empty: was the log wiped? "
                "Restore the key and the log from a backup; only if this store is really new, remove that file "
                "and run `flagstone audit init`"
            )
    return None


def _existing(engine: Engine, key: Path) -> AuditLog:
    """The log with the key at ``key``, which must be the key its newest checkpoint was signed with,
    and whose first entry the log must hold (a key is made with it, in one transaction)."""
    signer = Signer.load(key)
    with engine.begin() as con:  # under the append lock: a key being made elsewhere has committed
        con.execute(select(audit_head.c.size).where(audit_head.c.id == 1).with_for_update())
        newest = con.execute(
            select(audit_checkpoints.c.key_id).order_by(audit_checkpoints.c.size.desc()).limit(1)
        ).first()
        empty = newest is None and not con.execute(select(audit_entries.c.seq).limit(1)).first()
    if empty:
        raise AuditKeyError(
            "is the key of this store, but its audit log is empty (a key's first entry records its making): "
            "the log was wiped. Restore it from a backup; only if it was never written, remove the key and its "
            ".pub and run `flagstone audit init`",
            path=key,
        )
    if newest is not None and newest.key_id != signer.key_id:
        raise AuditKeyError(
            f"is key {signer.key_id}, but the audit log's newest checkpoint was signed with key {newest.key_id}: "
            "this is not the key of this log (restore the right one)",
            path=key,
        )
    return AuditLog(engine, signer)
