"""Pseudonyms for identifiers, and the encrypted table that can undo them.

One master key, kept outside the store (``$FLAGSTONE_KEY``, ``$FLAGSTONE_KEY_FILE`` or
``<store>.key``), is stretched with HKDF into two independent keys: one for the HMAC that makes
pseudonyms, one for AES-GCM that encrypts the real values into ``identities``. Whoever holds only
the store sees pseudonyms; joins still work because the same value always gives the same pseudonym.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from flagstone.errors import InputError

KEY_ENV = "FLAGSTONE_KEY"
KEY_FILE_ENV = "FLAGSTONE_KEY_FILE"
MIN_KEY_BYTES = 16

PREFIX = "p_"
# 20 hex digits = 80 bits. Among a billion distinct identifiers the chance that any two share a
# pseudonym is about n²/2⁸¹ ≈ 4·10⁻⁷; ids stay short enough to read in an alert.
HEX_DIGITS = 20

_BLOCK = 64  # SHA-256 block size, for the HMAC pads


def key_file_for(store_path: str | Path) -> Path:
    return Path(os.environ.get(KEY_FILE_ENV) or f"{store_path}.key")


def load_master_key(store_path: str | Path, *, create: bool = True) -> bytes:
    """The master key from ``$FLAGSTONE_KEY``, else from the key file (created 0600 on first use,
    unless ``create`` is false: reading identities back needs the key they were stored with)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return _decode_key(env.strip(), f"${KEY_ENV}")
    path = key_file_for(store_path)
    if not create and not path.exists():
        raise InputError(f"no key to decrypt identities with (this file, or ${KEY_ENV})", path=path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    except OSError as exc:
        raise InputError(f"cannot create key file: {exc}", path=path) from exc
    with os.fdopen(fd, "w") as fh:
        os.fchmod(fd, 0o600)  # whatever the umask
        fh.write(os.urandom(32).hex() + "\n")
        fh.flush()
        os.fsync(fd)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(
            f"key file is accessible by other users (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`",
            path=path,
        )
    return _decode_key(path.read_text(encoding="ascii").strip(), str(path))


def _decode_key(text: str, origin: str) -> bytes:
    try:
        if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
            key = bytes.fromhex(text)
        else:
            key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < MIN_KEY_BYTES:
        raise InputError(
            f"{origin}: expected a key of at least {MIN_KEY_BYTES} bytes written as hex or base64 "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return key


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class Pseudonymiser:
    """Keyed, stable pseudonyms (HMAC-SHA256) and encryption of the values behind them."""

    def __init__(self, master_key: bytes) -> None:
        self._mac_key = _derive(master_key, b"flagstone/pseudonym/hmac-sha256/v1")
        self._aead = AESGCM(_derive(master_key, b"flagstone/identity/aes-256-gcm/v1"))

    @classmethod
    def for_store(cls, store_path: str | Path, *, create: bool = True) -> Pseudonymiser:
        return cls(load_master_key(store_path, create=create))

    def pseudonymise(self, value: str) -> str:
        digest = hmac.new(self._mac_key, value.encode("utf-8"), hashlib.sha256).hexdigest()
        return PREFIX + digest[:HEX_DIGITS]

    def encrypt(self, pseudonym: str, value: str) -> tuple[bytes, bytes]:
        """(nonce, ciphertext); the pseudonym is authenticated with it so rows cannot be swapped."""
        nonces, ciphertexts = self.encrypt_many([pseudonym], [value])
        return nonces[0], ciphertexts[0]

    def encrypt_many(self, pseudonyms: list[str], values: list[str]) -> tuple[list[bytes], list[bytes]]:
        return self.seal_many(pseudonyms, values)

    def decrypt(self, pseudonym: str, nonce: bytes, ciphertext: bytes) -> str:
        # Only the audited reveal (flagstone.oversight.cases.reveal) and the tests call this.
        return self.unseal(pseudonym, nonce, ciphertext)

    def seal_many(self, labels: list[str], texts: list[str]) -> tuple[list[bytes], list[bytes]]:
        """(nonces, ciphertexts) of ``texts`` under the identities' key, each bound to its label
        (a pseudonym, or a quarantined record's place) so that no row can stand in for another."""
        # Random 96-bit nonces are safe for far more than 2^32 values per key would ever need;
        # drawing them in one call halves the cost per value.
        pool = os.urandom(12 * len(texts))
        nonces = [pool[12 * i : 12 * i + 12] for i in range(len(texts))]
        encrypt = self._aead.encrypt
        ciphertexts = [
            encrypt(n, t.encode("utf-8"), label.encode("utf-8"))
            for n, label, t in zip(nonces, labels, texts, strict=True)
        ]
        return nonces, ciphertexts

    def unseal(self, label: str, nonce: bytes, ciphertext: bytes) -> str:
        """The text sealed under ``label``; ``InvalidTag`` for another key, label or a changed byte."""
        return self._aead.decrypt(nonce, ciphertext, label.encode("utf-8")).decode("utf-8")

    # -- the same HMAC in DuckDB SQL, so a whole batch is pseudonymised without a Python loop --

    @contextmanager
    def bound(self, con: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """Make :meth:`sql` usable on ``con``: the HMAC pads live in session variables meanwhile.

        Variables rather than query parameters, because queries over Arrow batches cannot take
        parameters; they are never written to the store and are reset afterwards.
        """
        key = self._mac_key.ljust(_BLOCK, b"\0")
        con.execute(f"SET VARIABLE {_IPAD} = $pad", {"pad": bytes(b ^ 0x36 for b in key)})
        con.execute(f"SET VARIABLE {_OPAD} = $pad", {"pad": bytes(b ^ 0x5C for b in key)})
        try:
            yield
        finally:
            con.execute(f"RESET VARIABLE {_IPAD}")
            con.execute(f"RESET VARIABLE {_OPAD}")

    @staticmethod
    def sql(text_expr: str) -> str:
        """SQL for the pseudonym of a VARCHAR expression (NULL stays NULL): HMAC = H(opad ‖ H(ipad ‖ m))."""
        inner = f"unhex(sha256(getvariable('{_IPAD}') || encode({text_expr})))"
        return f"('{PREFIX}' || left(sha256(getvariable('{_OPAD}') || {inner}), {HEX_DIGITS}))"


_IPAD = "flagstone_hmac_ipad"
_OPAD = "flagstone_hmac_opad"
