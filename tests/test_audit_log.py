"""The audit log is tamper-evident: any single-byte change, deletion, reordering or truncation of
entries, and any change to a checkpoint, is found by ``verify``; an untouched log verifies."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, text, update

from flagstone.audit import AuditLog, Signer, latest_checkpoint, leaf_hash, root, verify
from flagstone.audit.events import AuditEvent, CaseCommented, IdentityRevealed, LoggedIn, Scanned
from flagstone.audit.log import Checkpoint, entry_bytes
from flagstone.oversight.database import open_database
from flagstone.oversight.schema import audit_checkpoints, audit_entries, audit_head

TEXT_COLUMNS = ["ts", "actor", "action", "target", "details", "entry_hash"]

events = st.one_of(
    st.builds(LoggedIn, st.text(min_size=1, max_size=12)),
    st.builds(
        Scanned,
        st.text(max_size=8),
        st.just("duckdb"),
        st.lists(st.text(max_size=6), max_size=3).map(tuple),
        st.integers(0, 10**6),
    ),
    st.builds(IdentityRevealed, st.integers(1, 99), st.text(max_size=20), st.text(min_size=1, max_size=40)),
    st.builds(CaseCommented, st.integers(1, 99), st.integers(1, 999)),
)


def build(path: Path, evs: list[AuditEvent]) -> tuple[Engine, Signer]:
    engine = open_database(f"sqlite:///{path / 'cases.sqlite'}")
    signer = Signer.create(path / "audit-key")
    log = AuditLog(engine, signer)
    for i, e in enumerate(evs):
        log.record(f"user{i % 3}", e)
    return engine, signer


def rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as con:
        return [dict(r._mapping) for r in con.execute(select(audit_entries).order_by(audit_entries.c.seq))]


def test_untouched_log_verifies_and_checkpoint_is_the_rfc6962_root(db_url: str, tmp_path: Path) -> None:
    engine = open_database(db_url)
    signer = Signer.create(tmp_path / "audit-key")
    log = AuditLog(engine, signer)
    for i in range(37):
        log.record("alice", LoggedIn(f"user{i}"))
    result = verify(engine, signer.public)
    assert result.ok, result.problems
    assert (result.entries, result.checkpoints) == (37, 37)
    leaves = [
        leaf_hash(entry_bytes(r["seq"], r["ts"], r["actor"], r["action"], r["target"], r["details"]))
        for r in rows(engine)
    ]  # type: ignore[arg-type]
    cp = latest_checkpoint(engine)
    assert cp is not None and cp.size == 37 and cp.root == root(leaves).hex()
    engine.dispose()


def test_entry_and_action_commit_together(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    log = AuditLog(engine, Signer.create(tmp_path / "k"))
    with pytest.raises(RuntimeError), engine.begin() as con:
        log.record("alice", LoggedIn("alice"), con)
        raise RuntimeError("the action failed")
    assert rows(engine) == []
    log.record("alice", LoggedIn("alice"))
    assert verify(engine, log.signer.public).ok


def _flip(value: str, pos: int) -> str:
    if not value:
        return "0"  # an empty field (e.g. an empty target) gains a byte instead
    pos %= len(value)
    c = value[pos]
    replacement = "0" if c != "0" else "1"
    return value[:pos] + replacement + value[pos + 1 :]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    evs=st.lists(events, min_size=2, max_size=24),
    which=st.integers(0, 10**6),
    column=st.sampled_from([*TEXT_COLUMNS, "seq"]),
    pos=st.integers(0, 10**6),
)
def test_any_single_byte_change_is_found(evs: list[AuditEvent], which: int, column: str, pos: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine, signer = build(Path(d), evs)
        seq = which % len(evs) + 1
        row = next(r for r in rows(engine) if r["seq"] == seq)
        if column == "seq":
            # renumbering to a free number: a deletion plus an insertion out of place
            new_value: object = len(evs) + 1 + pos % 5
        else:
            new_value = _flip(str(row[column]), pos)
        with engine.begin() as con:
            con.execute(update(audit_entries).where(audit_entries.c.seq == seq).values({column: new_value}))
        result = verify(engine, signer.public)
        assert not result.ok
        if column != "seq":
            assert result.first_bad is not None and result.first_bad["seq"] == seq
        engine.dispose()


@settings(max_examples=40, deadline=None)
@given(evs=st.lists(events, min_size=2, max_size=24), which=st.integers(0, 10**6))
def test_deleting_any_entry_is_found(evs: list[AuditEvent], which: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine, signer = build(Path(d), evs)
        seq = which % len(evs) + 1
        with engine.begin() as con:
            con.execute(delete(audit_entries).where(audit_entries.c.seq == seq))
        result = verify(engine, signer.public)
        assert not result.ok
        if seq < len(evs):
            assert result.first_bad is not None and result.first_bad["seq"] == seq
        else:
            assert "truncated" in result.problems[0]
        engine.dispose()


@settings(max_examples=40, deadline=None)
@given(evs=st.lists(events, min_size=2, max_size=24), a=st.integers(0, 10**6), b=st.integers(0, 10**6))
def test_reordering_entries_is_found(evs: list[AuditEvent], a: int, b: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine, signer = build(Path(d), evs)
        i, j = a % len(evs) + 1, b % len(evs) + 1
        if i == j:
            j = i % len(evs) + 1
        with engine.begin() as con:  # swap the two rows' sequence numbers, the whole row moves
            con.execute(update(audit_entries).where(audit_entries.c.seq == i).values(seq=-1))
            con.execute(update(audit_entries).where(audit_entries.c.seq == j).values(seq=i))
            con.execute(update(audit_entries).where(audit_entries.c.seq == -1).values(seq=j))
        result = verify(engine, signer.public)
        assert not result.ok
        assert result.first_bad is not None and result.first_bad["seq"] == min(i, j)
        engine.dispose()


@settings(max_examples=30, deadline=None)
@given(evs=st.lists(events, min_size=2, max_size=24), keep=st.integers(0, 10**6))
def test_truncation_is_found(evs: list[AuditEvent], keep: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine, signer = build(Path(d), evs)
        n = keep % len(evs)  # keep the first n entries
        witness = latest_checkpoint(engine)
        assert witness is not None
        with engine.begin() as con:
            con.execute(delete(audit_entries).where(audit_entries.c.seq > n))
        assert "truncated" in verify(engine, signer.public).problems[0]
        # A thorough forger also drops the checkpoints and rewinds the head: only a checkpoint kept
        # elsewhere can tell. That is what the witness is for.
        with engine.begin() as con:
            con.execute(delete(audit_checkpoints).where(audit_checkpoints.c.size > n))
            frontier = con.execute(select(audit_head.c.frontier)).scalar_one()
            con.execute(update(audit_head).values(size=n, frontier=frontier))
        with_witness = verify(engine, signer.public, witness=witness)
        assert any("witness" in p for p in with_witness.problems)
        engine.dispose()


@settings(max_examples=30, deadline=None)
@given(
    evs=st.lists(events, min_size=1, max_size=16),
    which=st.integers(0, 10**6),
    column=st.sampled_from(["root", "ts", "signature"]),
    pos=st.integers(0, 10**6),
)
def test_changed_checkpoint_is_found(evs: list[AuditEvent], which: int, column: str, pos: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        engine, signer = build(Path(d), evs)
        size = which % len(evs) + 1
        with engine.connect() as con:
            value = con.execute(
                select(audit_checkpoints.c[column]).where(audit_checkpoints.c.size == size)
            ).scalar_one()
        with engine.begin() as con:
            con.execute(
                update(audit_checkpoints).where(audit_checkpoints.c.size == size).values({column: _flip(value, pos)})
            )
        assert not verify(engine, signer.public).ok
        engine.dispose()


def test_forged_entries_without_the_key_are_found(tmp_path: Path) -> None:
    engine, signer = build(tmp_path, [LoggedIn("a"), LoggedIn("b")])
    forger = AuditLog(engine, Signer.create(tmp_path / "another-key"))
    forger.record("mallory", LoggedIn("mallory"))
    result = verify(engine, signer.public)
    assert not result.ok and "signature" in result.problems[0]
    # ... and an entry appended with no checkpoint at all
    (tmp_path / "second").mkdir()
    engine2, signer2 = build(tmp_path / "second", [LoggedIn("a")])
    with engine2.begin() as con:
        details = "{}"
        ts = "2026-01-01T00:00:00.000000Z"
        h = leaf_hash(entry_bytes(2, ts, "mallory", "login", "m", details)).hex()
        con.execute(
            text("INSERT INTO audit_entries VALUES (2, :ts, 'mallory', 'login', 'm', :d, :h)"),
            {"ts": ts, "d": details, "h": h},
        )
    result2 = verify(engine2, signer2.public)
    assert not result2.ok and "not covered" in result2.problems[0]


def test_witness_checkpoint_round_trips_and_accepts_a_grown_log(tmp_path: Path) -> None:
    engine, signer = build(tmp_path, [LoggedIn("a"), LoggedIn("b"), LoggedIn("c")])
    witness = Checkpoint.from_json(latest_checkpoint(engine).to_json())  # type: ignore[union-attr]
    AuditLog(engine, signer).record("bob", LoggedIn("d"))
    assert verify(engine, signer.public, witness=witness).ok
    forged = Checkpoint(witness.size, "00" * 32, witness.ts, witness.key_id, witness.signature)
    assert not verify(engine, signer.public, witness=forged).ok


def test_a_new_sqlite_case_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    import stat

    engine = open_database(f"sqlite:///{tmp_path / 'cases.sqlite'}")
    AuditLog(engine, Signer.create(tmp_path / "k")).record("a", LoggedIn("a"))
    for f in tmp_path.glob("cases.sqlite*"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_a_case_database_from_an_older_flagstone_is_refused_with_what_it_lacks(tmp_path: Path) -> None:
    import sqlite3

    from flagstone.errors import StoreError

    path = tmp_path / "old.sqlite"
    open_database(f"sqlite:///{path}").dispose()
    with sqlite3.connect(path) as con:  # as an older version made it, without a newer column
        con.execute("ALTER TABLE sessions DROP COLUMN last_seen")
    with pytest.raises(StoreError, match="table sessions lacks last_seen"):
        open_database(f"sqlite:///{path}")
