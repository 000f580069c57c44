"""Users, passwords and sessions.

Passwords are hashed with Argon2id (memory-hard). Failed log-ins are limited per user name typed
and per client address (:mod:`flagstone.oversight.limits`). Every log-in attempt that gets past
the address limit verifies exactly one Argon2 hash, whether the name exists, is locked or not,
and a locked name answers the same whether a user has it or not: neither the answer nor the time
tells which names exist. A session is a random token in an HttpOnly cookie; only its SHA-256 is
stored, with the session's CSRF token beside it. A session ends after ``session_hours``, after
``idle_minutes`` without a request (each request records its time), and when its user's password
changes.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from flagstone.audit.events import (
    AuthorisationFailed,
    LoggedIn,
    LoggedOut,
    LoginFailed,
    LoginRateLimited,
    RoleGranted,
    RoleGrantRefused,
    RoleGrantRequested,
    UserChanged,
)
from flagstone.errors import InputError
from flagstone.oversight import grants, limits
from flagstone.oversight.context import Oversight
from flagstone.oversight.grants import Grant
from flagstone.oversight.roles import ROLES
from flagstone.oversight.schema import sessions, users, utcnow
from flagstone.oversight.workflow import NotPermitted

MIN_PASSWORD = 12
MAX_USERNAME = 64
MAX_TEXT = 200  # a display name or a team name
SHOWN = 200  # characters of a typed user name that error messages repeat
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
    plain = username.replace("_", "").replace(".", "").replace("-", "")
    if not username or len(username) > MAX_USERNAME or not plain.isalnum():
        message = f"a user name is 1-{MAX_USERNAME} letters, digits, '.', '_' or '-'"
        raise InputError(message, field="username", value=_shown(username))
    _check_text("team", team)
    if display_name is not None:
        _check_text("display_name", display_name)
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


def _check_text(field: str, value: str) -> None:
    """A team or display name: 1-200 printable characters (they are shown on every page)."""
    if not value.strip() or len(value) > MAX_TEXT or not value.isprintable():
        what = field.replace("_", " ")
        raise InputError(f"a {what} is 1-{MAX_TEXT} printable characters", field=field, value=_shown(value))


def set_password(ov: Oversight, actor: str, username: str, password: str) -> int:
    """Set a user's password (an admin, or the CLI); ends every session of theirs. Returns how many."""
    _check_password(password)
    with ov.engine.begin() as con:
        row = _require(con, username)
        ended = _replace_password(con, row.id, password)
        ov.audit.record(actor, UserChanged(username, f"password set; {ended} sessions ended"), con)
    return ended


def change_password(ov: Oversight, user: User, current: str, new: str, client: str | None = None) -> int:
    """A user changes their own password, giving the current one; ends every session of theirs
    (the caller starts a new one for the browser that asked). A wrong current password counts as a
    failed log-in of the name, and a locked name may not change it. Returns how many sessions ended."""
    _check_password(new)
    now = ov.clock()
    failure: LoginError | None = None
    with ov.engine.begin() as con:
        row = _require(con, user.username)
        lock = limits.locked_until(con, _name_limit(ov), user.username, now)
        right = _verify(row.password_hash, current)
        if lock is not None:
            failure = _refused(ov, con, _name_limit(ov), user.username, lock, now, client)
        elif not right:
            reason = _failure(ov, con, user.username, client, now, "wrong current password at a password change")
            ov.audit.record(user.username, LoginFailed(user.username, reason), con)
            failure = LoginError(WRONG_CURRENT)
        else:
            ended = _replace_password(con, row.id, new)
            ov.audit.record(user.username, UserChanged(user.username, f"password changed; {ended} sessions ended"), con)
    if failure is not None:  # raised after the commit: the count and the entry stay
        raise failure
    return ended


def _replace_password(con: Connection, user_id: int, password: str) -> int:
    con.execute(update(users).where(users.c.id == user_id).values(password_hash=_hasher.hash(password)))
    return con.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount


def unlock(ov: Oversight, actor: str, username: str) -> None:
    with ov.engine.begin() as con:
        _require(con, username)
        limits.clear(con, limits.NAME, username)
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
    now = ov.clock()
    with ov.engine.connect() as con:
        rows = con.execute(select(users).order_by(users.c.username)).all()
        state = limits.name_states(con, [r.username for r in rows], now)
    return [
        {
            "username": r.username,
            "display_name": r.display_name,
            "role": r.role,
            "team": r.team,
            "active": bool(r.active),
            "locked": state.get(r.username, (0, False))[1],
            "failed_logins": state.get(r.username, (0, False))[0],
        }
        for r in rows
    ]


WRONG = "wrong user name or password"
WRONG_CURRENT = "the current password is wrong"


class LoginThrottled(LoginError):
    """Refused by a log-in limit (answered 429); ``retry_after`` in seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _name_limit(ov: Oversight) -> limits.Limit:
    sec = ov.config.security
    return limits.Limit(limits.NAME, sec.lockout_attempts, sec.lockout_minutes)


def _address_limit(ov: Oversight) -> limits.Limit:
    sec = ov.config.security
    return limits.Limit(limits.ADDRESS, sec.address_lockout_attempts, sec.address_lockout_minutes)


def _shown(name: str) -> str:
    """A typed user name as an error message repeats it: cut to SHOWN characters (the length is
    kept). The audit log bounds what it keeps itself (flagstone.audit.bounded)."""
    return name if len(name) <= SHOWN else f"{name[:SHOWN]}… ({len(name):,} characters)"


def _refused(
    ov: Oversight, con: Connection, limit: limits.Limit, value: str, until: datetime, now: datetime,
    client: str | None = None,
) -> LoginThrottled:  # fmt: skip
    """Count an attempt refused by a lock, audit the lock's first refusal, and say when to retry.
    An attempt on a locked name is a failure of its ``client`` address too: hammering locked names
    costs hashing, so it must reach the address limit like any other failure."""
    first = limits.refuse(con, limit, value)
    if limit.kind == limits.NAME and client is not None:
        limits.fail(con, _address_limit(ov), client, now)
    minutes = math.ceil((until - now).total_seconds() / 60)
    if limit.kind == limits.ADDRESS:
        if first:
            event = LoginRateLimited(value, limit.attempts, limit.minutes, f"{until:%Y-%m-%d %H:%M:%S}")
            ov.audit.record(f"address:{value}", event, con)
        message = f"too many failed log-ins from this address; try again in {minutes} min"
    else:
        if first:
            reason = f"user name locked until {until:%Y-%m-%d %H:%M:%S}; refusals until then are counted, not audited"
            ov.audit.record(value, LoginFailed(value, reason), con)  # the log bounds what it keeps
        message = (
            f"too many failed log-ins for this user name: it is locked for {minutes} min; try later or ask an admin"
        )
    return LoginThrottled(message, max(math.ceil((until - now).total_seconds()), 1))


def _failure(ov: Oversight, con: Connection, name: str, client: str | None, now: datetime, reason: str) -> str:
    """Count a failure against the name and the address; the audit reason, with any lock it caused."""
    if limits.fail(con, _name_limit(ov), name, now) is not None:
        reason += f"; user name locked for {_name_limit(ov).minutes} min"
    if client is not None and limits.fail(con, _address_limit(ov), client, now) is not None:
        reason += f"; address locked for {_address_limit(ov).minutes} min"
    return reason


def check_address(ov: Oversight, client: str | None) -> None:
    """Refuse (LoginThrottled) a log-in from an address locked by its failures, before any work."""
    if client is None:
        return
    now = ov.clock()
    limit = _address_limit(ov)
    refusal = None
    with ov.engine.begin() as con:
        until = limits.locked_until(con, limit, client, now)
        if until is not None:
            refusal = _refused(ov, con, limit, client, until, now)
    if refusal is not None:
        raise refusal


def address_failed(ov: Oversight, client: str | None) -> None:
    """Count a failed log-in form (no CSRF token, say) against the client's address."""
    if client is not None:
        with ov.engine.begin() as con:
            limits.fail(con, _address_limit(ov), client, ov.clock())


def authenticate(ov: Oversight, username: str, password: str, client: str | None = None) -> User:
    """The user, if the password is right and neither the name nor the address is locked and the
    account is enabled. ``client`` is the address the attempt came from (None: not limited by
    address, as on the command line).

    Every attempt past the address check verifies one Argon2 hash: the user's, or a dummy one for
    an unknown name, also while the name is locked. A failure is committed (the counts, any lock,
    the audit entry) before it is raised.
    """
    check_address(ov, client)
    now = ov.clock()
    failure: LoginError | None = None
    with ov.engine.begin() as con:
        row = con.execute(select(users).where(users.c.username == username).with_for_update()).first()
        lock = limits.locked_until(con, _name_limit(ov), username, now)
        right = _verify(row.password_hash if row is not None else _DUMMY, password)
        if lock is not None:
            failure = _refused(ov, con, _name_limit(ov), username, lock, now, client)
        elif row is None or not right:
            reason = _failure(ov, con, username, client, now, "unknown user" if row is None else "wrong password")
            ov.audit.record(username, LoginFailed(username, reason), con)  # the log bounds what it keeps
            failure = LoginError(WRONG)
        elif not row.active:
            ov.audit.record(username, LoginFailed(username, "account disabled"), con)
            failure = LoginError("this account is disabled")
        else:
            limits.clear(con, limits.NAME, username)
            ov.audit.record(username, LoggedIn(username), con)
    if failure is not None or row is None:
        raise failure or LoginError(WRONG)
    return _user(row)


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    # A cookie can hold anything; its hash is what is looked up, whatever it holds.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def start_session(ov: Oversight, user: User) -> tuple[str, str]:
    """A new session for ``user``: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = ov.clock()
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
    """The user and CSRF token of a live session, or None (and the dead session is deleted).

    Each request records its time, so the idle period is exactly the time since the last one."""
    if not token:
        return None
    now = ov.clock()
    mine = sessions.c.token_hash == _digest(token)
    idle = timedelta(minutes=ov.config.security.idle_minutes)
    with ov.engine.begin() as con:
        row = con.execute(
            select(users, sessions.c.csrf_token, sessions.c.expires_at, sessions.c.last_seen)
            .join(sessions, sessions.c.user_id == users.c.id)
            .where(mine)
        ).first()
        if row is None:
            return None
        if row.expires_at <= now or now - row.last_seen >= idle or not row.active:
            con.execute(delete(sessions).where(mine))
            return None
        con.execute(update(sessions).where(mine).values(last_seen=now))
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
    "LoginThrottled",
    "User",
    "address_failed",
    "approve_grant",
    "authenticate",
    "change_password",
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
