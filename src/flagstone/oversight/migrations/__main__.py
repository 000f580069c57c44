"""Alembic's command line on the case database's migrations, configured in code (no alembic.ini)::

    python -m flagstone.oversight.migrations revision --autogenerate -m "what changes"
    python -m flagstone.oversight.migrations check      # the head revision is schema.py
    python -m flagstone.oversight.migrations history

It runs on ``$FLAGSTONE_DB`` when set; otherwise on a scratch SQLite database brought to the head
revision first, which is what ``revision --autogenerate`` and ``check`` compare the schema with. A
new revision is numbered after the newest (0003, 0004, ...) unless ``--rev-id`` says otherwise.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

from alembic import command
from alembic.config import CommandLine
from alembic.script import ScriptDirectory

from flagstone.oversight.migrations import alembic_config

PROG = "python -m flagstone.oversight.migrations"


def next_revision_id() -> str:
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: Sequence[str] | None = None) -> None:
    cli = CommandLine(prog=PROG)
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error("name a command: revision, check, history, heads, current, upgrade, ...")
    if options.cmd[0] is command.revision and getattr(options, "rev_id", None) is None:
        options.rev_id = next_revision_id()
    with tempfile.TemporaryDirectory() as scratch:
        url = os.environ.get("FLAGSTONE_DB")
        if not url:
            url = f"sqlite:///{scratch}/cases.sqlite"
            command.upgrade(alembic_config(url=url), "head")
        cfg = alembic_config(url=url)
        cfg.cmd_opts = options
        cli.run_cmd(cfg, options)


if __name__ == "__main__":
    main()
