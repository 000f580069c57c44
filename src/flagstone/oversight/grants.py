"""Who may give whom the supervisor or admin role: the policy, and the pending grants it keeps.

A supervisor reveals identities and approves reports, an admin makes supervisors; one person
holding two such accounts would pass four eyes alone. So granting either role (a new user with it,
or a role changed to it) is a request that a second admin approves; until then no account has the
role (a new user does not exist yet; their password hash waits in the request). Exceptions:

- **bootstrap**: on a case database that never had an admin, the command line may create the
  first admin directly (a fresh deployment has nobody to ask);
- **single-admin mode** (``security.single_admin: true``): every grant takes effect at once,
  recorded with that mode in the audit log, and every page of the case review says so.

Who is a person: an account, or for the command line the operating-system user who runs it
(``cli:NAME``; an account of the same name counts as the same person). Whoever holds a shell on
the deployment's machine holds the database and the keys too, so the check is aimed at people
who act through accounts; the audit log records every request, grant and refusal with both names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update

from flagstone.errors import InputError
from flagstone.oversight.roles import PRIVILEGED
from flagstone.oversight.schema import role_grants, users, utcnow
from flagstone.oversight.workflow import NotPermitted

PENDING, GRANTED, REFUSED = "pending", "granted", "refused"
SECOND_ADMIN, BOOTSTRAP, SINGLE_ADMIN = "second admin", "bootstrap", "single-admin mode"
CLI_PREFIX = "cli:"
NEW_USER = "new user"
_MAX_ID = 2**31 - 1


class NoSuchGrant(InputError):
    """No grant has this number."""


@dataclass(frozen=True)
class Grant:
    """A request for a role that needs a second admin."""

    id: int
    username: str
    role: str
    team: str
    requested_by: str
    state: str
    change: str  # NEW_USER, or "role change from <role>"

    @property
    def new_user(self) -> bool:
        return self.change == NEW_USER


def person(actor: str) -> str:
    """The person behind an actor: ``cli:ann`` (the OS user ann) is the same person as account ann."""
    return actor.removeprefix(CLI_PREFIX)


def immediate(role: str, *, single_admin: bool, had_admin: bool, actor: str) -> str | None:
    """How a grant of ``role`` asked for by ``actor`` takes effect at once, or None when it must wait
    for a second admin. Roles below supervisor need no grant ("")."""
    if role not in PRIVILEGED:
        return ""
    if single_admin:
        return SINGLE_ADMIN
    if role == "admin" and not had_admin and actor.startswith(CLI_PREFIX):
        return BOOTSTRAP
    return None


def check_approver(grant: Grant, approver: str, role: str, active: bool) -> None:
    """Raise :class:`NotPermitted` unless ``approver`` is an active admin who is neither the person who
    asked for the grant nor the person who would get it."""
    if role != "admin" or not active:
        raise NotPermitted("only an active admin may approve a role grant")
    if person(approver) == person(grant.requested_by):
        raise NotPermitted(f"grant #{grant.id} was asked for by {grant.requested_by}: a second admin must approve it")
    if person(approver) == grant.username:
        raise NotPermitted(f"grant #{grant.id} gives {grant.username} a role: they may not approve it themselves")


def had_admin(con: Connection) -> bool:
    """Whether the database has, or ever had, an admin. Only a database that never had one may
    bootstrap: an admin who demoted or disabled themselves (or every other admin) does not reopen it."""
    if con.execute(select(users.c.id).where(users.c.role == "admin").limit(1)).first():
        return True
    ever = select(role_grants.c.id).where(role_grants.c.role == "admin", role_grants.c.state == GRANTED).limit(1)
    return con.execute(ever).first() is not None


def request(
    con: Connection,
    *,
    username: str,
    role: str,
    team: str,
    requested_by: str,
    change: str,
    display_name: str | None = None,
    password_hash: str | None = None,
    state: str = PENDING,
    mode: str | None = None,
) -> Grant:
    """Record a grant (pending, or already granted with ``mode``); a pending new user's keeps the
    password hash until it is decided."""
    if con.execute(
        select(role_grants.c.id).where(role_grants.c.username == username, role_grants.c.state == PENDING)
    ).first():
        raise InputError(f"a role grant for '{username}' is already pending", field="username", value=username)
    now = utcnow()
    decided = {"decided_by": requested_by, "decided_at": now} if state != PENDING else {}
    new_id = con.execute(
        insert(role_grants).values(
            username=username,
            role=role,
            team=team,
            change=change,
            display_name=display_name,
            password_hash=password_hash if state == PENDING else None,
            requested_by=requested_by,
            requested_at=now,
            state=state,
            mode=mode,
            **decided,
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    return Grant(int(new_id), username, role, team, requested_by, state, change)


def pending_for(con: Connection, grant_id: int) -> Any:
    """The pending grant ``grant_id``, locked for its decision."""
    fits = 0 < grant_id <= _MAX_ID  # a number no database integer holds names no grant
    row = (
        con.execute(select(role_grants).where(role_grants.c.id == grant_id).with_for_update()).first() if fits else None
    )
    if row is None:
        raise NoSuchGrant(f"no role grant #{grant_id}", field="grant", value=grant_id)
    if row.state != PENDING:
        raise InputError(f"role grant #{grant_id} is {row.state} already", field="grant", value=grant_id)
    return row


def as_grant(row: Any) -> Grant:
    return Grant(row.id, row.username, row.role, row.team, row.requested_by, row.state, row.change)


def decide(con: Connection, grant_id: int, state: str, by: str, mode: str | None = None) -> None:
    """Close a pending grant; a new user's password hash leaves it (for the account, or for good)."""
    con.execute(
        update(role_grants)
        .where(role_grants.c.id == grant_id)
        .values(state=state, decided_by=by, decided_at=utcnow(), mode=mode, password_hash=None)
    )


def listing(con: Connection, *, pending_only: bool = True) -> list[dict[str, Any]]:
    """Grants, newest first, without password hashes."""
    query = select(role_grants).order_by(role_grants.c.id.desc())
    if pending_only:
        query = query.where(role_grants.c.state == PENDING)
    return [{k: v for k, v in r._mapping.items() if k != "password_hash"} for r in con.execute(query)]
