"""The ``flagstone`` command line. Each command is a thin shell over one module's function.

A module per group of commands: ``store`` (ingest, export, generate), ``scan``, ``results``
(alerts, evaluate, backtest, report), ``serve`` (and keys), ``audit``, ``users``, ``oversight``
(cases, retention, web), ``quarantine`` and ``triage``; what they share is in ``_common``. This package only
puts them together into one app, in the order ``flagstone --help`` lists them; the command modules
never import it.

Heavy modules are imported inside the commands so that ``flagstone --help`` is fast and works
with the core dependencies alone.
"""

from __future__ import annotations

import typer

from flagstone.cli import audit, oversight, quarantine, results, scan, serve, store, triage, users

app = typer.Typer(
    name="flagstone",
    help=(
        "Find crime-indicative patterns in event data, explain every alert, keep identities "
        "pseudonymised. Typical flow: generate (or bring your data) -> ingest -> scan -> cases reviewed "
        "in `flagstone web` (four eyes before any report); alerts / evaluate / report / backtest to "
        "study the rules; every action goes into the audit log (`flagstone audit verify`)."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins a docstring's wrapped lines into paragraphs (blank lines separate them).
    rich_markup_mode="markdown",
)

# `flagstone --help` lists the commands in this order, then the groups in theirs.
COMMANDS = (
    store.ingest,
    scan.scan,
    results.alerts,
    store.export,
    results.evaluate,
    results.backtest,
    results.report,
    store.generate,
    serve.serve,
    oversight.web,
)
GROUPS = (
    serve.keys_app,
    audit.audit_app,
    users.users_app,
    oversight.cases_app,
    oversight.retention_app,
    quarantine.quarantine_app,
    triage.triage_app,
)
for command in COMMANDS:
    app.command()(command)
for group in GROUPS:
    app.add_typer(group)


@app.callback()
def _owner_only() -> None:
    # Every file a command makes is its owner's only (flagstone.owner_only): exports and reports
    # hold pseudonymised personal data, the rest more.
    from flagstone.owner_only import owner_only_umask

    owner_only_umask()


def main() -> None:  # pragma: no cover - console entry point
    app()
