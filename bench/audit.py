"""Benchmark: what the tamper-evident audit log costs.

Appends N audit entries (default 5,000), each in its own transaction as the web UI and the CLI
write them (hash, Merkle frontier, Ed25519-signed checkpoint), and, in the same run, N plain
inserts of the same rows into a table with no hashing or signing, one transaction each: the ratio
of the two is the figure to compare, since these machines are shared and noisy. Then times
``verify`` over the whole log (every leaf, every root, every signature).

    python bench/audit.py                        # SQLite file
    python bench/audit.py --db postgresql+psycopg://flagstone:flagstone@127.0.0.1/flagstone_bench
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, insert

from flagstone.audit import AuditLog, Signer, verify
from flagstone.audit.events import CaseCommented
from flagstone.oversight.database import open_database
from flagstone.oversight.schema import metadata


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=5000)
    ap.add_argument("--db", help="SQLAlchemy URL of an empty database (default: a new SQLite file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.db or f"sqlite:///{Path(tmp) / 'bench.sqlite'}"
        engine = open_database(url)
        plain = Table(
            "bench_plain",
            MetaData(),
            Column("seq", Integer, primary_key=True),
            Column("actor", String(200)),
            Column("action", String(64)),
            Column("details", Text),
        )
        plain.create(engine, checkfirst=True)
        log = AuditLog(engine, Signer.create(Path(tmp) / "audit-key"))
        n = args.entries

        began = time.perf_counter()
        for i in range(n):
            with engine.begin() as con:
                con.execute(insert(plain).values(seq=i + 1, actor="bench", action="case_commented", details="{}"))
        t_plain = time.perf_counter() - began

        began = time.perf_counter()
        for i in range(n):
            log.record("bench", CaseCommented(i % 97, i))
        t_audit = time.perf_counter() - began

        began = time.perf_counter()
        result = verify(engine, log.signer.public)
        t_verify = time.perf_counter() - began
        assert result.ok, result.problems

        print(f"database: {url.split('://')[0]}, {n:,} entries")
        print(f"plain insert, one transaction each: {n / t_plain:,.0f} rows/s ({1000 * t_plain / n:.2f} ms each)")
        print(f"audit append (hash, frontier, signed checkpoint): {n / t_audit:,.0f} entries/s "
              f"({1000 * t_audit / n:.2f} ms each)")  # fmt: skip
        print(f"append / plain insert time ratio: {t_audit / t_plain:.2f}")
        print(f"verify the whole log: {n / t_verify:,.0f} entries/s ({t_verify:.2f} s)")
        plain.drop(engine)
        metadata.drop_all(engine)
        engine.dispose()


if __name__ == "__main__":
    main()
