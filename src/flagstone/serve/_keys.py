"""API keys for the scoring service: shown once when created, only a hash kept at rest.

A key is ``fsk_<key id>_<secret>`` with a 256-bit random secret. The keys live in a small JSON file
beside the store (``<store>.keys``, mode 0600), not in the store, because a running service holds
the store's lock: keys can be made and revoked while it runs, and it sees the change within a
second. The file keeps the SHA-256 of each secret: for a secret that long a fast hash is as safe as
a slow one (nobody can try 2^256 guesses), and the check runs on every request. Passwords, which
people choose, would need a slow hash; there are none here.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flagstone.errors import InputError
from flagstone.store import resolve_store_path

PREFIX = "fsk"


def key_file(store_path: str | Path | None) -> Path:
    return Path(f"{resolve_store_path(store_path)}.keys")


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"cannot read the API key file: {exc}", path=path) from exc
    return data if isinstance(data, dict) else {}


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """Read, change and atomically replace the file, one writer at a time (a lock file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        keys = _read(path)
        yield keys
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(keys, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    created_at: str
    revoked_at: str | None


def create_key(store_path: str | Path | None, name: str) -> str:
    """A new key named ``name``; the returned text is the only copy of the secret."""
    if not name.strip():
        raise InputError("a key needs a name (who or what uses it)", field="--name", value=name)
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    with _editing(key_file(store_path)) as keys:
        keys[key_id] = {"name": name, "secret_sha256": _hash(secret), "created_at": _now(), "revoked_at": None}
    return f"{PREFIX}_{key_id}_{secret}"


def list_keys(store_path: str | Path | None) -> list[KeyInfo]:
    keys = _read(key_file(store_path))
    return [KeyInfo(k, v["name"], v["created_at"], v.get("revoked_at")) for k, v in keys.items()]


def revoke_key(store_path: str | Path | None, key_id: str) -> None:
    with _editing(key_file(store_path)) as keys:
        if key_id not in keys or keys[key_id].get("revoked_at"):
            raise InputError("no active key with this id (see `flagstone keys list`)", field="key_id", value=key_id)
        keys[key_id]["revoked_at"] = _now()


class KeyChecker:
    """Checks bearer tokens against the key file, re-read when it changes (looked at once a second)."""

    def __init__(self, store_path: str | Path | None) -> None:
        self.path = key_file(store_path)
        self.lock = threading.Lock()  # requests are checked on several threads
        self._keys: dict[str, dict[str, Any]] = {}
        self._stamp: tuple[int, int] | None = None
        self._looked = 0.0

    def _current(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            now = time.monotonic()
            if now - self._looked > 1.0:
                self._looked = now
                try:
                    st = self.path.stat()
                    stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_ino)
                except FileNotFoundError:
                    stamp = None
                if stamp != self._stamp:
                    self._keys = _read(self.path) if stamp else {}
                    self._stamp = stamp
            return self._keys

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return False
        _, key_id, secret = parts
        entry = self._current().get(key_id)
        if entry is None or entry.get("revoked_at"):
            return False
        return hmac.compare_digest(entry["secret_sha256"], _hash(secret))
