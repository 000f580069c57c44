"""Case-database URLs for tests: SQLite always, and PostgreSQL when ``$FLAGSTONE_TEST_PG`` names a
server login that may create databases (``.ci/run`` starts one). Each test gets a database of its own."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import ProgrammingError

PG_ENV = "FLAGSTONE_TEST_PG"  # e.g. postgresql+psycopg://flagstone:flagstone@127.0.0.1/postgres
REQUIRE_PG_ENV = "FLAGSTONE_REQUIRE_PG"
BACKENDS = ["sqlite", "postgresql"]


def fresh_db_url(backend: str, tmp: Path) -> Iterator[str]:
    """Yield the URL of an empty database on ``backend``; a PostgreSQL one is dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / 'cases.sqlite'}"
        return
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        if os.environ.get(REQUIRE_PG_ENV):
            pytest.fail(f"PostgreSQL is required ({REQUIRE_PG_ENV} is set) but {PG_ENV} is not")
        pytest.skip(f"no PostgreSQL server ({PG_ENV} not set)")
    name = f"flagstone_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(text(f'CREATE DATABASE "{name}"'))
    base, _, _ = admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        _drop(admin, name)
        admin.dispose()


def _drop(admin: Engine, name: str) -> None:
    # FORCE ends the tests' own connections, but a login without superuser rights may not end an
    # autovacuum worker that happens to be in the new database: wait for it a little.
    for attempt in range(20):
        try:
            with admin.connect() as con:
                con.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except ProgrammingError:
            if attempt == 19:
                raise
            time.sleep(0.25)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_db_url(request.param, tmp_path)
