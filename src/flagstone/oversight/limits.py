"""Limits on failed log-ins: per user name typed and per client address, by one rule.

``attempts`` failures within ``minutes`` of the first lock the key for ``minutes``. A name is
counted whether or not a user has it, so that a lock answers alike for real and unknown names
and tells nobody which names exist. The state is a row of ``login_limits`` keyed by a hash of the
kind and the value; it goes once its window and its lock are over, so the table holds only what
the last ``minutes`` brought.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flagstone.oversight.schema import limit_key, login_limits

NAME, ADDRESS = "name", "address"


@dataclass(frozen=True)
class Limit:
    kind: str
    attempts: int
    minutes: int

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.minutes)


def locked_until(con: Connection, limit: Limit, value: str, now: datetime) -> datetime | None:
    """The end of the key's lock, if it is locked at ``now``."""
    until = con.execute(
        select(login_limits.c.locked_until).where(login_limits.c.key == limit_key(limit.kind, value))
    ).scalar()
    return until if until is not None and until > now else None


def refuse(con: Connection, limit: Limit, value: str) -> bool:
    """Count an attempt refused while the key is locked; True for the lock's first refusal (the
    one to audit: the rest add nothing to it but their number)."""
    key = limit_key(limit.kind, value)
    refused = con.execute(
        select(login_limits.c.refused).where(login_limits.c.key == key).with_for_update()
    ).scalar_one()
    con.execute(update(login_limits).where(login_limits.c.key == key).values(refused=refused + 1))
    return bool(refused == 0)


def fail(con: Connection, limit: Limit, value: str, now: datetime) -> datetime | None:
    """Count a failure; the end of the lock when this one locks the key."""
    con.execute(delete(login_limits).where(login_limits.c.expires_at < now))
    key = limit_key(limit.kind, value)
    _ensure(con, key, now, limit.window)
    row = con.execute(select(login_limits).where(login_limits.c.key == key).with_for_update()).one()
    start, failures = (row.window_start, row.failures) if now < row.window_start + limit.window else (now, 0)
    failures += 1
    if failures >= limit.attempts:
        until = now + limit.window
        values: dict[str, Any] = {"failures": 0, "window_start": now, "locked_until": until, "refused": 0}
        values["expires_at"] = until
    else:
        until = None
        values = {"failures": failures, "window_start": start, "locked_until": None, "expires_at": start + limit.window}
    con.execute(update(login_limits).where(login_limits.c.key == key).values(**values))
    return until


def clear(con: Connection, kind: str, value: str) -> None:
    con.execute(delete(login_limits).where(login_limits.c.key == limit_key(kind, value)))


def name_states(con: Connection, names: list[str], now: datetime) -> dict[str, tuple[int, bool]]:
    """(failures in the current window, locked?) of these user names, for the users list."""
    keys = {limit_key(NAME, n): n for n in names}
    rows = con.execute(select(login_limits).where(login_limits.c.key.in_(list(keys)))).all()
    return {
        keys[r.key]: (r.failures if r.expires_at > now else 0, r.locked_until is not None and r.locked_until > now)
        for r in rows
    }


def _ensure(con: Connection, key: str, now: datetime, window: timedelta) -> None:
    """The key's row, made if missing; two log-ins failing at once both find it afterwards."""
    make = pg_insert if con.dialect.name == "postgresql" else sqlite_insert
    fresh = {"key": key, "failures": 0, "window_start": now, "refused": 0, "expires_at": now + window}
    con.execute(make(login_limits).values(**fresh).on_conflict_do_nothing(index_elements=["key"]))
