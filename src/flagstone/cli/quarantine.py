"""``flagstone quarantine``: the records ingest refused. Listing, counting and exporting them needs
only the store (their identifiers are pseudonymised); their raw text is encrypted, and only a
supervisor reads it, with a reason, audited."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from flagstone.cli._common import StoreOpt, err, friendly, out
from flagstone.errors import InputError, printable

if TYPE_CHECKING:  # the store is imported only when a command runs
    from flagstone.oversight.quarantine import GroupCount, QuarantineFilter
    from flagstone.store import Store

quarantine_app = typer.Typer(
    name="quarantine",
    help="Records that ingest refused: why, and (for a supervisor, with a reason) what they held.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
BatchArg = Annotated[int, typer.Argument(help="The batch (`flagstone quarantine list` shows it).")]
RecordArg = Annotated[int, typer.Argument(help="The record number within the file (from 1).")]
# The filters that list, counts and export share.
BatchOpt = Annotated[int | None, typer.Option("--batch", help="Only this ingest batch.")]
FileOpt = Annotated[
    str | None, typer.Option("--file", help="Only this file: as ingest was given it, or its file name alone.")
]
FieldOpt = Annotated[
    str | None,
    typer.Option("--field", help="Only this field: a canonical field (`amount`), `record`, or a source column."),
]
ReasonOpt = Annotated[str | None, typer.Option("--reason", help="Only reasons containing this text (any case).")]
MAX_LISTED = 10_000  # a table on the terminal; `export` writes any number


class ExportFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@quarantine_app.command("list")
@friendly
def quarantine_list(
    store: StoreOpt = None,
    batch: BatchOpt = None,
    file: FileOpt = None,
    field: FieldOpt = None,
    reason: ReasonOpt = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=MAX_LISTED, help="At most this many records (`export` writes all).")
    ] = 100,
) -> None:
    """List quarantined records, newest batch first: batch, record, source, file, field, value and reason.

    Values of identifier fields show as pseudonyms, as in accepted events. The raw text of each
    record is kept encrypted; `flagstone quarantine reveal` shows it to a supervisor.
    """
    from flagstone.oversight.quarantine import count_quarantine, list_quarantine
    from flagstone.store import Store

    where = _filter(batch, file, field, reason)
    with Store(store, create=False) as st:
        _seal_older(st)
        rows = list_quarantine(st, where, limit)
        total = count_quarantine(st, where) if len(rows) == limit else len(rows)
    table = Table("batch", "record", "source", "file", "field", "value", "reason")
    for q in rows:
        shown = (q.source, q.file, q.field or "", q.value or "", q.reason)
        table.add_row(str(q.batch_id), str(q.record), *(printable(t) for t in shown))
    out.print(table)
    if total > len(rows):
        err.print(
            f"{len(rows):,} of {total:,} records shown: --limit for more, `flagstone quarantine counts` to see "
            "them grouped, `flagstone quarantine export` for all",
            highlight=False,
            soft_wrap=True,
        )


@quarantine_app.command("counts")
@friendly
def quarantine_counts(
    store: StoreOpt = None,
    by: Annotated[
        list[str] | None,
        typer.Option(
            "--by",
            help="Group by these, comma-separated or repeated: batch, file, field, reason. "
            "Default: batch,file,field,reason.",
            show_default=False,
        ),
    ] = None,
    batch: BatchOpt = None,
    file: FileOpt = None,
    field: FieldOpt = None,
    reason: ReasonOpt = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LISTED, help="At most this many groups.")] = 50,
) -> None:
    """Count quarantined records by batch, file, field and reason, largest group first.

    Each group shows its first record (`flagstone quarantine show BATCH RECORD`) and that record's
    value, pseudonymised as `list` shows it.
    """
    from flagstone.oversight.quarantine import count_groups
    from flagstone.store import Store

    groups = [g.strip() for part in by or ["batch,file,field,reason"] for g in part.split(",") if g.strip()]
    with Store(store, create=False) as st:
        _seal_older(st)
        rows, total = count_groups(st, groups, _filter(batch, file, field, reason), limit)
    table = Table("records", *groups, "first (batch record)", "its value")
    for g in rows:
        table.add_row(f"{g.count:,}", *(_group_cell(g, name) for name in groups), *_first(g))
    out.print(table)
    if total > len(rows):
        err.print(f"{len(rows):,} of {total:,} groups shown: --limit for more", highlight=False)


@quarantine_app.command("export")
@friendly
def quarantine_export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write (replaced if it exists; owner-only).")],
    format: Annotated[
        ExportFormat | None,
        typer.Option("--format", help="csv or jsonl. Default: from the --out file's extension.", show_default=False),
    ] = None,
    store: StoreOpt = None,
    batch: BatchOpt = None,
    file: FileOpt = None,
    field: FieldOpt = None,
    reason: ReasonOpt = None,
) -> None:
    """Write quarantined records to a file, each as `show` prints it: identifiers pseudonymised,
    the record as far as it converted, never the raw text (that stays with `reveal`).

    Records come batch by batch, streamed: any number of them is written in little memory. The
    export is audited (`export`).
    """
    from flagstone.audit.events import Exported
    from flagstone.oversight.activity import record
    from flagstone.oversight.quarantine import export_quarantine, iter_quarantine
    from flagstone.owner_only import private_output
    from flagstone.store import Store

    fmt = format.value if format is not None else _format_of(out_path)
    with Store(store, create=False) as st:
        _seal_older(st)
        with private_output(out_path).open("w", encoding="utf-8", newline="") as fh:
            n = export_quarantine(iter_quarantine(st, _filter(batch, file, field, reason)), fmt, fh)
        path = st.path
    record(path, [Exported(f"quarantine ({fmt})", str(out_path), n)])
    err.print(f"wrote {n:,} quarantined records to {printable(str(out_path))}", highlight=False, soft_wrap=True)


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


TOP_REASONS = 5


def top_reasons(st: Store, batch_id: int, store_opt: Path | None) -> list[str]:
    """Lines for ingest to print under a batch's reconciliation line when it quarantined records:
    its most frequent problems (count, field, reason, an example value as `list` shows it) and
    where to see the rest."""
    from flagstone.oversight.quarantine import QuarantineFilter, count_groups

    groups, total = count_groups(st, ["field", "reason"], QuarantineFilter(batch_id), TOP_REASONS)
    lines = []
    for g in groups:
        example = "" if g.example is None else f" (e.g. {g.example!r}, record {g.first_record})"
        lines.append(printable(f"  {g.count:>9,}  {g.field or 'record'}: {g.reason}{example}"))
    where = f" --batch {batch_id}" + (f" --store {store_opt}" if store_opt is not None else "")
    left = total - len(groups)
    more = f"{left:,} more reason{'s' if left > 1 else ''}; " if left else ""
    lines.append(
        printable(
            f"  {more}see `flagstone quarantine counts{where}` (every reason) "
            f"and `flagstone quarantine list{where}` (the records)"
        )
    )
    return lines


def _filter(batch: int | None, file: str | None, field: str | None, reason: str | None) -> QuarantineFilter:
    from flagstone.oversight.quarantine import QuarantineFilter

    return QuarantineFilter(batch, file, field, reason)


def _group_cell(g: GroupCount, name: str) -> str:
    value = {"batch": g.batch_id, "file": g.file, "field": g.field, "reason": g.reason}[name]
    return "" if value is None else printable(str(value))


def _first(g: GroupCount) -> tuple[str, str]:
    return f"{g.first_batch} {g.first_record}", "" if g.example is None else printable(g.example)


def _format_of(path: Path) -> str:
    formats = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
    found = formats.get(path.suffix.lower())
    if found is None:
        raise InputError(
            f"cannot tell the format from the name {path.name!r}; give --format csv or jsonl", field="--format"
        )
    return found


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
