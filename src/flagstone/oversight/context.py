"""What every oversight action needs, opened once: the case database, the audit log and the
configuration (and the store path, whose key file decrypts identities for a reveal)."""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from flagstone.audit.log import AuditLog
from flagstone.audit.signing import Signer, audit_key_path
from flagstone.config import Config, load_config
from flagstone.oversight.database import open_database, resolve_db_url
from flagstone.store import resolve_store_path


def utcnow() -> datetime:
    """Naive UTC, as the case database stores times."""
    return datetime.now(UTC).replace(tzinfo=None)


def cli_actor() -> str:
    """Who runs a command-line action, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


@dataclass
class Oversight:
    engine: Engine
    audit: AuditLog
    config: Config
    store_path: Path
    db_url: str

    @classmethod
    def open(
        cls, store: str | Path | None = None, db: str | None = None, config: Config | str | Path | None = None
    ) -> Oversight:
        store_path = resolve_store_path(store)
        url = resolve_db_url(db, store_path)
        engine = open_database(url)
        cfg = config if isinstance(config, Config) else load_config(config)
        signer = Signer.load_or_create(audit_key_path(store_path))
        return cls(engine, AuditLog(engine, signer), cfg, store_path, url)

    def close(self) -> None:
        self.engine.dispose()
