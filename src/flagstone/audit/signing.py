"""The Ed25519 key that signs audit checkpoints. It lives in a file outside the store and the case
database (``<store>.audit-key``, or ``$FLAGSTONE_AUDIT_KEY_FILE``), mode 0600; its public half is
written beside it (``.pub``) for whoever verifies the log."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flagstone.errors import InputError

AUDIT_KEY_ENV = "FLAGSTONE_AUDIT_KEY_FILE"


def audit_key_path(store_path: str | Path) -> Path:
    return Path(os.environ.get(AUDIT_KEY_ENV) or f"{store_path}.audit-key")


def public_key_path(key_path: Path) -> Path:
    return key_path.with_name(key_path.name + ".pub")


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(public.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


class Signer:
    """Signs checkpoint statements with the private key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.key_id = key_id(self.public)

    @classmethod
    def load_or_create(cls, path: Path) -> Signer:
        if not path.exists():
            seed = os.urandom(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return cls.load(path)
            except OSError as exc:
                raise InputError(f"cannot create audit key: {exc}", path=path) from exc
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(seed.hex() + "\n")
            signer = cls(Ed25519PrivateKey.from_private_bytes(seed))
            public_key_path(path).write_text(signer.public_hex() + "\n", encoding="ascii")
            return signer
        return cls.load(path)

    @classmethod
    def load(cls, path: Path) -> Signer:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise InputError(
                f"audit key is accessible by other users (mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`",
                path=path,
            )
        try:
            seed = bytes.fromhex(path.read_text(encoding="ascii").strip())
            return cls(Ed25519PrivateKey.from_private_bytes(seed))
        except ValueError as exc:
            raise InputError("expected a 32-byte Ed25519 seed written as hex", path=path) from exc

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
