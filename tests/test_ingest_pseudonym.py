"""Keyed pseudonyms: stable per key, different across keys, reversible only via encrypted identities."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from pathlib import Path

import duckdb
import pytest

from flagstone.errors import InputError
from flagstone.ingest import Pseudonymiser, ingest_file, load_master_key
from flagstone.ingest._pseudonym import HEX_DIGITS, _derive
from flagstone.store import Store

MAPPING = """
source: bank
fields:
  event_id: id
  ts: t
  kind: {value: transfer}
  actor: acct
  counterparty: other
  place: branch
attrs: {name: name}
personal: [place, attrs.name]
"""
DATA = "id,t,acct,other,branch,name\n1,2024-01-01,ACC-1,ACC-2,Main St,Anna\n2,2024-01-02,ACC-2,ACC-1,,Anna\n"


@pytest.fixture(autouse=True)
def no_key_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLAGSTONE_KEY", raising=False)
    monkeypatch.delenv("FLAGSTONE_KEY_FILE", raising=False)


def load(folder: Path, data: str = DATA) -> list[tuple[str, ...]]:
    folder.mkdir(exist_ok=True)
    (folder / "m.yaml").write_text(MAPPING)
    (folder / "d.csv").write_text(data)
    with Store(folder / "s.duckdb") as st:
        ingest_file(st, folder / "d.csv", folder / "m.yaml", progress=False)
        return st.con.execute(
            "SELECT actor, counterparty, place, attrs->>'name' FROM events ORDER BY event_id"
        ).fetchall()


def test_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        key = load_master_key(tmp_path / "s.duckdb")
    finally:
        os.umask(old)
    path = tmp_path / "s.duckdb.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 32
    assert load_master_key(tmp_path / "s.duckdb") == key


def test_ingest_creates_the_key_next_to_the_store_not_in_it(tmp_path: Path) -> None:
    rows = load(tmp_path)
    key_file = tmp_path / "s.duckdb.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key_hex = key_file.read_text().strip()
    store_bytes = (tmp_path / "s.duckdb").read_bytes()
    assert key_hex.encode() not in store_bytes and bytes.fromhex(key_hex) not in store_bytes
    assert b"ACC-1" not in store_bytes and b"Anna" not in store_bytes
    assert all(v is None or (v.startswith("p_") and len(v) == 2 + HEX_DIGITS) for row in rows for v in row)


def test_a_key_file_others_can_read_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "k"
    path.write_text("ab" * 32)
    path.chmod(0o644)
    monkeypatch.setenv("FLAGSTONE_KEY_FILE", str(path))
    with pytest.raises(InputError, match="chmod 600"):
        load_master_key(tmp_path / "s.duckdb")


@pytest.mark.parametrize("encode", [bytes.hex, lambda b: base64.b64encode(b).decode()], ids=["hex", "base64"])
def test_key_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, encode: object) -> None:
    monkeypatch.setenv("FLAGSTONE_KEY", encode(b"k" * 32))  # type: ignore[operator]
    assert load_master_key(tmp_path / "s.duckdb") == b"k" * 32
    assert not (tmp_path / "s.duckdb.key").exists()
    monkeypatch.setenv("FLAGSTONE_KEY", "too-short")
    with pytest.raises(InputError, match="at least 16 bytes"):
        load_master_key(tmp_path / "s.duckdb")


def test_same_value_same_pseudonym_across_runs_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAGSTONE_KEY", "ab" * 32)
    first = load(tmp_path / "a")
    second = load(tmp_path / "b")
    assert first == second
    # actor of record 1 is counterparty of record 2: one account, one pseudonym.
    assert first[0][0] == first[1][1] and first[0][1] == first[1][0]
    assert first[0][3] == first[1][3]
    assert first[1][2] is None  # empty stays empty
    monkeypatch.setenv("FLAGSTONE_KEY", "cd" * 32)
    other = load(tmp_path / "c")
    assert all(x != y for x, y in zip(first[0], other[0], strict=True))


def test_pseudonym_is_hmac_sha256_with_derived_key_and_sql_agrees() -> None:
    master = b"m" * 32
    p = Pseudonymiser(master)
    mac_key = _derive(master, b"flagstone/pseudonym/hmac-sha256/v1")
    expected = "p_" + hmac.new(mac_key, "Zoë".encode(), hashlib.sha256).hexdigest()[:20]
    assert p.pseudonymise("Zoë") == expected
    values = ["Zoë", "ACC-1", "", "x" * 300]
    con = duckdb.connect()
    with p.bound(con):
        rows = con.execute(f"SELECT {Pseudonymiser.sql('v')} FROM unnest($vals) AS t(v)", {"vals": values}).fetchall()
    assert [r[0] for r in rows] == [p.pseudonymise(v) for v in values]
    # The pads do not outlive the ingest.
    assert con.execute("SELECT getvariable('flagstone_hmac_ipad')").fetchall() == [(None,)]


def test_identities_round_trip_and_each_pseudonym_is_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAGSTONE_KEY", "ab" * 32)
    load(tmp_path)
    extra = "id,t,acct,other,branch,name\n3,2024-01-03,ACC-1,ACC-3,Main St,Bo\n"
    (tmp_path / "d2.csv").write_text(extra)
    p = Pseudonymiser(bytes.fromhex("ab" * 32))
    with Store(tmp_path / "s.duckdb") as st:
        ingest_file(st, tmp_path / "d2.csv", tmp_path / "m.yaml", progress=False)
        rows = st.con.execute("SELECT pseudonym, nonce, ciphertext FROM identities").fetchall()
    clear = {pseudonym: p.decrypt(pseudonym, nonce, ct) for pseudonym, nonce, ct in rows}
    assert sorted(clear.values()) == ["ACC-1", "ACC-2", "ACC-3", "Anna", "Bo", "Main St"]
    assert len(rows) == len(clear) == 6
    assert all(p.pseudonymise(v) == k for k, v in clear.items())
    assert len({n for _, n, _ in rows}) == 6  # a fresh nonce per identity
    # The ciphertext is bound to its pseudonym: moved to another row it does not decrypt.
    (_, na, ca), (b, _, _) = rows[:2]
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        p.decrypt(b, na, ca)
