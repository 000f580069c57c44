"""Options that many commands share, defined once for ``cli.py``, ``cli_serve.py`` and ``cli_oversight.py``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="DuckDB store file. Default: $FLAGSTONE_STORE, else ./flagstone.duckdb.",
        show_default=False,
    ),
]
