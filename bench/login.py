"""Benchmark: does the time of a failed log-in tell which user names exist?

Times log-in attempts through the web app (FastAPI's test client, no network) for five cases,
interleaved so that the machine's noise falls on all alike: a real name with a wrong password, an
unknown name, a real name that is locked (with its right password, and with a wrong one), and an
unknown name that is locked. Prints the median of each and its ratio to the unknown name's; every
ratio should be close to 1. (Before issue 13, a locked real name answered about 30 times faster,
since it skipped the Argon2 hash.) An attempt from a locked address is shown for comparison: it
is refused before any hashing, whatever the name.

    python bench/login.py [--rounds 15] [--db URL]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import delete

from flagstone.config import Config, Security
from flagstone.oversight.context import Oversight
from flagstone.oversight.schema import login_limits
from flagstone.oversight.users import create_user
from flagstone.web import create_web_app

PASSWORD = "correct horse battery"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--db", help="SQLAlchemy URL of an empty database (default: a new SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        config = Config(security=Security(lockout_attempts=3, address_lockout_attempts=10**9))
        ov = Oversight.open(Path(tmp) / "store.duckdb", url, config)
        for name in ("real", "locked"):
            create_user(ov, "bench", name, PASSWORD, "analyst", "aml")
        app = create_web_app(ov)
        client = TestClient(app, follow_redirects=False)

        def attempt(name: str, password: str) -> Callable[[], Callable[[], int]]:
            """A fresh log-in form (untimed), then a function that posts it (timed)."""

            def prepare() -> Callable[[], int]:
                page = client.get("/login").text
                token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
                form = {"username": name, "password": password, "csrf_token": token}
                return lambda: client.post("/login", data=form).status_code

            return prepare

        def lock(name: str) -> None:
            for _ in range(10):
                if attempt(name, "wrong password")()() == 429:
                    return
            raise SystemExit(f"{name} did not lock")

        lock("locked")
        lock("ghost")
        cases = {
            "unknown name": attempt("nobody", "wrong password"),
            "real name, wrong password": attempt("real", "wrong password"),
            "real name locked, right password": attempt("locked", PASSWORD),
            "real name locked, wrong password": attempt("locked", "wrong password"),
            "unknown name locked": attempt("ghost", "wrong password"),
        }
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for label, run in cases.items():
                if label in ("unknown name", "real name, wrong password"):  # keep them below the lock
                    with ov.engine.begin() as con:
                        con.execute(delete(login_limits).where(login_limits.c.locked_until.is_(None)))
                post = run()
                began = time.perf_counter()
                post()
                times[label].append(time.perf_counter() - began)
        address_locked = TestClient(create_web_app(_address_locked(ov, tmp)), follow_redirects=False)
        t_addr = []
        for _ in range(args.rounds):
            began = time.perf_counter()
            address_locked.post("/login", data={"username": "real", "password": "x", "csrf_token": "x"})
            t_addr.append(time.perf_counter() - began)
        ov.close()
    base = statistics.median(times["unknown name"])
    print(f"{'attempt':36} {'median ms':>10} {'ratio':>7}")
    for label, ts in times.items():
        m = statistics.median(ts)
        print(f"{label:36} {m * 1000:10.1f} {m / base:7.2f}")
    m = statistics.median(t_addr)
    print(f"{'(from a locked address, any name)':36} {m * 1000:10.1f} {m / base:7.2f}")


def _address_locked(ov: Oversight, tmp: str) -> Oversight:
    """The same database under a configuration whose address limit is one failure, used up."""
    locked = Oversight(ov.engine, ov.audit, Config(security=Security(address_lockout_attempts=1)), Path(tmp), ov.db_url)
    client = TestClient(create_web_app(locked), follow_redirects=False)
    client.post("/login", data={"username": "x", "password": "x", "csrf_token": "forged"})
    return locked


if __name__ == "__main__":
    main()
