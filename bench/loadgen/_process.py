"""The generator in a process of its own, so that its pacing does not share a GIL with the caller."""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from types import TracebackType

from loadgen._openloop import Result, Target, run


class LoadProcess:
    """One worker process, reused for every run until the ``with`` block ends."""

    def __init__(self) -> None:
        # spawn: the generator starts clean instead of inheriting the caller's threads (DuckDB's, say).
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def run(self, target: Target, bodies: Sequence[bytes], rate: float, connections: int, drain: float) -> Result:
        """``loadgen.run`` in the worker process; blocks until the run is over."""
        return self._pool.submit(run, target, list(bodies), rate, connections, drain).result()

    def __enter__(self) -> LoadProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pool.shutdown()
