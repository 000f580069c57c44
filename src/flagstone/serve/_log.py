"""The service's append-only intake log (its reading side, into the store, is ``_absorb``).

A decision is answered only after the events it accepted are in the log and the log is on disk
(``fsync``), which takes a fraction of a millisecond where a DuckDB transaction takes several.
The log is a folder of segments; the writer starts a new one every second, and the absorber moves
each closed segment into the store. One line is one group commit, however large.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb

SUFFIX = ".jsonl"
# Failures of the machine or the store rather than of a segment's content: the segment stays on
# disk and is tried again, never set aside.
INTERNAL_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    MemoryError,
    duckdb.IOException,
    duckdb.FatalException,
    duckdb.InternalException,
    duckdb.OutOfMemoryException,
    duckdb.ConnectionException,
    duckdb.InterruptException,
    duckdb.TransactionException,
    duckdb.PermissionException,
)


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot log {type(value).__name__}")


def log_folder(store_path: Path) -> Path:
    return Path(f"{store_path}.intake")


def entry_line(entry: dict[str, Any]) -> bytes:
    """One group commit as a log line. The intake checked every value, so this cannot meet NaN or
    a lone surrogate; if it ever did, it raises here, before anything is written."""
    text = json.dumps(entry, default=_json, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8") + b"\n"


class IntakeLog:
    """Segments named by creation time, so that sorting by name is sorting by age."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.current: Path | None = None
        self._file: IO[bytes] | None = None
        self._opened = 0.0
        # Opening or closing a segment and listing the closed ones exclude each other: otherwise the
        # absorber could list a segment the writer has just opened, absorb it, and delete it while
        # the writer still appends to it (acknowledged entries would be lost).
        self._lock = threading.Lock()
        self.created: set[str] = set()  # segments this run wrote (their events were checked as new)

    def segments(self) -> list[Path]:
        return sorted(self.folder.glob(f"*{SUFFIX}"))

    def closed_segments(self) -> list[Path]:
        with self._lock:
            return [p for p in self.segments() if p != self.current]

    def append(self, line: bytes) -> None:
        """Write one entry (a line made by ``entry_line``) and wait until it is on disk."""
        if self._file is None:
            with self._lock:
                self.current = self.folder / f"{time.time_ns():020d}-{secrets.token_hex(3)}{SUFFIX}"
                self.created.add(self.current.name)
                self._file = self.current.open("ab")
                self._opened = time.monotonic()
        self._file.write(line)
        self._file.flush()
        os.fsync(self._file.fileno())

    def age(self) -> float:
        return time.monotonic() - self._opened if self._file is not None else 0.0

    def rotate(self) -> None:
        """Close the open segment (it becomes absorbable); the next append starts a new one."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
                self.current = None
