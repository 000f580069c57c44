"""Pseudonyms for the personal values of a batch, and the encrypted identities behind them.

Most identifiers recur (the same account in many payments), so pseudonyms are cached for the
length of one ingest in a temp table: only values the ingest has not met yet are hashed (in DuckDB,
vectorised) and encrypted (in Python, one call per new value). The cache holds clear values, like
the staging tables do; it is dropped with them at the end of the transaction.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from flagstone.ingest._pseudonym import Pseudonymiser

CACHE = "__fs_pseudonym_cache"
PSEUDONYMS = "__fs_pseudonyms"
CACHE_LIMIT = 2_000_000  # rows; past this the cache restarts rather than grow with the file


class Identities:
    def __init__(self, con: duckdb.DuckDBPyConnection, pseudonymiser: Pseudonymiser) -> None:
        self.con = con
        self.pseudonymiser = pseudonymiser
        self.cached = 0
        con.execute(f"CREATE OR REPLACE TEMP TABLE {CACHE} (v VARCHAR, p VARCHAR)")

    def prepare(self, values_sql: str) -> None:
        """Fill ``__fs_pseudonyms(v, p)`` for the distinct, non-NULL values ``values_sql`` yields (column v).

        Identities new to this ingest are encrypted into ``identities``; the primary key skips
        the ones an earlier ingest stored, without scanning the table.
        """
        hmac = Pseudonymiser.sql("d.v")
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {PSEUDONYMS} AS "
            f"SELECT d.v, CASE WHEN c.p IS NULL THEN {hmac} ELSE c.p END AS p, c.p IS NULL AS new "
            f"FROM ({values_sql}) d "
            f"LEFT JOIN {CACHE} c ON c.v = d.v",
            self.pseudonymiser.sql_params(),
        )
        new = self.con.execute(f"SELECT v, p FROM {PSEUDONYMS} WHERE new").fetchall()
        if not new:
            return
        plain = [v for v, _ in new]
        pseudonyms = [p for _, p in new]
        nonces, ciphertexts = self.pseudonymiser.encrypt_many(pseudonyms, plain)
        table = pa.table(
            {
                "pseudonym": pa.array(pseudonyms, pa.string()),
                "nonce": pa.array(nonces, pa.binary()),
                "ciphertext": pa.array(ciphertexts, pa.binary()),
            }
        )
        self.con.register("__fs_new_identities", table)
        try:
            self.con.execute("INSERT OR IGNORE INTO identities SELECT * FROM __fs_new_identities")
        finally:
            self.con.unregister("__fs_new_identities")
        if self.cached + len(new) > CACHE_LIMIT:
            self.con.execute(f"DELETE FROM {CACHE}")
            self.cached = 0
        self.con.execute(f"INSERT INTO {CACHE} SELECT v, p FROM {PSEUDONYMS} WHERE new")
        self.cached += len(new)

    def close(self) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {CACHE}")
        self.con.execute(f"DROP TABLE IF EXISTS {PSEUDONYMS}")
