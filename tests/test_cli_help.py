"""The ``--help`` of every command and subcommand, in the order ``flagstone --help`` lists them, and
what each group says when called without a command, are kept in tests/golden/cli_help.txt, so that
a change of help text is a deliberate golden update.

Regenerate after an intended change with ``FLAGSTONE_UPDATE_GOLDEN=1 pytest tests/test_cli_help.py``.

The text is made in a child process with a fixed terminal (120 columns, TERM=dumb) and none of the
variables that Typer and Rich read at import time (TERMINAL_WIDTH, FORCE_COLOR, GITHUB_ACTIONS ...),
so it is the same on every machine with the same Typer, Click and Rich.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden" / "cli_help.txt"
ENV = {"COLUMNS": "120", "LINES": "40", "TERM": "dumb", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}


def dump_help() -> str:
    """Every command's ``--help``, depth first in the order each group lists its commands."""
    import typer
    from typer.core import TyperGroup
    from typer.testing import CliRunner

    from flagstone.cli import app

    runner = CliRunner()
    parts: list[str] = []

    def run(args: list[str]) -> None:
        result = runner.invoke(app, args, prog_name="flagstone")
        parts.append(f"==== {' '.join(['flagstone', *args])} (exit {result.exit_code})\n{result.output}")

    def walk(command: object, path: list[str]) -> None:
        run([*path, "--help"])
        if isinstance(command, TyperGroup):
            run(path)  # a group without a command shows its help too, with its own exit status
            for name, sub in command.commands.items():  # in the order its help lists them
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return "".join(parts)


def test_every_help_text_matches_the_golden_file() -> None:
    env = {k: os.environ[k] for k in ("PATH", "PYTHONPATH", "SYSTEMROOT") if k in os.environ} | ENV
    result = subprocess.run([sys.executable, __file__], capture_output=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    text = result.stdout.decode("utf-8")
    if os.environ.get("FLAGSTONE_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert GOLDEN.exists(), f"no golden file {GOLDEN}; run with FLAGSTONE_UPDATE_GOLDEN=1"
    assert text == GOLDEN.read_text(encoding="utf-8")


if __name__ == "__main__":  # the child process of the test
    sys.stdout.write(dump_help())
