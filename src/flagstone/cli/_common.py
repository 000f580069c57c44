"""What the command modules share, defined once: the consoles, the one way an error reaches the
terminal, and the options that many commands take."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from flagstone.errors import FlagstoneError, printable

if TYPE_CHECKING:  # the oversight stack is imported only when a command runs
    from flagstone.oversight.context import Oversight

err = Console(stderr=True, markup=False)  # names and values from files and users are never markup
out = Console(markup=False)
F = TypeVar("F", bound=Callable[..., Any])

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="DuckDB store file. Default: $FLAGSTONE_STORE, else ./flagstone.duckdb.",
        show_default=False,
    ),
]
# Per-deployment thresholds, shared by every command that runs rules.
ParamsOpt = Annotated[
    Path | None, typer.Option("--params", help="YAML of per-deployment thresholds: {rule_id: {param: value}}.")
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override one threshold: RULE_ID.PARAM=VALUE (repeatable)."),
]
# The case database and the deployment configuration, for the oversight commands.
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


def print_error(exc: BaseException) -> None:
    """The one place an error reaches the terminal: one line, its user-given parts (file names,
    headers, values) escaped, and never read as rich markup."""
    err.print(Text.assemble(("error:", "bold red"), " ", printable(str(exc))), highlight=False, soft_wrap=True)


def friendly(fn: F) -> F:
    """Print Flagstone's own errors as one line and exit 2, instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FlagstoneError as exc:
            print_error(exc)
            raise typer.Exit(2) from exc

    return wrapper  # type: ignore[return-value]


def open_oversight(store: Path | None, db: str | None, config: Path | None = None) -> Oversight:
    """The case database, its audit log and the configuration, for a command that acts on them."""
    from flagstone.oversight.context import Oversight

    return Oversight.open(store, db, config)
