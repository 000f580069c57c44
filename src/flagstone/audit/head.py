"""The head file: the newest checkpoint the audit key signed that is known to be committed, kept
beside the key (``<key>.head``), outside the database.

Without it, a log whose newest entries were deleted together with their checkpoints (or a log
wiped to nothing) is a complete, correctly signed log of its own, and verifies. With it,
``verify`` reports a log shorter than the head, or one whose entries up to the head differ.

It is written only with checkpoints already committed (after the append's own transaction, or,
for an append inside a caller's transaction, at the start of the next append, when the database
shows what committed), so a rolled-back action never leaves it ahead of the log. Before it moves
on, the log is checked against it; a log that contradicts it (shorter, or another root at its
size) is never written over: the file stays as the evidence, every later append logs a warning,
and ``flagstone audit verify`` fails until someone looks (see docs/oversight.md).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from sqlalchemy import Connection, select

from flagstone.audit.checkpoint import Checkpoint
from flagstone.oversight.schema import audit_checkpoints

logger = logging.getLogger(__name__)


class HeadUnreadable(Exception):
    pass


def read_head(path: Path) -> Checkpoint | None:
    """The checkpoint in the head file, None when there is none; HeadUnreadable when it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HeadUnreadable(str(exc)) from exc
    if not text.strip():  # cut short by a crash (or emptied, which is no more than deleting it)
        return None
    try:
        return Checkpoint.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise HeadUnreadable(f"not a checkpoint: {exc}") from exc


def write_head(path: Path, cp: Checkpoint) -> None:
    """Replace the head file atomically, owner-only.

    Not fsynced (that would cost more than the append itself): after a power cut the file may be
    a checkpoint behind, or empty, which counts as no head file, never as a contradiction.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cp.to_json() + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("audit head file %s not written: %s", path, exc)
        tmp.unlink(missing_ok=True)


def contradiction(con: Connection, path: Path, size: int) -> tuple[str | None, Checkpoint | None]:
    """Why the log (``size`` committed entries) contradicts the head file (None when it extends
    it), and the file's checkpoint."""
    try:
        head = read_head(path)
    except HeadUnreadable as exc:
        return f"the audit head file {path} cannot be read ({exc})", None
    if head is None:
        return None, None
    name = f"the last checkpoint in {path}"
    if head.size > size:
        return f"log truncated: {name} covers {head.size} entries, only {size} are present", head
    root = con.execute(select(audit_checkpoints.c.root).where(audit_checkpoints.c.size == head.size)).scalar()
    if root != head.root:
        return f"the first {head.size} entries differ from those {name} signed", head
    return None, head


def advance(con: Connection, path: Path, size: int, write: bool = True) -> bool:
    """Check that the log of ``size`` committed entries extends the head file, and (``write``) move
    the file on to its checkpoint. False, with a warning, when the log contradicts the file."""
    problem, head = contradiction(con, path, size)
    if problem is not None:
        logger.warning("%s; the head file is kept as it is (run `flagstone audit verify`)", problem)
        return False
    if write and size > (head.size if head else 0):
        row = con.execute(select(audit_checkpoints).where(audit_checkpoints.c.size == size)).first()
        if row is not None:
            write_head(path, Checkpoint(row.size, row.root, row.ts, row.key_id, row.signature))
    return True
