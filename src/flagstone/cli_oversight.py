"""Oversight on the command line: ``audit``, ``users``, ``cases``, ``retention`` and ``web``.

Every command here works on the case database (``--db``, ``$FLAGSTONE_DB``, or
``<store>.cases.sqlite`` beside the store) and writes what it does to the audit log.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flagstone.cli_options import StoreOpt
from flagstone.errors import InputError, printable, printable_json

if TYPE_CHECKING:  # the oversight stack is imported only when a command runs
    from sqlalchemy import Engine

    from flagstone.oversight.context import Oversight
    from flagstone.oversight.grants import Grant

err = Console(stderr=True, markup=False)  # names and values from files and users are never markup
out = Console(markup=False)

audit_app = typer.Typer(
    name="audit", help="Check and read the tamper-evident audit log.", no_args_is_help=True, rich_markup_mode="markdown"
)
users_app = typer.Typer(
    name="users", help="People who review cases, and their roles.", no_args_is_help=True, rich_markup_mode="markdown"
)
cases_app = typer.Typer(
    name="cases", help="Cases made from alerts, for review.", no_args_is_help=True, rich_markup_mode="markdown"
)
retention_app = typer.Typer(
    name="retention", help="Delete data past its retention period.", no_args_is_help=True, rich_markup_mode="markdown"
)

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Case database URL, e.g. postgresql+psycopg://user:pw@host/db. "
        "Default: $FLAGSTONE_DB, else sqlite beside the store (<store>.cases.sqlite).",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="Deployment configuration YAML. Default: $FLAGSTONE_CONFIG, else ./flagstone.yaml."),
]


def _open(store: Path | None, db: str | None, config: Path | None = None) -> Oversight:
    from flagstone.oversight.context import Oversight

    return Oversight.open(store, db, config)


# -- audit --------------------------------------------------------------------------------------


def _open_log_db(store: Path | None, db: str | None) -> tuple[Path, Engine]:
    """The store path and the case database, for reading the audit log: no signing key needed."""
    from flagstone.oversight.database import open_database, resolve_db_url
    from flagstone.store import resolve_store_path

    store_path = resolve_store_path(store)
    return store_path, open_database(resolve_db_url(db, store_path))


def audit_init(store: StoreOpt = None, db: DbOpt = None) -> None:
    """Make the audit log's signing key, for a new store.

    Flagstone makes it by itself on first use when the key lives in the default place
    (<store>.audit-key); with $FLAGSTONE_AUDIT_KEY_FILE, run this once. Refused when a key, its .pub
    or its head file exists, or the log has entries: an audit key is never replaced.
    """
    from flagstone.audit import create_audit_key, head_path, public_key_path

    store_path, engine = _open_log_db(store, db)
    try:
        log = create_audit_key(engine, store_path)
    finally:
        engine.dispose()
    assert log.signer.path is not None
    out.print(f"audit key {log.signer.key_id} made: {log.signer.path} (keep it secret, and a copy safe)", markup=False)
    out.print(f"public key:  {public_key_path(log.signer.path)} (give it to whoever verifies the log)", markup=False)
    out.print(f"head file:   {head_path(log.signer.path)}", markup=False)


def audit_verify(
    store: StoreOpt = None,
    db: DbOpt = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The audit key's public half. Default: <store>.audit-key.pub."),
    ] = None,
    witness: Annotated[
        Path | None,
        typer.Option("--witness", help="A checkpoint saved earlier by `flagstone audit checkpoint`, kept elsewhere."),
    ] = None,
) -> None:
    """Check every audit entry against its hash and the Merkle tree, and every checkpoint's signature.

    Exits 0 when the whole log verifies. Otherwise prints what is wrong, starting with the first bad
    entry (its number, time, actor and action), and exits 1. The log must also hold what the last
    checkpoint in the key's head file (<key>.head) signed, and with --witness what that checkpoint
    signed: a log cut short or wiped, with its checkpoints, cannot pass. Needs only the public key;
    the check is then audited when the signing key is here.
    """
    from flagstone.audit import Checkpoint, audit_key_path, head_path, load_public_key, public_key_path, verify
    from flagstone.audit.events import AuditVerified
    from flagstone.errors import AuditKeyError
    from flagstone.oversight.context import cli_actor

    store_path, engine = _open_log_db(store, db)
    try:
        key = audit_key_path(store_path)
        w = None
        if witness is not None:
            try:
                w = Checkpoint.from_json(witness.read_text(encoding="utf-8"))
            except (OSError, ValueError, KeyError) as exc:
                raise InputError(
                    f"not a checkpoint saved by `flagstone audit checkpoint`: {exc}", path=witness
                ) from exc
        public = load_public_key(public_key or public_key_path(key))
        result = verify(engine, public, witness=w, head_file=head_path(key))
    finally:
        engine.dispose()
    if result.ok:
        out.print(f"audit log OK: {result.entries:,} entries, {result.checkpoints:,} signed checkpoints verified")
    else:
        err.print(f"[bold red]audit log FAILED[/] after {result.entries:,} good entries", markup=True, highlight=False)
    for p in result.problems:
        err.print(f"  {printable(p)}", markup=False, highlight=False, soft_wrap=True)
    if result.first_bad:
        first = printable_json(json.dumps(result.first_bad, ensure_ascii=False))
        err.print(f"  first bad entry: {first}", markup=False, highlight=False, soft_wrap=True)
    for note in result.notes:
        err.print(f"  note: {printable(note)}", markup=False, highlight=False, soft_wrap=True)
    # The check itself is an audited action (appended after it, so it never checks itself).
    try:
        ov = _open(store, db)
    except AuditKeyError as exc:
        err.print(f"  not audited: {printable(str(exc))}", markup=False, highlight=False, soft_wrap=True)
    else:
        try:
            ov.audit.record(cli_actor(), AuditVerified(result.entries, result.ok, tuple(result.problems)))
        finally:
            ov.close()
    if not result.ok:
        raise typer.Exit(1)


def audit_checkpoint(
    store: StoreOpt = None,
    db: DbOpt = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="File to write (default: stdout).")] = None,
) -> None:
    """Print the newest signed checkpoint (tree size, root, time, signature) as JSON.

    Keep it somewhere the log's administrators cannot write (a ticket, an e-mail to the auditor,
    a regulator's portal); `flagstone audit verify --witness FILE` later proves the log was only
    appended to since.
    """
    from flagstone.audit import latest_checkpoint

    _, engine = _open_log_db(store, db)
    try:
        cp = latest_checkpoint(engine)
    finally:
        engine.dispose()
    if cp is None:
        raise InputError("the audit log is empty: nothing to checkpoint yet")
    text = cp.to_json()
    if out_path is None:
        print(text)
    else:
        out_path.write_text(text + "\n", encoding="utf-8")
        err.print(f"checkpoint of {cp.size:,} entries written to {printable(str(out_path))}", markup=False)


def audit_log(
    store: StoreOpt = None,
    db: DbOpt = None,
    action: Annotated[str | None, typer.Option(help="Only entries of this action, e.g. identity_revealed.")] = None,
    limit: Annotated[int, typer.Option(help="How many of the newest entries.")] = 50,
) -> None:
    """Print the newest audit entries as JSON lines (sequence number, time, actor, action, target, details).

    Control characters in them (e.g. from a user name typed at the log-in) are written as JSON escapes.
    """
    from sqlalchemy import select

    from flagstone.oversight.schema import audit_entries

    _, engine = _open_log_db(store, db)
    try:
        query = select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(limit)
        if action:
            query = query.where(audit_entries.c.action == action)
        with engine.connect() as con:
            rows = list(con.execute(query))
    finally:
        engine.dispose()
    for r in reversed(rows):
        entry = {k: r._mapping[k] for k in ("seq", "ts", "actor", "action", "target")}
        entry["details"] = json.loads(r.details)
        print(printable_json(json.dumps(entry, ensure_ascii=False)))


# -- users --------------------------------------------------------------------------------------


def _password(stdin: bool) -> tuple[str, bool]:
    """(password, generated?) from stdin, a prompt, or a fresh random one."""
    from flagstone.oversight.users import new_password

    if stdin:
        return sys.stdin.readline().rstrip("\n"), False
    if sys.stdin.isatty():
        return typer.prompt("password", hide_input=True, confirmation_prompt=True), False
    return new_password(), True


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
    ov = _open(store, db, config)
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

    ov = _open(store, db, config)
    try:
        made = set_role(ov, cli_actor(), username, role)
    finally:
        ov.close()
    if isinstance(made, Grant):
        _pending(made)
    else:
        out.print(f"user {username} is now {role}", highlight=False)


def users_grants(
    store: StoreOpt = None,
    db: DbOpt = None,
    every: Annotated[bool, typer.Option("--all", help="Decided grants too, not only pending ones.")] = False,
) -> None:
    """Grants of the supervisor and admin roles: who asked for which role for whom, and who decided
    (pending ones only, unless --all)."""
    from flagstone.oversight.users import list_grants

    ov = _open(store, db)
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
    ov = _open(store, db)
    try:
        try:
            user = approve_grant(ov, authenticate(ov, admin, password), grant)
        except (LoginError, NotPermitted) as exc:
            raise InputError(str(exc), field="admin", value=admin) from exc
    finally:
        ov.close()
    out.print(f"grant #{grant} approved by {admin}: {user.username} is {user.role} (team {user.team})", highlight=False)


def users_refuse(
    grant: Annotated[int, typer.Argument(help="The grant's number (`flagstone users grants`).")],
    store: StoreOpt = None,
    db: DbOpt = None,
) -> None:
    """Refuse (or withdraw) a pending grant of the supervisor or admin role. Refusing adds no right,
    so it needs no second admin; it is audited as role_grant_refused."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import refuse_grant

    ov = _open(store, db)
    try:
        refused = refuse_grant(ov, cli_actor(), grant)
    finally:
        ov.close()
    out.print(f"grant #{grant} refused: {refused.username} does not get the role {refused.role}", highlight=False)


def users_list(store: StoreOpt = None, db: DbOpt = None) -> None:
    """Users with their role, team and whether they are locked out or disabled."""
    from flagstone.oversight.users import list_users

    ov = _open(store, db)
    try:
        rows = list_users(ov)
    finally:
        ov.close()
    table = Table("user", "name", "role", "team", "state")
    for u in rows:
        state = "disabled" if not u["active"] else "locked" if u["locked"] else "active"
        table.add_row(str(u["username"]), str(u["display_name"]), str(u["role"]), str(u["team"]), state)
    out.print(table)


def users_unlock(username: Annotated[str, typer.Argument()], store: StoreOpt = None, db: DbOpt = None) -> None:
    """Lift a lock-out after too many failed log-ins."""
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import unlock

    ov = _open(store, db)
    try:
        unlock(ov, cli_actor(), username)
    finally:
        ov.close()
    out.print(f"user {username} unlocked")


def users_disable(username: Annotated[str, typer.Argument()], store: StoreOpt = None, db: DbOpt = None) -> None:
    """Stop a user logging in (and end their sessions); their past actions stay in the log."""
    _set_active(username, store, db, False)


def users_enable(username: Annotated[str, typer.Argument()], store: StoreOpt = None, db: DbOpt = None) -> None:
    """Let a disabled user log in again."""
    _set_active(username, store, db, True)


def _set_active(username: str, store: Path | None, db: str | None, active: bool) -> None:
    from flagstone.oversight.context import cli_actor
    from flagstone.oversight.users import set_active

    ov = _open(store, db)
    try:
        set_active(ov, cli_actor(), username, active)
    finally:
        ov.close()
    out.print(f"user {username} {'enabled' if active else 'disabled'}")


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
    ov = _open(store, db)
    try:
        ended = set_password(ov, cli_actor(), username, password)
    finally:
        ov.close()
    out.print(f"password of {username} set; {ended} sessions ended")
    if generated:
        print(password)


# -- cases, retention, web ------------------------------------------------------------------------


def cases_sync(store: StoreOpt = None, db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Make a case of every alert in the store that has none yet (with its evidence and the
    encrypted identities of its parties). `flagstone scan` does this itself; use this after
    `flagstone serve`, whose alerts reach the store as it runs."""
    from flagstone.oversight.sync import sync_alerts
    from flagstone.store import Store

    ov = _open(store, db, config)
    try:
        with Store(ov.store_path, read_only=True) as st:
            result = sync_alerts(ov, st)
    finally:
        ov.close()
    out.print(
        f"{result.cases:,} new cases, {result.evidence:,} evidence events, {result.identities:,} identities copied",
        highlight=False,
    )


def retention_run(
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    days: Annotated[
        int | None, typer.Option(help="Keep this many days (default: retention.days of the configuration, 1826).")
    ] = None,
    as_of: Annotated[
        datetime | None, typer.Option("--as-of", help="Count the period back from this UTC time instead of now.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would go.")] = False,
) -> None:
    """Delete events older than the retention period, except those a case holds (legal hold: an
    open case, or a filed report). Also deletes quarantined records of old batches, old alerts and
    service decisions, identities nothing refers to any more, and old dismissed cases. Prints what
    was purged and what was held; the purge is audited."""
    from flagstone.oversight.retention import run_retention
    from flagstone.store import Store

    ov = _open(store, db, config)
    try:
        with Store(ov.store_path, create=False) as st:
            result = run_retention(ov, st, days=days, as_of=as_of, dry_run=dry_run)
    finally:
        ov.close()
    for line in result.summary_lines():
        out.print(line, highlight=False, soft_wrap=True)


def web(
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    sync: Annotated[bool, typer.Option(help="Make cases of new alerts in the store before starting.")] = True,
) -> None:
    """The case review web UI: alert queue, case view with evidence, reveal with a reason, and
    reports that need two people (proposed by one, approved by a second supervisor) before their
    goAML XML can be filed. Users come from `flagstone users add`. Everything is audited."""
    import uvicorn

    from flagstone.errors import StoreError
    from flagstone.oversight.sync import sync_alerts
    from flagstone.store import Store
    from flagstone.web import create_web_app

    ov = _open(store, db, config)
    if sync:
        try:
            with Store(ov.store_path, read_only=True) as st:
                result = sync_alerts(ov, st)
            err.print(f"{result.cases:,} new cases from the store's alerts", highlight=False)
        except StoreError as exc:
            err.print(f"cases not synced ({exc}); showing the cases already in the database", highlight=False)
    err.print(f"case review on http://{host}:{port}", highlight=False)
    uvicorn.run(create_web_app(ov), host=host, port=port, log_level="warning")


def register(app: typer.Typer, friendly: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Add these commands to the main ``flagstone`` app (``friendly`` turns errors into one line)."""
    groups: list[tuple[typer.Typer, dict[str, Callable[..., Any]]]] = [
        (audit_app, {"init": audit_init, "verify": audit_verify, "checkpoint": audit_checkpoint, "log": audit_log}),
        (
            users_app,
            {
                "add": users_add,
                "list": users_list,
                "unlock": users_unlock,
                "disable": users_disable,
                "enable": users_enable,
                "password": users_password,
                "role": users_role,
                "grants": users_grants,
                "approve": users_approve,
                "refuse": users_refuse,
            },
        ),
        (cases_app, {"sync": cases_sync}),
        (retention_app, {"run": retention_run}),
    ]
    for group, commands in groups:
        for name, fn in commands.items():
            group.command(name)(friendly(fn))
        app.add_typer(group)
    app.command()(friendly(web))
