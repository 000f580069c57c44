"""The Ed25519 key that signs audit checkpoints, and the files around it.

The key lives in a file outside the store and the case database (``<store>.audit-key``, or
``$FLAGSTONE_AUDIT_KEY_FILE``), mode 0600. Beside it:

- ``<key>.pub``, its public half, for whoever verifies the log. It is written once, when the key is
  made (or when it is missing), and never replaced: a ``.pub`` that does not match the key is an error.
- ``<key>.head``, the newest checkpoint this key signed that is known to be committed (or
  ``$FLAGSTONE_AUDIT_HEAD_FILE``), so that a log cut short or wiped in the database no longer
  verifies (see ``flagstone.audit.head``).

A key is only ever made by :meth:`Signer.create`, which refuses to replace any of these files;
when Flagstone may call it is decided in one place, ``flagstone.audit.keys``.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flagstone.errors import AuditKeyError, InputError

AUDIT_KEY_ENV = "FLAGSTONE_AUDIT_KEY_FILE"
AUDIT_HEAD_ENV = "FLAGSTONE_AUDIT_HEAD_FILE"


def audit_key_path(store_path: str | Path) -> Path:
    return Path(os.environ.get(AUDIT_KEY_ENV) or f"{store_path}.audit-key")


def key_path_is_configured() -> bool:
    """Whether the deployment names the key's file itself (then only ``flagstone audit init`` makes it)."""
    return bool(os.environ.get(AUDIT_KEY_ENV))


def public_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


def head_path(key_path: Path) -> Path:
    return Path(os.environ.get(AUDIT_HEAD_ENV) or key_path.with_name(key_path.name + ".head"))


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def _write_new(path: Path, text: str) -> None:
    """Write a file that must not exist yet (owner-only); FileExistsError if it does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)


class Signer:
    """Signs checkpoint statements with the private key (kept at ``path`` when it came from a file)."""

    def __init__(self, private: Ed25519PrivateKey, path: Path | None = None) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)
        self.path = path

    @classmethod
    def create(cls, path: Path) -> Signer:
        """Make a new key at ``path`` and its ``.pub``. Refuses when either exists (an existing key
        is never replaced); a key made at the same moment by another process is FileExistsError."""
        for existing in (path, public_key_path(path)):
            if existing.exists():
                raise AuditKeyError(
                    "exists already; an audit key and its public half are never replaced", path=existing
                )
        seed = os.urandom(32)
        try:
            _write_new(path, seed.hex() + "\n")
        except FileExistsError:
            raise
        except OSError as exc:
            raise AuditKeyError(f"cannot create the audit key: {exc}", path=path) from exc
        signer = cls(Ed25519PrivateKey.from_private_bytes(seed), path)
        signer.ensure_public_file()
        return signer

    @classmethod
    def load(cls, path: Path) -> Signer:
        try:
            mode = path.stat().st_mode
        except FileNotFoundError as exc:
            raise AuditKeyError("no audit key here", path=path) from exc
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise AuditKeyError(
                f"audit key is accessible by other users (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`",
                path=path,
            )
        try:
            seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
            signer = cls(Ed25519PrivateKey.from_private_bytes(seed), path)
        except ValueError as exc:
            raise AuditKeyError("expected a 32-byte Ed25519 seed written as hex", path=path) from exc
        signer.ensure_public_file()
        return signer

    def ensure_public_file(self) -> None:
        """Write ``<key>.pub`` if it is missing; refuse one that holds another key."""
        assert self.path is not None
        pub = public_key_path(self.path)
        try:
            _write_new(pub, self.public_hex() + "\n")
            return
        except FileExistsError:
            pass
        except OSError:
            return  # a read-only key folder: the verifier is then given the public key some other way
        found = load_public_key(pub)
        if key_id(found) != self.key_id:
            raise AuditKeyError(
                f"holds public key {key_id(found)}, but the audit key {self.path} is key {self.key_id}; "
                "one of the two was replaced",
                path=pub,
            )

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def public_hex(self) -> str:
        return self.public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(path.read_text(encoding="ascii").strip()))
    except FileNotFoundError as exc:
        raise InputError("no such public key file", path=path) from exc
    except ValueError as exc:
        raise InputError("expected a 32-byte Ed25519 public key written as hex", path=path) from exc


def signature_ok(public: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public.verify(signature, message)
    except InvalidSignature:
        return False
    return True
