"""``flagstone quarantine``: the records ingest refused. Listing them needs only the store (their
identifiers are pseudonymised); their raw text is encrypted, and only a supervisor reads it, with a
reason, audited."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flagstone.cli._common import StoreOpt, err, friendly, out
from flagstone.errors import InputError

if TYPE_CHECKING:  # the store is imported only when a command runs
    from flagstone.store import Store

quarantine_app = typer.Typer(
    name="quarantine",
    help="Records that ingest refused: why, and (for a supervisor, with a reason) what they held.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
BatchArg = Annotated[int, typer.Argument(help="The batch (`flagstone quarantine list` shows it).")]
RecordArg = Annotated[int, typer.Argument(help="The record number within the file (from 1).")]


@quarantine_app.command("list")
@friendly
def quarantine_list(
    store: StoreOpt = None,
    batch: Annotated[int | None, typer.Option("--batch", help="Only this ingest batch.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many records.")] = 100,
) -> None:
    """List quarantined records, newest batch first: batch, record, source, field, value and reason.

    Values of identifier fields show as pseudonyms, as in accepted events. The raw text of each
    record is kept encrypted; `flagstone quarantine reveal` shows it to a supervisor.
    """
    from flagstone.oversight.quarantine import list_quarantine
    from flagstone.store import Store

    with Store(store, create=False) as st:
        _seal_older(st)
        rows = list_quarantine(st, batch, limit)
    table = Table("batch", "record", "source", "field", "value", "reason")
    for q in rows:
        table.add_row(str(q.batch_id), str(q.record), q.source, q.field or "", q.value or "", q.reason)
    out.print(table)


@quarantine_app.command("show")
@friendly
def quarantine_show(batch: BatchArg, record: RecordArg, store: StoreOpt = None) -> None:
    """One quarantined record as far as it could be read, identifiers pseudonymised (JSON)."""
    from dataclasses import asdict

    from flagstone.oversight.quarantine import find
    from flagstone.store import Store

    with Store(store, create=False) as st:
        _seal_older(st)
        found = find(st, batch, record)
    print(json.dumps(asdict(found), ensure_ascii=False, indent=1))


@quarantine_app.command("reveal")
@friendly
def quarantine_reveal(
    batch: BatchArg,
    record: RecordArg,
    user: Annotated[str, typer.Option("--user", help="Your Flagstone user name (a supervisor).")],
    reason: Annotated[str, typer.Option("--reason", help="Why you need to read this record (audited).")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read your password from stdin.")] = False,
    store: StoreOpt = None,
    db: Annotated[
        str | None, typer.Option("--db", help="Case database URL (default: $FLAGSTONE_DB, else beside the store).")
    ] = None,
) -> None:
    """Print the raw text of one quarantined record, decrypted: for a supervisor, who logs in with
    their Flagstone password and gives a reason. The reading (or the refusal) goes into the audit log."""
    from flagstone.oversight.context import Oversight
    from flagstone.oversight.quarantine import reveal_raw
    from flagstone.oversight.users import LoginError, authenticate
    from flagstone.oversight.workflow import WorkflowError
    from flagstone.store import Store

    password = _password(password_stdin)
    ov = Oversight.open(store, db)
    try:
        who = authenticate(ov, user, password)
        with Store(ov.store_path, create=False) as st:
            _seal_older(st)
            raw = reveal_raw(ov, who, st, batch, record, reason)
    except (LoginError, WorkflowError) as exc:
        raise InputError(str(exc), field="--user" if isinstance(exc, LoginError) else None) from exc
    finally:
        ov.close()
    print(raw)


def _password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    if sys.stdin.isatty():
        return str(typer.prompt("password", hide_input=True))
    raise InputError("no terminal to ask for the password on; pass --password-stdin", field="--password-stdin")


def _seal_older(st: Store) -> None:
    """Encrypt the clear raw text an older Flagstone kept, if the key is here; else say so."""
    from flagstone.ingest import Pseudonymiser
    from flagstone.ingest._quarantine import has_legacy_raw, seal_legacy

    if not has_legacy_raw(st.con):
        return
    try:
        pseudonymiser = Pseudonymiser.for_store(st.path, create=False)
    except InputError as exc:
        err.print(f"warning: quarantined records of an older Flagstone keep their raw text in clear: {exc}")
        return
    with st.transaction() as con:
        n = seal_legacy(con, pseudonymiser)
    err.print(f"encrypted the raw text of {n} quarantined records kept in clear by an older Flagstone", highlight=False)
