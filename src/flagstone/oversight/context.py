"""What every oversight action needs, opened once: the case database, the audit log and the
configuration (and the store path, whose key file decrypts identities for a reveal)."""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Engine

from flagstone.audit.events import CaseDatabaseUpgraded
from flagstone.audit.keys import open_audit_log
from flagstone.audit.log import AuditLog
from flagstone.config import Config, load_config
from flagstone.errors import InputError
from flagstone.ingest import Pseudonymiser
from flagstone.oversight.database import open_database, resolve_db_url, safe_url
from flagstone.oversight.legacy import bring_forward
from flagstone.oversight.schema import utcnow
from flagstone.oversight.workflow import WorkflowError
from flagstone.store import resolve_store_path


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
    # Sessions and log-in limits read the time here, so that tests can move it.
    clock: Callable[[], datetime] = field(default=utcnow)

    @classmethod
    def open(
        cls, store: str | Path | None = None, db: str | None = None, config: Config | str | Path | None = None
    ) -> Oversight:
        store_path = resolve_store_path(store)
        url = resolve_db_url(db, store_path)
        upgraded: list[str] = []
        engine = open_database(url, upgraded)
        cfg = config if isinstance(config, Config) else load_config(config)
        audit = open_audit_log(engine, store_path)
        ov = cls(engine, audit, cfg, store_path, url)
        upgraded += bring_forward(ov)  # the upgrade steps that need the store's key
        if upgraded:
            audit.record("system", CaseDatabaseUpgraded(safe_url(url), tuple(upgraded)))
        return ov

    def close(self) -> None:
        try:
            self.audit.sync_head()  # the last append may have been inside an action's transaction
        finally:
            self.engine.dispose()

    def decrypt(self, rows: Iterable[Any]) -> dict[str, str]:
        """Real identifiers of vault rows (pseudonym, nonce, ciphertext), with the store's key.

        Only a reveal and an approved report call this. Unlike an ingest it never makes a key: a
        missing or different key is an error, not a new key that decrypts nothing.
        """
        try:
            p = Pseudonymiser.for_store(self.store_path, create=False)
        except InputError as exc:
            raise WorkflowError(f"identities cannot be decrypted here: {exc}") from exc
        try:
            return {r.pseudonym: p.decrypt(r.pseudonym, r.nonce, r.ciphertext) for r in rows}
        except InvalidTag as exc:
            raise WorkflowError("identities cannot be decrypted: the key is not the one they were stored with") from exc
