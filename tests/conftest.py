"""Shared fixtures. ``runner`` runs one rule on every engine, so each semantics test is written once."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from case_db import db_url  # noqa: F401  (the case-database fixture, SQLite and PostgreSQL)
from oversight_data import scanned, setup  # noqa: F401  (a scanned store per module, an oversight set-up per test)

from flagstone.engines import DuckDBEngine
from flagstone.errors import UnsupportedError
from flagstone.events import EVENT_COLUMNS
from flagstone.export import export_parquet
from flagstone.generate import generate_demo
from flagstone.ingest import ingest_file
from flagstone.rules import load_rules
from flagstone.rules.finding import Finding
from flagstone.rules.ir import Rule
from flagstone.rules.oracle import run_rule
from flagstone.store import SCHEMA, Store

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 1, 1)
EVENT_COLS = [c.name for c in EVENT_COLUMNS]


@pytest.fixture(autouse=True)
def cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its smallest in this process: the tests make hundreds of accounts and log-ins,
    and test who may do what, not the hash's cost (64 MiB, three passes: about 0.1 s each).
    ``test_passwords_are_hashed_with_argon2id_at_its_documented_cost`` (marked ``real_argon2``)
    checks the real parameters; subprocesses (the CLI, the browser test's server) use them too."""
    if request.node.get_closest_marker("real_argon2"):
        return
    from argon2 import PasswordHasher

    from flagstone.oversight import users

    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(users, "_hasher", cheap)
    monkeypatch.setattr(users, "_DUMMY", cheap.hash("not a real password"))  # what unknown names cost


def ev(event_id: str, hours: float = 0, **fields: Any) -> dict[str, Any]:
    """A canonical event with sensible defaults; ``hours`` after T0."""
    base: dict[str, Any] = {c: None for c in EVENT_COLS}
    base.update(source="s", event_id=event_id, ts=T0 + timedelta(hours=hours), kind="x", actor="a", currency="EUR")
    for k, v in fields.items():
        if k in ("amount", "quantity") and v is not None:
            v = Decimal(str(v))
        if k == "attrs" and isinstance(v, dict):
            v = json.dumps(v)
        base[k] = v
    return base


def write_rule(tmp: Path, **body: Any) -> Rule:
    doc = {"id": "t.rule", "version": 1, "title": "test rule", "severity": "low", **body}
    path = tmp / f"{doc['id']}.yaml"
    path.write_text(json.dumps(doc))
    return load_rules([path]).rules[0]


def load_duckdb(
    con: duckdb.DuckDBPyConnection, events: list[dict[str, Any]], entities: dict[str, dict[str, Any]]
) -> None:
    con.execute("DELETE FROM events; DELETE FROM entities")
    if events:
        con.executemany(
            f"INSERT INTO events ({', '.join(EVENT_COLS)}, batch_id) VALUES ({', '.join('?' * len(EVENT_COLS))}, 1)",
            [[e[c] for c in EVENT_COLS] for e in events],
        )
    for name, ent in entities.items():
        con.execute(
            "INSERT INTO entities (entity, pep, monthly_income, country, source, batch_id) VALUES (?, ?, ?, ?, 't', 1)",
            [name, ent.get("pep"), ent.get("monthly_income"), ent.get("country")],
        )


def engines_agree(
    con: duckdb.DuckDBPyConnection,
    rule_path: Path,
    rule_text: str,
    events: list[dict[str, Any]],
    entities: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Write and load one rule, run it on the oracle and on DuckDB over ``events``: the findings must
    be the same (in any order). Returns how many there were, for ``hypothesis.target``."""
    rule_path.write_text(rule_text)
    rule = load_rules([rule_path]).rules[0]
    load_duckdb(con, events, entities or {})
    expected = sorted(run_rule(rule, events, entities or {}), key=_finding_order)
    assert sorted(DuckDBEngine(con).run(rule), key=_finding_order) == expected
    return len(expected)


def _finding_order(f: Finding) -> tuple[Any, ...]:
    return (f.group, f.fire, f.evidence)


def exported_demo(tmp: Path, events: int, seed: int) -> Iterator[tuple[Store, Path]]:
    """A generated demo store (every source ingested) and its Parquet export ``tmp/export``; for
    module fixtures: ``yield from exported_demo(...)``. The store is closed afterwards."""
    info = generate_demo(tmp / "data", events=events, seed=seed, progress=False)
    store = Store(tmp / "flagstone.duckdb")
    for data, mapping in info.ingest_order():
        ingest_file(store, data, mapping, progress=False)
    export_parquet(store, tmp / "export", progress=False)
    yield store, tmp / "export"
    store.close()


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the store schema, shared by one module's property tests."""
    c = duckdb.connect()
    c.execute(SCHEMA)
    return c


Runner = Callable[[Rule, list[dict[str, Any]], dict[str, dict[str, Any]] | None], list[Finding]]


# Spark runs too when pyspark is installed (`make test` installs the extra).
try:
    import pyspark  # noqa: F401

    HAVE_SPARK = True
except ImportError:
    HAVE_SPARK = False
ENGINES = ["oracle", "duckdb", "realtime", *(["spark"] if HAVE_SPARK else [])]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the whole run (each xdist worker starts its own)."""
    if not HAVE_SPARK:
        pytest.skip("pyspark is not installed")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"  # local mode must not look up the host name
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("flagstone-tests")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Tiny inputs: compiling generated code and adaptive re-planning cost more than they save
        # (about 3x on the property tests); interpreted evaluation has the same semantics.
        .config("spark.sql.adaptive.enabled", "false")
        .config("spark.sql.codegen.wholeStage", "false")
        .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def spark_runner(session: Any) -> Runner:
    from flagstone.engines.spark import SparkEngine
    from flagstone.engines.spark.load import create_views

    def run(
        rule: Rule, events: list[dict[str, Any]], entities: dict[str, dict[str, Any]] | None = None
    ) -> list[Finding]:
        try:
            SparkEngine(session).check_supported(rule)
        except UnsupportedError as exc:
            pytest.skip(str(exc))
        create_views(session, events, entities or {})
        return sorted(SparkEngine(session).run(rule), key=lambda f: (f.group, f.last_ts, f.fire))

    return run


def realtime_runner(
    rule: Rule, events: list[dict[str, Any]], entities: dict[str, dict[str, Any]] | None = None
) -> list[Finding]:
    """The events replayed one at a time, in time order, through the real-time scorer."""
    from flagstone.engines.realtime import check_supported, replay

    try:
        check_supported(rule)
    except UnsupportedError as exc:
        pytest.skip(str(exc))
    return sorted(replay([rule], events, entities or {}), key=lambda f: (f.group, f.last_ts, f.fire))


@pytest.fixture(params=ENGINES)
def runner(request: pytest.FixtureRequest) -> Runner:
    """Run a rule on one engine; every engine must give the same findings."""
    if request.param == "oracle":
        return lambda rule, events, entities=None: run_rule(rule, events, entities or {})
    if request.param == "spark":
        return spark_runner(request.getfixturevalue("spark"))
    if request.param == "realtime":
        return realtime_runner
    con = duckdb.connect()
    con.execute(SCHEMA)

    def run(
        rule: Rule, events: list[dict[str, Any]], entities: dict[str, dict[str, Any]] | None = None
    ) -> list[Finding]:
        load_duckdb(con, events, entities or {})
        return sorted(DuckDBEngine(con).run(rule), key=lambda f: (f.group, f.last_ts, f.fire))

    return run
