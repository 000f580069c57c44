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

from flagstone.audit.events import (
    AuthorisationFailed,
    LoggedIn,
    LoggedOut,
    LoginFailed,
    RoleGranted,
    RoleGrantRefused,
    RoleGrantRequested,
    UserChanged,
)
from flagstone.errors import InputError
from flagstone.oversight import grants
from flagstone.oversight.context import Oversight, utcnow
from flagstone.oversight.grants import Grant
from flagstone.oversight.roles import ROLES
from flagstone.oversight.schema import sessions, users
from flagstone.oversight.workflow import NotPermitted

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
) -> User | Grant:
    """Add a user; the :class:`User`, or for the supervisor and admin roles the pending
    :class:`~flagstone.oversight.grants.Grant` a second admin must approve first (see
    :mod:`flagstone.oversight.grants`: the bootstrap admin and single-admin mode take effect at once)."""
    _check_role(role)
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise InputError("a user name is 1-64 letters, digits, '.', '_' or '-'", field="username", value=username)
    _check_password(password)
    password_hash = _hasher.hash(password)
    with ov.engine.begin() as con:
        if con.execute(select(users.c.id).where(users.c.username == username)).first():
            raise InputError(f"user '{username}' already exists", field="username", value=username)
        how = _ask(ov, con, actor, username, role, team, grants.NEW_USER, display_name, password_hash)
        if isinstance(how, Grant):
            return how
        user = _insert(con, username, display_name or username, role, team, password_hash)
        ov.audit.record(actor, UserChanged(username, "created", role, team), con)
        _granted(ov, con, actor, username, role, team, grants.NEW_USER, how)
    return user


def _ask(
    ov: Oversight, con: Connection, actor: str, username: str, role: str, team: str, change: str,
    display_name: str | None = None, password_hash: str | None = None,
) -> Grant | str:  # fmt: skip
    """The pending grant, when ``role`` waits for a second admin; else how it takes effect at once
    ("" for roles below supervisor)."""
    single = ov.config.security.single_admin
    mode = grants.immediate(role, single_admin=single, had_admin=grants.had_admin(con), actor=actor)
    if mode is not None:
        return mode
    grant = grants.request(con, username=username, role=role, team=team, requested_by=actor, change=change,
                           display_name=display_name, password_hash=password_hash)  # fmt: skip
    ov.audit.record(actor, RoleGrantRequested(username, grant.id, role, team, change), con)
    return grant


def _granted(ov: Oversight, con: Connection, actor: str, username: str, role: str, team: str, change: str,
             mode: str) -> None:  # fmt: skip
    """Record a grant that took effect at once (bootstrap, single-admin mode), flagged with its mode."""
    if mode:
        grant = grants.request(con, username=username, role=role, team=team, requested_by=actor, change=change,
                               state=grants.GRANTED, mode=mode)  # fmt: skip
        ov.audit.record(actor, RoleGranted(username, grant.id, role, team, actor, mode), con)


def _insert(con: Connection, username: str, display_name: str, role: str, team: str, password_hash: str) -> User:
    new_id = con.execute(
        insert(users).values(
            username=username,
            display_name=display_name,
            role=role,
            team=team,
            password_hash=password_hash,
            failed_logins=0,
            active=True,
            created_at=utcnow(),
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return User(int(new_id), username, display_name, role, team)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InputError(f"unknown role '{role}' (expected one of: {', '.join(ROLES)})", field="role", value=role)


def set_role(ov: Oversight, actor: str, username: str, role: str) -> User | Grant:
    """Change a user's role: at once to a lesser role, through a pending grant to supervisor or
    admin (as :func:`create_user`)."""
    _check_role(role)
    with ov.engine.begin() as con:
        row = _require(con, username)
        if row.role == role:
            raise InputError(f"'{username}' is {role} already", field="role", value=role)
        change = f"role change from {row.role}"
        how = _ask(ov, con, actor, username, role, row.team, change)
        if isinstance(how, Grant):
            return how
        con.execute(update(users).where(users.c.id == row.id).values(role=role))
        ov.audit.record(actor, UserChanged(username, change, role, row.team), con)
        _granted(ov, con, actor, username, role, row.team, change, how)
    return User(row.id, username, row.display_name, role, row.team)


def approve_grant(ov: Oversight, approver: User, grant_id: int) -> User:
    """A second admin approves a pending grant: the user is created, or their role changed.

    The approver must be an active admin (as the database says now) and neither the person who
    asked nor the one who gets the role; a refusal is audited as an authorisation failure."""
    try:
        with ov.engine.begin() as con:
            row = grants.pending_for(con, grant_id)
            grant = grants.as_grant(row)
            me = _require(con, approver.username)
            grants.check_approver(grant, approver.username, me.role, bool(me.active))
            if grant.new_user:
                if con.execute(select(users.c.id).where(users.c.username == grant.username)).first():
                    raise InputError(f"user '{grant.username}' already exists", field="username", value=grant.username)
                user = _insert(con, grant.username, row.display_name or grant.username, grant.role, grant.team,
                               row.password_hash)  # fmt: skip
                change = "created"
            else:
                target = _require(con, grant.username)
                con.execute(update(users).where(users.c.id == target.id).values(role=grant.role))
                user = User(target.id, target.username, target.display_name, grant.role, target.team)
                change = grant.change
            grants.decide(con, grant_id, grants.GRANTED, approver.username, grants.SECOND_ADMIN)
            ov.audit.record(approver.username, UserChanged(grant.username, change, grant.role, grant.team), con)
            ov.audit.record(approver.username, RoleGranted(grant.username, grant_id, grant.role, grant.team,
                                                           grant.requested_by, grants.SECOND_ADMIN), con)  # fmt: skip
    except NotPermitted as exc:
        ov.audit.record(approver.username, AuthorisationFailed(f"role grant #{grant_id}", "approve", str(exc)))
        raise
    return user


def refuse_grant(ov: Oversight, actor: str, grant_id: int) -> Grant:
    """Refuse a pending grant (an admin), or withdraw it (whoever asked); refusing never adds a right."""
    with ov.engine.begin() as con:
        grant = grants.as_grant(grants.pending_for(con, grant_id))
        grants.decide(con, grant_id, grants.REFUSED, actor)
        ov.audit.record(actor, RoleGrantRefused(grant.username, grant_id, grant.role, grant.requested_by), con)
    return grant


def list_grants(ov: Oversight, *, pending_only: bool = True) -> list[dict[str, object]]:
    with ov.engine.connect() as con:
        return grants.listing(con, pending_only=pending_only)


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
    "Grant",
    "LoginError",
    "User",
    "approve_grant",
    "authenticate",
    "create_user",
    "end_session",
    "list_grants",
    "list_users",
    "new_password",
    "refuse_grant",
    "session_user",
    "set_active",
    "set_password",
    "set_role",
    "start_session",
    "unlock",
]
