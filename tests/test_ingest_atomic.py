"""One file, one transaction: a failed or killed ingest leaves the store exactly as it was."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flagstone.ingest import _load, ingest_file
from flagstone.store import Store

MAPPING = """
source: big
fields:
  event_id: id
  ts: {column: t, format: epoch_s}
  kind: k
  actor: a
  amount: x
"""
ROWS = 400_000
BATCH = 50_000


def big_csv(path: Path, rows: int, bad_every: int = 0) -> None:
    prefix = path.stem
    lines = ["id,t,k,a,x"]
    for i in range(rows):
        amount = "oops" if bad_every and i % bad_every == 0 else f"{i % 997}.25"
        lines.append(f"{prefix}{i},{1_700_000_000 + i},payment,acct{i % 5000},{amount}")
    path.write_text("\n".join(lines) + "\n")


def table_counts(store_path: Path) -> dict[str, int]:
    with Store(store_path) as st:
        names = [r[0] for r in st.con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {n: st.con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path]:
    monkeypatch.setenv("FLAGSTONE_KEY", "42" * 32)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(MAPPING)
    store = tmp_path / "s.duckdb"
    small = tmp_path / "small.csv"
    big_csv(small, 1_000, bad_every=100)
    with Store(store) as st:  # something already in every ingest table
        ingest_file(st, small, mapping, progress=False)
    return store, mapping, tmp_path


def test_sigkill_mid_ingest_leaves_store_unchanged_and_rerun_loads_once(setup: tuple[Path, Path, Path]) -> None:
    store, mapping, folder = setup
    big = folder / "big.csv"
    big_csv(big, ROWS)
    before = table_counts(store)
    assert before["events"] == 990 and before["quarantine"] == 10 and before["identities"] > 0

    # The child reports each staged batch and then stalls, so it is surely killed mid-file, with
    # uncommitted rows already written to the database file.
    child = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from flagstone.ingest import _load, ingest_file
        from flagstone.store import Store
        orig = _load._Loader._convert
        def convert(self, table):
            orig(self, table)
            print("staged", self.staged, flush=True)
            if self.staged >= {3 * BATCH}:
                time.sleep(60)
        _load._Loader._convert = convert
        with Store({str(store)!r}) as st:
            ingest_file(st, Path({str(big)!r}), Path({str(mapping)!r}), batch_size={BATCH}, progress=False)
        print("finished", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = [proc.stdout.readline().strip() for _ in range(3)]  # type: ignore[union-attr]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert seen == [f"staged {n * BATCH}" for n in (1, 2, 3)], proc.stderr.read()  # type: ignore[union-attr]
    assert proc.returncode == -signal.SIGKILL

    assert table_counts(store) == before

    with Store(store) as st:
        r = ingest_file(st, big, mapping, batch_size=BATCH, progress=False)
        assert (r.read, r.loaded, r.quarantined, r.duplicates) == (ROWS, ROWS, 0, 0)
        r = ingest_file(st, big, mapping, batch_size=BATCH, progress=False)
        assert (r.loaded, r.duplicates) == (0, ROWS)
    after = table_counts(store)
    assert after["events"] == before["events"] + ROWS
    assert after["ingest_batches"] == before["ingest_batches"] + 2


def test_an_error_mid_ingest_rolls_everything_back(
    setup: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, mapping, folder = setup
    data = folder / "mid.csv"
    big_csv(data, 3_000, bad_every=7)
    before = table_counts(store)

    def fail(self: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(_load._Loader, "finish", fail)
    with Store(store) as st, pytest.raises(RuntimeError, match="disk full"):
        ingest_file(st, data, mapping, batch_size=500, progress=False)
    assert table_counts(store) == before
