"""``flagstone users``: the people who review cases, their roles, and the grants of the supervisor
and admin roles that a second admin approves.

Every command here works on the case database (``--db``, ``$FLAGSTONE_DB``, or
``<store>.cases.sqlite`` beside the store) and writes what it does to the audit log.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flagstone.cli._common import ConfigOpt, DbOpt, StoreOpt, err, friendly, open_oversight, out
from flagstone.errors import InputError

if TYPE_CHECKING:  # the oversight stack is imported only when a command runs
    from flagstone.oversight.grants import Grant

users_app = typer.Typer(
    name="users", help="People who review cases, and their roles.", no_args_is_help=True, rich_markup_mode="markdown"
)


def _password(stdin: bool) -> tuple[str, bool]:
    """(password, generated?) from stdin, a prompt, or a fresh random one."""
    from flagstone.oversight.users import new_password

    if stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        return typer.prompt("password", hide_input=True, confirmation_prompt=True), False
    return new_password(), True


@users_app.command("add")
@friendly
def users_add(
    username: Annotated[str, typer.Argument(help="Log-in name.")],
    role: Annotated[str, typer.Option("--role", help="analyst, supervisor, auditor or admin.")],
    team: Annotated[str, typer.Option("--team", help="The team whose cases the user reviews.")] = "compliance",
    display_name: Annotated[str | None, typer.Option("--name", help="Full name, shown in the UI and reports.")] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Add a user. Analysts review their team's cases and propose reports; supervisors also reveal
    identities and approve others' reports; auditors read every case and the audit log; admins
    manage users. Without a terminal or --password-stdin, a random password is made and printed once.

    The supervisor and admin roles need a second admin: the user is then a pending grant (printed
    with its number) until an admin approves it (`flagstone users approve`, or the Users page), and
    no account exists before. Exceptions: the first admin of an empty case database, and
    single-admin mode (`security.single_admin` in the configuration), both flagged in the audit log."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import Grant, create_user

    password, generated = _password(password_stdin)
    ov = open_oversight(store, db, config)
    try:
        made = create_user(ov, cli_actor(), username, password, role, team, display_name)
    finally:
        ov.close()
    if isinstance(made, Grant):
        _pending(made)
    else:
        out.print(f"user {username} added ({role}, team {team})", highlight=False)
    if generated:
        err.print("password (shown only now):", highlight=False)
        print(password)


def _pending(grant: Grant) -> None:
    out.print(
        f"grant #{grant.id} pending: {grant.username} gets the role {grant.role} (team {grant.team}) once a "
        f"second admin approves it: `flagstone users approve {grant.id} --admin NAME`, or the Users page",
        highlight=False,
        soft_wrap=True,
    )


@users_app.command("list")
@friendly
def users_list(store: StoreOpt = None, db: DbOpt = None) -> None:
    """Users with their role, team and whether they are locked out or disabled."""
    from flagstone.oversight.users import list_users

    ov = open_oversight(store, db)
    try:
        rows = list_users(ov)
    finally:
        ov.close()
    table = Table("user", "name", "role", "team", "state")
    for u in rows:
        state = "disabled" if not u["active"] else "locked" if u["locked"] else "active"
        table.add_row(str(u["username"]), str(u["display_name"]), str(u["role"]), str(u["team"]), state)
    out.print(table)


@users_app.command("unlock")
@friendly
def users_unlock(username: Annotated[str, typer.Argument()], store: StoreOpt = None, db: DbOpt = None) -> None:
    """Lift a lock-out after too many failed log-ins."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import unlock

    ov = open_oversight(store, db)
    try:
        unlock(ov, cli_actor(), username)
    finally:
        ov.close()
    out.print(f"user {username} unlocked")


@users_app.command("disable")
@friendly
def users_disable(username: Annotated[str, typer.Argument()], store: StoreOpt = None, db: DbOpt = None) -> None:
    """Stop a user logging in (and end their sessions); their past actions stay in the log."""
    _set_active(username, store, db, False)


@users_app.command("enable")
@friendly
def users_enable(username: Annotated[str, typer.Argument()], store: StoreOpt = None, db: DbOpt = None) -> None:
    """Let a disabled user log in again."""
    _set_active(username, store, db, True)


def _set_active(username: str, store: Path | None, db: str | None, active: bool) -> None:
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import set_active

    ov = open_oversight(store, db)
    try:
        set_active(ov, cli_actor(), username, active)
    finally:
        ov.close()
    out.print(f"user {username} {'enabled' if active else 'disabled'}")


@users_app.command("password")
@friendly
def users_password(
    username: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    store: StoreOpt = None,
    db: DbOpt = None,
) -> None:
    """Set a user's password (prompted, read from stdin, or made at random and printed once).

    Every session of the user ends: whoever logged in with the old password is logged out."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import set_password

    password, generated = _password(password_stdin)
    ov = open_oversight(store, db)
    try:
        ended = set_password(ov, cli_actor(), username, password)
    finally:
        ov.close()
    out.print(f"password of {username} set; {ended} sessions ended")
    if generated:
        print(password)


@users_app.command("role")
@friendly
def users_role(
    username: Annotated[str, typer.Argument(help="The user whose role changes.")],
    role: Annotated[str, typer.Argument(help="The new role: analyst, supervisor, auditor or admin.")],
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Change a user's role. A lesser role takes effect at once; the supervisor and admin roles
    wait, as a pending grant, for a second admin's approval (`flagstone users approve`)."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import Grant, set_role

    ov = open_oversight(store, db, config)
    try:
        made = set_role(ov, cli_actor(), username, role)
    finally:
        ov.close()
    if isinstance(made, Grant):
        _pending(made)
    else:
        out.print(f"user {username} is now {role}", highlight=False)


@users_app.command("grants")
@friendly
def users_grants(
    store: StoreOpt = None,
    db: DbOpt = None,
    every: Annotated[bool, typer.Option("--all", help="Decided grants too, not only pending ones.")] = False,
) -> None:
    """Grants of the supervisor and admin roles: who asked for which role for whom, and who decided
    (pending ones only, unless --all)."""
    from flagstone.oversight.users import list_grants

    ov = open_oversight(store, db)
    try:
        rows = list_grants(ov, pending_only=not every)
    finally:
        ov.close()
    if not rows:
        out.print("no pending grants" if not every else "no grants", highlight=False)
    for g in rows:  # one line a grant, whole (a table would cut names at 80 columns)
        decided = f"; {g['state']} by {g['decided_by']}" if g["decided_by"] else f"; {g['state']}"
        how = f" ({g['mode']})" if g["mode"] else ""
        out.print(
            f"#{g['id']} {g['username']}: {g['role']}, team {g['team']} ({g['change']}); "
            f"asked by {g['requested_by']}{decided}{how}",
            highlight=False,
            soft_wrap=True,
        )


@users_app.command("approve")
@friendly
def users_approve(
    grant: Annotated[int, typer.Argument(help="The grant's number (`flagstone users grants`).")],
    admin: Annotated[str, typer.Option("--admin", help="The admin account that approves; its password is asked.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the admin's password from stdin.")
    ] = False,
    store: StoreOpt = None,
    db: DbOpt = None,
) -> None:
    """Approve a pending grant of the supervisor or admin role, as a second admin: an admin account
    (checked with its password, like a log-in) other than whoever asked for it and than the user
    who gets the role. Creates the user, or changes their role; audited as role_granted."""
    from flagstone.oversight.users import LoginError, approve_grant, authenticate
    from flagstone.oversight.workflow import NotPermitted

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt(f"password of {admin}", hide_input=True)
    ov = open_oversight(store, db)
    try:
        try:
            user = approve_grant(ov, authenticate(ov, admin, password), grant)
        except (LoginError, NotPermitted) as exc:
            raise InputError(str(exc), field="admin", value=admin) from exc
    finally:
        ov.close()
    out.print(f"grant #{grant} approved by {admin}: {user.username} is {user.role} (team {user.team})", highlight=False)


@users_app.command("refuse")
@friendly
def users_refuse(
    grant: Annotated[int, typer.Argument(help="The grant's number (`flagstone users grants`).")],
    store: StoreOpt = None,
    db: DbOpt = None,
) -> None:
    """Refuse (or withdraw) a pending grant of the supervisor or admin role. Refusing adds no right,
    so it needs no second admin; it is audited as role_grant_refused."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import refuse_grant

    ov = open_oversight(store, db)
    try:
        refused = refuse_grant(ov, cli_actor(), grant)
    finally:
        ov.close()
    out.print(f"grant #{grant} refused: {refused.username} does not get the role {refused.role}", highlight=False)
