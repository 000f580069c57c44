"""The audit key and the head file (issue 13, item 10), and entries of bounded size (item 7).

A missing key is an error naming the file, never a new key pair that overwrites ``.pub``; a key
is made only for a new log (or by ``flagstone audit init``); a log cut short or wiped, together
with its checkpoints, fails ``verify`` against the head file beside the key and against a
witness; and a 1 MB user name makes an entry of a few KB."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, delete, select, update
from typer.testing import CliRunner, Result

from flagstone.audit import AuditLog, Checkpoint, Signer, latest_checkpoint, verify
from flagstone.audit.bounded import MAX_ACTOR, MAX_DETAILS, MAX_ITEMS, MAX_TARGET, MAX_TEXT
from flagstone.audit.events import AuditVerified, LoggedIn, LoginFailed, Scanned
from flagstone.audit.head import read_head
from flagstone.audit.log import entry_bytes
from flagstone.audit.merkle import leaf_hash
from flagstone.cli import app
from flagstone.errors import AuditKeyError
from flagstone.oversight.context import Oversight
from flagstone.oversight.database import open_database
from flagstone.oversight.schema import audit_checkpoints, audit_entries, audit_head
from flagstone.oversight.users import LoginError, authenticate

ENV = ("FLAGSTONE_DB", "FLAGSTONE_CONFIG", "FLAGSTONE_STORE", "FLAGSTONE_AUDIT_KEY_FILE", "FLAGSTONE_AUDIT_HEAD_FILE")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store path with a case database beside it and an audit log of a few entries."""
    path = tmp_path / "s.duckdb"
    ov = Oversight.open(path)
    try:
        for name in ("ann", "bob", "cid"):
            ov.audit.record("cli:test", LoggedIn(name))
    finally:
        ov.close()
    return path


def key(store: Path) -> Path:
    return Path(f"{store}.audit-key")


def pub(store: Path) -> Path:
    return Path(f"{store}.audit-key.pub")


def head(store: Path) -> Path:
    return Path(f"{store}.audit-key.head")


def engine_of(store: Path) -> Engine:
    return open_database(f"sqlite:///{store}.cases.sqlite")


def run(args: list[str], code: int) -> Result:
    result = CliRunner().invoke(app, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"flagstone {' '.join(args)} crashed: {result.output}") from result.exception
    assert result.exit_code == code, f"flagstone {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result


def wipe(engine: Engine, keep: int = 0) -> None:
    """Cut the log to its first ``keep`` entries, with its checkpoints and the tree's head, as
    someone with write access to the database (but not the key) would."""
    with engine.begin() as con:
        frontier = None
        if keep:
            frontier = con.execute(select(audit_checkpoints.c.root).where(audit_checkpoints.c.size == keep)).scalar()
        con.execute(delete(audit_entries).where(audit_entries.c.seq > keep))
        con.execute(delete(audit_checkpoints).where(audit_checkpoints.c.size > keep))
        if keep == 0:
            con.execute(update(audit_head).values(size=0, frontier="[]"))
        else:  # a consistent head: rebuild the frontier from the kept entries
            from flagstone.audit.merkle import Frontier

            f = Frontier()
            for r in con.execute(select(audit_entries).order_by(audit_entries.c.seq)):
                f.append(leaf_hash(entry_bytes(r.seq, r.ts, r.actor, r.action, r.target, r.details)))
            assert f.root().hex() == frontier
            con.execute(update(audit_head).values(size=keep, frontier=json.dumps([[n, h.hex()] for n, h in f.nodes])))


# -- where a key comes from -----------------------------------------------------------------------


def test_a_new_store_gets_a_key_whose_first_entry_records_it(store: Path) -> None:
    engine = engine_of(store)
    with engine.connect() as con:
        first = con.execute(select(audit_entries).where(audit_entries.c.seq == 1)).one()
    signer = Signer.load(key(store))
    assert (first.action, first.target) == ("audit_key_created", signer.key_id)
    assert json.loads(first.details) == {"public_key": str(pub(store))}
    assert pub(store).read_text().strip() == signer.public_hex()
    assert read_head(head(store)) == latest_checkpoint(engine)  # the head file follows each append
    engine.dispose()


def test_a_deleted_key_is_an_error_naming_the_file_and_pub_is_kept(store: Path) -> None:
    before = pub(store).read_bytes()
    key(store).unlink()
    with pytest.raises(AuditKeyError) as info:
        Oversight.open(store)
    assert info.value.path == str(key(store)) and "the audit log has 4 entries, signed with key" in info.value.message
    result = CliRunner().invoke(app, ["users", "list", "--store", str(store)])
    assert result.exit_code == 2 and f"{key(store)}: no audit key here" in result.stderr
    assert not key(store).exists() and pub(store).read_bytes() == before
    run(["audit", "checkpoint", "--store", str(store)], 0)  # reading the log needs no key
    # verify needs only the public key: it still checks the log, and says it could not audit itself
    out = run(["audit", "verify", "--store", str(store)], 0).output
    assert "audit log OK: 4 entries" in out and "not audited" in out


def test_a_wiped_log_fails_verify_and_gets_no_new_key(store: Path, tmp_path: Path) -> None:
    engine = engine_of(store)
    n = latest_checkpoint(engine).size  # type: ignore[union-attr]
    public = Signer.load(key(store)).public
    wipe(engine)
    assert verify(engine, public, head_file=head(store)).problems == [
        f"log truncated: the last checkpoint in {head(store)} covers {n} entries, only 0 are present"
    ]
    # Without the head file, the key itself says the log had a first entry; and no new action is
    # appended to the emptied log (it would hide the wipe)
    head(store).rename(tmp_path / "head.saved")
    result = verify(engine, public, head_file=head(store))
    assert not result.ok and "it was wiped" in result.problems[0]
    with pytest.raises(AuditKeyError, match="its audit log is empty"):
        Oversight.open(store)
    # ... and with the key deleted as well, nothing makes a new one while the .pub is there
    key(store).unlink()
    with pytest.raises(AuditKeyError) as info:
        Oversight.open(store)
    assert f"{pub(store)} exists" in info.value.message and "was the log wiped?" in info.value.message
    out = run(["audit", "verify", "--store", str(store)], 1).output
    assert "audit log FAILED" in out and "it was wiped" in out and "not audited" in out
    (tmp_path / "head.saved").rename(head(store))
    out = run(["audit", "verify", "--store", str(store)], 1).output
    assert "audit log FAILED" in out and "only 0 are present" in out and "OK" not in out
    assert not key(store).exists()  # no key was made by any of this
    engine.dispose()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 12), keep=st.integers(0, 11))
def test_any_cut_with_checkpoints_and_head_rewound_fails_against_the_head_file(n: int, keep: int) -> None:
    keep %= n
    with tempfile.TemporaryDirectory() as d:
        engine = open_database(f"sqlite:///{d}/c.sqlite")
        log = AuditLog(engine, Signer.create(Path(d) / "k"))
        for i in range(n):
            log.record("a", LoggedIn(f"u{i}"))
        assert log.verify().ok
        wipe(engine, keep)
        assert verify(engine, log.signer.public).ok == (keep > 0)  # alone, the log looks complete
        problems = log.verify().problems
        assert problems == [
            f"log truncated: the last checkpoint in {Path(d) / 'k.head'} covers {n} entries, only {keep} are present"
        ]
        # Appending goes on (the service must not stop), but never overwrites the evidence, even
        # once the log is longer than the head again: then its entries differ from those signed.
        for i in range(n - keep + 2):
            log.record("a", LoggedIn(f"again{i}"))
        assert read_head(Path(d) / "k.head").size == n  # type: ignore[union-attr]
        assert log.verify().problems == [
            f"the first {n} entries differ from those the last checkpoint in {Path(d) / 'k.head'} signed"
        ]
        engine.dispose()


def test_a_configured_key_path_is_made_only_by_audit_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secrets"
    secret.mkdir()
    monkeypatch.setenv("FLAGSTONE_AUDIT_KEY_FILE", str(secret / "audit-key"))
    store = tmp_path / "s.duckdb"
    with pytest.raises(AuditKeyError, match="flagstone audit init"):
        Oversight.open(store)
    out = run(["audit", "init", "--store", str(store)], 0).output
    assert "audit key" in out and (secret / "audit-key").exists() and (secret / "audit-key.pub").exists()
    Oversight.open(store).close()
    result = CliRunner().invoke(app, ["audit", "init", "--store", str(store)])
    assert result.exit_code == 2 and "exists already; an audit key is never replaced" in result.stderr


def test_audit_init_refuses_a_log_that_has_entries_or_a_pub(store: Path, tmp_path: Path) -> None:
    key(store).unlink()
    result = CliRunner().invoke(app, ["audit", "init", "--store", str(store)])
    assert result.exit_code == 2 and "the audit log has 4 entries" in result.stderr
    other = tmp_path / "other.duckdb"
    Path(f"{other}.audit-key.pub").write_text("00" * 32 + "\n")
    result = CliRunner().invoke(app, ["audit", "init", "--store", str(other)])
    assert result.exit_code == 2 and f"{other}.audit-key.pub exists" in result.stderr


def test_pub_is_never_overwritten_and_must_match_the_key(store: Path, tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="never replaced"):
        Signer.create(key(store))
    other = Signer.create(tmp_path / "other-key")
    pub(store).write_text(other.public_hex() + "\n")
    with pytest.raises(AuditKeyError, match="one of the two was replaced"):
        Oversight.open(store)
    assert pub(store).read_text().strip() == other.public_hex()


def test_a_key_that_did_not_sign_the_log_is_refused(store: Path) -> None:
    key(store).unlink()
    pub(store).unlink()
    Signer.create(key(store))  # someone puts a fresh key in its place
    with pytest.raises(AuditKeyError, match="not the key of this log"):
        Oversight.open(store)


def test_the_head_file_never_runs_ahead_of_what_committed(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    log = AuditLog(engine, Signer.create(tmp_path / "k"))
    log.record("a", LoggedIn("a"))
    with pytest.raises(RuntimeError), engine.begin() as con:
        log.record("a", LoggedIn("b"), con)
        log.record("a", LoggedIn("c"), con)
        raise RuntimeError("the action failed")
    assert read_head(tmp_path / "k.head").size == 1  # type: ignore[union-attr]
    assert log.verify().ok
    log.record("a", LoggedIn("d"))
    assert log.verify().ok and read_head(tmp_path / "k.head").size == 2  # type: ignore[union-attr]


Step = tuple[str, int]
steps = st.lists(st.tuples(st.sampled_from(["own", "commit", "rollback"]), st.integers(1, 3)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(plan=steps)
def test_appends_in_any_mix_of_transactions_keep_the_head_consistent(plan: list[Step]) -> None:
    """Own transactions, callers' transactions with several appends, rolled-back ones: the head
    file always names a committed prefix of the log, at most one transaction behind it."""
    with tempfile.TemporaryDirectory() as d:
        engine = open_database(f"sqlite:///{d}/c.sqlite")
        log = AuditLog(engine, Signer.create(Path(d) / "k"))
        size = 0
        for kind, count in plan:
            before = size
            if kind == "own":
                for _ in range(count):
                    log.record("a", LoggedIn("x"))
                size += count
            else:
                try:
                    with engine.begin() as con:
                        for _ in range(count):
                            log.record("a", LoggedIn("y"), con)
                        if kind == "rollback":
                            raise KeyError
                    size += count
                except KeyError:
                    pass
            result = log.verify()
            assert result.entries == size and (result.ok or size == 0), result.problems
            cp = read_head(Path(d) / "k.head")
            # own: moved on after the commit; a caller's: moved on to what committed before it
            assert (cp.size if cp else 0) == (size if kind != "commit" else before)
        engine.dispose()


# -- witnesses ----------------------------------------------------------------------------------


def test_a_witness_catches_a_wiped_log_a_cut_and_another_root(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'c.sqlite'}")
    signer = Signer(Ed25519PrivateKey.generate())  # from no file: no head file either
    log = AuditLog(engine, signer)
    for i in range(5):
        log.record("a", LoggedIn(f"u{i}"))
    w = latest_checkpoint(engine)
    assert w is not None and verify(engine, signer.public, witness=w).ok
    other = Checkpoint(w.size, "00" * 32, w.ts, w.key_id, signer.sign(b"x").hex())
    assert "signature does not verify" in verify(engine, signer.public, witness=other).problems[0]
    wipe(engine, 3)
    assert verify(engine, signer.public).ok  # alone, a shorter log looks complete
    assert verify(engine, signer.public, witness=w).problems == [
        "log truncated: the witness checkpoint covers 5 entries, only 3 are present"
    ]
    log.record("a", LoggedIn("forged4"))
    log.record("a", LoggedIn("forged5"))  # the key holder re-grows it: another root at size 5
    assert verify(engine, signer.public, witness=w).problems == [
        "the first 5 entries differ from those the witness checkpoint signed"
    ]
    wipe(engine)
    problems = verify(engine, signer.public, witness=w).problems
    assert problems == ["log truncated: the witness checkpoint covers 5 entries, only 0 are present"]
    engine.dispose()


# -- bounded entries ------------------------------------------------------------------------------


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def test_a_megabyte_user_name_at_log_in_gives_a_small_entry(db_url: str, tmp_path: Path) -> None:
    """On SQLite and on PostgreSQL, whose actor column holds 200 characters."""
    ov = Oversight.open(tmp_path / "s.duckdb", db_url)
    name = "m" * 1_000_000
    try:
        with pytest.raises(LoginError):
            authenticate(ov, name, "whatever-password")
        with ov.engine.connect() as con:
            row = con.execute(select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(1)).one()
        assert row.action == "login_failed"
        assert len(row.actor) <= MAX_ACTOR and len(row.target) <= MAX_TARGET
        assert len(entry_bytes(row.seq, row.ts, row.actor, row.action, row.target, row.details)) < 2000
        marker = f"…[1,000,000 characters, sha256 {_sha(name)}]"
        assert row.actor == "m" * (MAX_ACTOR - len(marker)) + marker
        assert row.target.endswith(marker) and row.target.startswith("mmm")
        assert ov.audit.verify().ok
    finally:
        ov.close()


texts = st.text(st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "\U0001f600"]), max_size=3000)


@settings(max_examples=60, deadline=None)
@given(actor=texts, target=texts, reason=texts, rules=st.lists(st.text(max_size=3000), max_size=400))
def test_every_entry_is_bounded_whatever_the_caller_passes(
    actor: str, target: str, reason: str, rules: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        _check_bounded(open_database(f"sqlite:///{d}/c.sqlite"), actor, target, reason, rules)


def _check_bounded(engine: Engine, actor: str, target: str, reason: str, rules: list[str]) -> None:
    signer = Signer(Ed25519PrivateKey.generate())
    log = AuditLog(engine, signer)
    events = (LoginFailed(target, reason), Scanned(target, reason, tuple(rules), 1), AuditVerified(1, False, ()))
    for event in events:
        seq = log.record(actor, event)
        with engine.connect() as con:
            row = con.execute(select(audit_entries).where(audit_entries.c.seq == seq)).one()
        assert len(row.actor) <= MAX_ACTOR and len(row.target) <= MAX_TARGET and len(row.details) <= MAX_DETAILS
        assert "\x00" not in row.actor + row.target
        details = json.loads(row.details)
        for value in details.values():
            for text in value if isinstance(value, list) else [value]:
                assert not isinstance(text, str) or len(text) <= MAX_TEXT
            assert not isinstance(value, list) or len(value) <= MAX_ITEMS + 1
        if len(actor) <= MAX_ACTOR and "\x00" not in actor and not any("\ud800" <= c <= "\udfff" for c in actor):
            assert row.actor == actor  # what fits is stored as it is
        elif len(actor) > MAX_ACTOR:
            assert row.actor.endswith(f"…[{len(actor):,} characters, sha256 {_sha(actor)}]")
    assert verify(engine, signer.public).ok
    engine.dispose()
