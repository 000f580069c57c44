"""API keys for the scoring service: shown once when created, only a hash kept at rest.

A key is ``fsk_<key id>_<secret>`` with a 256-bit random secret. The store keeps the SHA-256 of
the secret: for a secret that long a fast hash is as safe as a slow one (nobody can try 2^256
guesses), and the check runs on every request. Passwords, which people choose, are another matter
and are not used here.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from flagstone.errors import InputError

PREFIX = "fsk"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


def create_key(con: duckdb.DuckDBPyConnection, name: str) -> str:
    """A new key named ``name``; the returned text is the only copy of the secret."""
    if not name.strip():
        raise InputError("a key needs a name (who or what uses it)", field="--name", value=name)
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    con.execute(
        "INSERT INTO api_keys (key_id, name, secret_hash, created_at) VALUES (?, ?, ?, ?)",
        [key_id, name, _hash(secret), _now()],
    )
    return f"{PREFIX}_{key_id}_{secret}"


def list_keys(con: duckdb.DuckDBPyConnection) -> list[KeyInfo]:
    rows = con.execute("SELECT key_id, name, created_at, revoked_at FROM api_keys ORDER BY created_at").fetchall()
    return [KeyInfo(*row) for row in rows]


def revoke_key(con: duckdb.DuckDBPyConnection, key_id: str) -> None:
    rows = con.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL RETURNING key_id", [_now(), key_id]
    ).fetchall()
    if not rows:
        raise InputError("no active key with this id (see `flagstone keys list`)", field="key_id", value=key_id)


class KeyChecker:
    """Checks bearer tokens against the store. A good key is remembered for ``remember`` seconds,
    so a key revoked while the service runs is refused at most that long afterwards."""

    def __init__(self, con: duckdb.DuckDBPyConnection, remember: float = 5.0) -> None:
        self.cursor = con.cursor()  # its own cursor: the service's writer uses the connection
        self.lock = threading.Lock()  # requests are checked on several threads; a cursor serves one
        self.remember = remember
        self._good: dict[str, float] = {}

    def valid(self, token: str | None) -> bool:
        if not token:
            return False
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != PREFIX:
            return False
        _, key_id, secret = parts
        digest = _hash(secret)
        now = time.monotonic()
        if self._good.get(digest, 0.0) > now:
            return True
        with self.lock:
            rows = self.cursor.execute(
                "SELECT secret_hash FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", [key_id]
            ).fetchall()
        ok = bool(rows) and hmac.compare_digest(rows[0][0], digest)
        if ok:
            self._good[digest] = now + self.remember
        return ok
