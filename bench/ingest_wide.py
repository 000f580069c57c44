"""Benchmark: what a very wide CSV costs to ingest (issue 13: 100,000 columns took 205 s and 1.5 GB).

For each width it writes a CSV with that many columns (the six a mapping reads, then filler) and a
few rows, and ingests it into a fresh store in a child process, printing the wall time and the
child's peak memory. A linear ingest shows time and memory growing about tenfold from 1k to 10k
columns, not a hundredfold; widths over the documented maximum are refused at once, and the refusal
costs no more than reading the header.

    python bench/ingest_wide.py                      # 1,000, 10,000 and 100,000 columns
    python bench/ingest_wide.py --widths 2000 20000 --rows 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAPPING = """\
source: wide
target: events
format: csv
fields:
  event_id: id
  ts: ts
  kind: {value: payment}
  actor: actor
  amount: amount
  currency: {value: EUR}
attrs:
  note: note
"""
READ = ["id", "ts", "actor", "amount", "note"]


def write_csv(path: Path, width: int, rows: int) -> None:
    filler = [f"c{i}" for i in range(width - len(READ))]
    with path.open("w", encoding="utf-8") as f:
        f.write(",".join(READ + filler) + "\n")
        pad = "," * len(filler)
        for r in range(rows):
            f.write(f"e{r},2024-01-01T00:00:{r % 60:02d}Z,a{r % 7},{r}.50,n{r}{pad}\n")


CHILD = """
import json, resource, sys, time
from flagstone.errors import FlagstoneError
from flagstone.ingest import ingest_file
from flagstone.store import Store
began = time.perf_counter()
outcome = "loaded"
try:
    with Store(sys.argv[1]) as st:
        r = ingest_file(st, sys.argv[2], sys.argv[3], progress=False)
        outcome = f"loaded {r.loaded}, quarantined {r.quarantined}"
except FlagstoneError as exc:
    outcome = "refused: " + str(exc)[:120]
print(json.dumps({"seconds": time.perf_counter() - began, "outcome": outcome,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--widths", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--rows", type=int, default=20)
    args = ap.parse_args()
    print(f"{'columns':>9} {'seconds':>8} {'peak MB':>8}  outcome")
    with tempfile.TemporaryDirectory() as tmp:
        mapping = Path(tmp) / "wide.yaml"
        mapping.write_text(MAPPING, encoding="utf-8")
        for width in args.widths:
            data = Path(tmp) / f"wide{width}.csv"
            write_csv(data, width, args.rows)
            store = Path(tmp) / f"s{width}.duckdb"
            began = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(store), str(data), str(mapping)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(f"{width:>9,} failed after {time.perf_counter() - began:.1f} s: {proc.stderr[-500:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{width:>9,} {r['seconds']:>8.2f} {r['peak_mb']:>8.0f}  {r['outcome']}")


if __name__ == "__main__":
    main()
