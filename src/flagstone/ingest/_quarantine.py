"""Quarantined records, protected like accepted ones.

A rejected record is kept so that someone can fix its source, but it holds what the record held:
identifiers in clear. So each quarantine row keeps

- the offending ``value`` only where an accepted record would keep it: a pseudonym when the field
  is one the mapping pseudonymises, the text itself for other mapped fields, nothing for a problem
  with the whole record or with a column the mapping does not read;
- ``parsed``: the record as far as it converted, as JSON, identifiers already pseudonymised;
- ``raw_sealed``: the whole raw text, encrypted (AES-256-GCM) with the key that encrypts the
  identities, bound to its batch and record number. Only :func:`open_raw` decrypts it, and only
  the audited ``flagstone quarantine reveal`` (a supervisor, with a reason) calls that.

Quarantine rows of an older Flagstone kept the raw text in clear (``raw``); :func:`seal_legacy`
encrypts them in place at the next ingest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from flagstone.events import CATALOGUE_COLUMNS, ENTITY_COLUMNS, EVENT_COLUMNS
from flagstone.ingest._mapping import NEVER_PERSONAL, Mapping
from flagstone.ingest._pseudonym import Pseudonymiser
from flagstone.ingest._sources import query_arrow, quote_str

COLUMNS = ("batch_id", "source", "file", "record", "field", "value", "reason", "parsed", "raw_nonce", "raw_sealed")
# Fields whose values an older Flagstone's quarantine may keep in clear when sealing it: never
# pseudonymised by any mapping (the rest may have been, and only the sealed text keeps them now).
_NEVER_IDENTIFIERS = NEVER_PERSONAL | {
    c.name for c in (*EVENT_COLUMNS, *ENTITY_COLUMNS, *CATALOGUE_COLUMNS) if c.type not in ("string", "json")
}


@dataclass(frozen=True)
class Rejected:
    """One quarantined record as found, before its identifiers are protected."""

    record: int
    field: str | None
    value: str | None
    reason: str
    parsed: str | None  # JSON of the converted record (identifiers pseudonymised), if it converted
    raw: str | None


def raw_label(batch_id: int, record: int) -> str:
    """What a sealed raw text is bound to: it decrypts only as this batch's record."""
    return f"flagstone/quarantine/{batch_id}/{record}"


def open_raw(pseudonymiser: Pseudonymiser, batch_id: int, record: int, nonce: bytes, sealed: bytes) -> str:
    """The raw text of a quarantined record. Call only from an audited reveal."""
    return pseudonymiser.unseal(raw_label(batch_id, record), nonce, sealed)


class Quarantine:
    """Writes the quarantine rows of one ingest batch."""

    def __init__(
        self, con: duckdb.DuckDBPyConnection, pseudonymiser: Pseudonymiser, mapping: Mapping, batch_id: int, file: str
    ) -> None:
        self.con = con
        self.pseudonymiser = pseudonymiser
        self.source = mapping.source
        self.batch_id = batch_id
        self.file = file
        self.personal = {s.name for s in mapping.specs() if s.personal}
        self.mapped = {s.name for s in mapping.specs()}

    def shown_value(self, field: str | None, value: str | None) -> str | None:
        if value is None or field is None:
            return None
        if field in self.personal:
            return self.pseudonymiser.pseudonymise(value)
        return value if field in self.mapped else None

    def add(self, rows: list[Rejected]) -> None:
        if not rows:
            return
        labels = [raw_label(self.batch_id, r.record) for r in rows]
        nonces, sealed = self.pseudonymiser.seal_many(labels, [r.raw or "" for r in rows])
        table = pa.table(
            {
                "record": pa.array([r.record for r in rows], pa.int64()),
                "field": pa.array([r.field for r in rows], pa.string()),
                "value": pa.array([self.shown_value(r.field, r.value) for r in rows], pa.string()),
                "reason": pa.array([r.reason for r in rows], pa.string()),
                "parsed": pa.array([r.parsed for r in rows], pa.string()),
                "raw_nonce": pa.array(nonces, pa.binary()),
                "raw_sealed": pa.array(sealed, pa.binary()),
            }
        )
        query_arrow(
            self.con,
            table,
            "q",
            f"INSERT INTO quarantine ({', '.join(COLUMNS)}) SELECT {self.batch_id}, {quote_str(self.source)}, "
            f"{quote_str(self.file)}, record, field, value, reason, parsed, raw_nonce, raw_sealed FROM q",
        )


def has_legacy_raw(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store's quarantine still has the clear ``raw`` column of an older Flagstone."""
    found = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'quarantine' AND column_name = 'raw' "
        "AND database_name = current_database() AND schema_name = 'main'"
    ).fetchall()
    return bool(found[0][0])


def seal_legacy(con: duckdb.DuckDBPyConnection, pseudonymiser: Pseudonymiser) -> int:
    """Encrypt the clear raw text an older Flagstone kept in quarantine, drop its clear values of
    fields that may have been identifiers, and drop the ``raw`` column. Returns the rows sealed.

    DuckDB reuses the freed pages of the file but does not wipe them: the old text may stay in the
    file until they are overwritten. docs/mapping.md says how to copy the store to be sure.
    """
    if not has_legacy_raw(con):
        return 0
    rows: list[tuple[Any, ...]] = con.execute(
        "SELECT batch_id, record, field, raw FROM quarantine WHERE raw IS NOT NULL AND raw_sealed IS NULL"
    ).fetchall()
    if rows:
        labels = [raw_label(b, r) for b, r, _, _ in rows]
        nonces, sealed = pseudonymiser.seal_many(labels, [raw for *_, raw in rows])
        table = pa.table(
            {
                "batch_id": pa.array([b for b, *_ in rows], pa.int64()),
                "record": pa.array([r for _, r, *_ in rows], pa.int64()),
                "raw_nonce": pa.array(nonces, pa.binary()),
                "raw_sealed": pa.array(sealed, pa.binary()),
            }
        )
        query_arrow(
            con,
            table,
            "s",
            "UPDATE quarantine q SET raw_nonce = s.raw_nonce, raw_sealed = s.raw_sealed FROM s "
            "WHERE q.batch_id = s.batch_id AND q.record = s.record",
        )
    keep = ", ".join(quote_str(f) for f in sorted(_NEVER_IDENTIFIERS))
    con.execute(f"UPDATE quarantine SET value = NULL WHERE value IS NOT NULL AND coalesce(field, '') NOT IN ({keep})")
    con.execute("ALTER TABLE quarantine DROP COLUMN raw")
    return len(rows)
