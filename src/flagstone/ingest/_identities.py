"""Pseudonyms for the personal values of a batch, and the encrypted identities behind them.

Most identifiers recur (the same account in many payments), so pseudonyms are cached for the
length of one ingest in a temp table: only values the ingest has not met yet are hashed (in DuckDB,
vectorised) and encrypted (in Python, one call per new value). The converting query joins the
cache to replace personal values by their pseudonyms.

The cache holds clear values; it is a temp table (never written to the store) and is dropped when
the ingest ends.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from flagstone.ingest._pseudonym import Pseudonymiser
from flagstone.ingest._sources import query_arrow

PSEUDONYMS = "__fs_pseudonyms"


class Identities:
    def __init__(self, con: duckdb.DuckDBPyConnection, pseudonymiser: Pseudonymiser) -> None:
        self.con = con
        self.pseudonymiser = pseudonymiser
        con.execute(f"CREATE OR REPLACE TEMP TABLE {PSEUDONYMS} (v VARCHAR, p VARCHAR)")

    def add(self, batch: pa.Table, batch_name: str, values_sql: str) -> None:
        """Cache the pseudonyms of the batch's personal values (``values_sql``: distinct values as v).

        The identities new to this ingest are encrypted into ``identities``; the primary key skips
        the ones an earlier ingest stored, without scanning the table.
        """
        new = query_arrow(
            self.con,
            batch,
            batch_name,
            f"INSERT INTO {PSEUDONYMS} SELECT d.v, {Pseudonymiser.sql('d.v')} FROM ({values_sql}) d "
            f"WHERE NOT EXISTS (SELECT 1 FROM {PSEUDONYMS} c WHERE c.v = d.v) RETURNING v, p",
        )
        if not new:
            return
        pseudonyms = [p for _, p in new]
        nonces, ciphertexts = self.pseudonymiser.encrypt_many(pseudonyms, [v for v, _ in new])
        rows = pa.table(
            {
                "pseudonym": pa.array(pseudonyms, pa.string()),
                "nonce": pa.array(nonces, pa.binary()),
                "ciphertext": pa.array(ciphertexts, pa.binary()),
            }
        )
        query_arrow(self.con, rows, "n", "INSERT OR IGNORE INTO identities SELECT * FROM n")

    def close(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {PSEUDONYMS}")
