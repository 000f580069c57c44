"""The SQL each shipped rule compiles to is kept in tests/golden/sql, so changes show in review.

Regenerate after an intended change with ``FLAGSTONE_UPDATE_GOLDEN=1 pytest tests/test_golden_sql.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pytest

from flagstone.engines import compile_rule
from flagstone.rules import load_rules
from flagstone.store import SCHEMA

HERE = Path(__file__).parent
GOLDEN = HERE / "golden" / "sql"
RULES = list(load_rules([HERE.parent / "packs"]))


@pytest.mark.parametrize("rule", RULES, ids=[r.meta.id for r in RULES])
def test_compiled_sql_matches_golden_file(rule: object) -> None:
    sql = compile_rule(rule) + "\n"  # type: ignore[arg-type]
    path = GOLDEN / f"{rule.meta.id}.sql"  # type: ignore[attr-defined]
    if os.environ.get("FLAGSTONE_UPDATE_GOLDEN"):
        path.write_text(sql)
    assert path.exists(), f"no golden file {path}; run with FLAGSTONE_UPDATE_GOLDEN=1"
    assert sql == path.read_text()


def test_every_golden_file_belongs_to_a_rule_and_runs() -> None:
    ids = {r.meta.id for r in RULES}
    con = duckdb.connect()
    con.execute(SCHEMA)
    for path in GOLDEN.glob("*.sql"):
        assert path.stem in ids, f"stale golden file {path.name}"
        assert con.execute(path.read_text()).fetchall() == []
