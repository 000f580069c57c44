"""Users, passwords and sessions.

Passwords are hashed with Argon2id (memory-hard). After ``lockout_attempts`` wrong passwords in a
row an account is locked for ``lockout_minutes``; unknown names cost the same hashing time as
known ones, so timing does not tell which names exist. A session is a random token in an HttpOnly
cookie; only its SHA-256 is stored, with the session's CSRF token beside it. A session ends after
``session_hours``, or after ``idle_minutes`` without a request.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from flagstone.audit.events import LoggedIn, LoggedOut, LoginFailed, UserChanged
from flagstone.errors import InputError
from flagstone.oversight.context import Oversight, utcnow
from flagstone.oversight.roles import ROLES
from flagstone.oversight.schema import sessions, users

MIN_PASSWORD = 12
_TOUCH_EVERY = timedelta(minutes=1)
_hasher = PasswordHasher()  # Argon2id, RFC 9106's second recommended parameter set (64 MiB, t=3)
_DUMMY = _hasher.hash("not a real password, for equal timing")


@dataclass(frozen=True)
class User:
    id: int
    username: str
    display_name: str
    role: str
    team: str


class LoginError(Exception):
    """Wrong name or password, or a locked account; the message is safe to show."""


def _user(row: object) -> User:
    return User(row.id, row.username, row.display_name, row.role, row.team)  # type: ignore[attr-defined]


def create_user(
    ov: Oversight, actor: str, username: str, password: str, role: str, team: str, display_name: str | None = None
) -> User:
    if role not in ROLES:
        raise InputError(f"unknown role '{role}' (expected one of: {', '.join(ROLES)})", field="role", value=role)
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise InputError("a user name is 1-64 letters, digits, '.', '_' or '-'", field="username", value=username)
    _check_password(password)
    with ov.engine.begin() as con:
        if con.execute(select(users.c.id).where(users.c.username == username)).first():
            raise InputError(f"user '{username}' already exists", field="username", value=username)
        new_id = con.execute(
            insert(users).values(
                username=username,
                display_name=display_name or username,
                role=role,
                team=team,
                password_hash=_hasher.hash(password),
                failed_logins=0,
                active=True,
                created_at=utcnow(),
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        ov.audit.record(actor, UserChanged(username, "created", role, team), con)
    return User(int(new_id), username, display_name or username, role, team)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters", field="password")


def set_password(ov: Oversight, actor: str, username: str, password: str) -> None:
    _check_password(password)
    with ov.engine.begin() as con:
        _require(con, username)
        con.execute(update(users).where(users.c.username == username).values(password_hash=_hasher.hash(password)))
        ov.audit.record(actor, UserChanged(username, "password set"), con)


def unlock(ov: Oversight, actor: str, username: str) -> None:
    with ov.engine.begin() as con:
        _require(con, username)
        con.execute(update(users).where(users.c.username == username).values(failed_logins=0, locked_until=None))
        ov.audit.record(actor, UserChanged(username, "unlocked"), con)


def set_active(ov: Oversight, actor: str, username: str, active: bool) -> None:
    with ov.engine.begin() as con:
        row = _require(con, username)
        con.execute(update(users).where(users.c.username == username).values(active=active))
        if not active:
            con.execute(delete(sessions).where(sessions.c.user_id == row.id))
        ov.audit.record(actor, UserChanged(username, "enabled" if active else "disabled"), con)


def _require(con: Connection, username: str) -> Any:
    row = con.execute(select(users).where(users.c.username == username)).first()
    if row is None:
        raise InputError(f"no such user '{username}'", field="username", value=username)
    return row


def list_users(ov: Oversight) -> list[dict[str, object]]:
    with ov.engine.connect() as con:
        rows = con.execute(select(users).order_by(users.c.username)).all()
    now = utcnow()
    return [
        {
            "username": r.username,
            "display_name": r.display_name,
            "role": r.role,
            "team": r.team,
            "active": bool(r.active),
            "locked": r.locked_until is not None and r.locked_until > now,
            "failed_logins": r.failed_logins,
        }
        for r in rows
    ]


def authenticate(ov: Oversight, username: str, password: str) -> User:
    """The user, if the password is right and the account neither locked nor disabled.

    A failure is committed (the count, the lock, the audit entry) before it is raised.
    """
    sec = ov.config.security
    now = utcnow()
    failure: str | None = None
    with ov.engine.begin() as con:
        row = con.execute(select(users).where(users.c.username == username).with_for_update()).first()
        if row is None:
            _verify(_DUMMY, password)
            ov.audit.record(username, LoginFailed(username, "unknown user"), con)
            failure = "wrong user name or password"
        elif row.locked_until is not None and row.locked_until > now:
            ov.audit.record(username, LoginFailed(username, "account locked"), con)
            failure = "this account is locked after too many failed log-ins; try later or ask an admin"
        elif not _verify(row.password_hash, password):
            failures = row.failed_logins + 1
            locked = now + timedelta(minutes=sec.lockout_minutes) if failures >= sec.lockout_attempts else None
            con.execute(
                update(users)
                .where(users.c.id == row.id)
                .values(failed_logins=0 if locked else failures, locked_until=locked)
            )
            reason = "wrong password" + (f"; locked for {sec.lockout_minutes} min" if locked else "")
            ov.audit.record(username, LoginFailed(username, reason), con)
            failure = "wrong user name or password"
        elif not row.active:
            ov.audit.record(username, LoginFailed(username, "account disabled"), con)
            failure = "this account is disabled"
        else:
            con.execute(update(users).where(users.c.id == row.id).values(failed_logins=0, locked_until=None))
            ov.audit.record(username, LoggedIn(username), con)
    if failure is not None or row is None:
        raise LoginError(failure or "wrong user name or password")
    return _user(row)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def start_session(ov: Oversight, user: User) -> tuple[str, str]:
    """A new session for ``user``: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    with ov.engine.begin() as con:
        con.execute(delete(sessions).where(sessions.c.expires_at < now))
        con.execute(
            insert(sessions).values(
                token_hash=_digest(token),
                user_id=user.id,
                csrf_token=csrf,
                created_at=now,
                last_seen=now,
                expires_at=now + timedelta(hours=ov.config.security.session_hours),
            )
        )
    return token, csrf


def session_user(ov: Oversight, token: str | None) -> tuple[User, str] | None:
    """The user and CSRF token of a live session, or None."""
    if not token:
        return None
    with ov.engine.connect() as con:
        row = con.execute(
            select(users, sessions.c.csrf_token, sessions.c.expires_at, sessions.c.last_seen)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(sessions.c.token_hash == _digest(token))
        ).first()
    now = utcnow()
    idle = timedelta(minutes=ov.config.security.idle_minutes)
    if row is None or row.expires_at < now or row.last_seen + idle < now or not row.active:
        return None
    if now - row.last_seen > _TOUCH_EVERY:  # a write a minute at most, not one per request
        with ov.engine.begin() as con:
            con.execute(update(sessions).where(sessions.c.token_hash == _digest(token)).values(last_seen=now))
    return _user(row), row.csrf_token


def end_session(ov: Oversight, token: str, user: User) -> None:
    with ov.engine.begin() as con:
        con.execute(delete(sessions).where(sessions.c.token_hash == _digest(token)))
        ov.audit.record(user.username, LoggedOut(user.username), con)


def new_password() -> str:
    return secrets.token_urlsafe(18)


__all__ = [
    "LoginError",
    "User",
    "authenticate",
    "create_user",
    "end_session",
    "list_users",
    "new_password",
    "session_user",
    "set_active",
    "set_password",
    "start_session",
    "unlock",
]
