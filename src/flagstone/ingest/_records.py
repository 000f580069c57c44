"""Single records (JSON objects, as the scoring service receives them) to canonical events.

The conversion is ingest's own (``_convert.build`` over a JSON-lines source), so a record posted to
the service becomes exactly the event that ``flagstone ingest`` makes of the same line: the same
value maps, time zones, checks, catalogue lookup and pseudonyms. Nothing is written here except
the encrypted identities of new personal values, as in every ingest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from flagstone.errors import InputError
from flagstone.ingest._convert import CATALOGUE_VIEW, build
from flagstone.ingest._identities import PSEUDONYMS, Identities
from flagstone.ingest._mapping import Mapping
from flagstone.ingest._pseudonym import Pseudonymiser
from flagstone.ingest._sources import BATCH_VIEW, RAW, REC, JsonLinesSource, query_arrow

# The pseudonym cache holds clear values in memory; a long-running service empties it after this
# many records.
CACHE_LIMIT = 100_000


@dataclass(frozen=True)
class RecordError:
    index: int  # 0-based position of the record in what was converted
    field: str | None
    value: str | None
    reason: str


class RecordConverter:
    """Converts batches of records of one events mapping on one connection (with its HMAC bound)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, mapping: Mapping, pseudonymiser: Pseudonymiser) -> None:
        if mapping.target != "events":
            raise InputError(
                f"the scoring service takes events; this mapping's target is {mapping.target}",
                path=mapping.path,
                field="target",
            )
        self.con = con
        self.mapping = mapping
        self.source = JsonLinesSource(Path(f"<{mapping.source} records>"))
        self.conversion = build(mapping, self.source)
        self.identities = Identities(con, pseudonymiser)
        self.columns = [c.name for c in self.conversion.columns]
        self._since_clear = 0
        category = mapping.spec("category")
        if category is not None and category.lookup:
            self.refresh_catalogue()

    def refresh_catalogue(self) -> None:
        """The latest catalogue row per item, as ingest uses it; call again after a catalogue load."""
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {CATALOGUE_VIEW} AS "
            "SELECT item, arg_max(category, batch_id) AS category FROM catalogue GROUP BY item"
        )

    def convert(self, records: Sequence[Any]) -> tuple[list[dict[str, Any]], list[RecordError]]:
        """Canonical events (in input order) and, for records with a problem, their first problem."""
        if not records:
            return [], []
        table = pa.table(
            {
                REC: pa.array(range(1, len(records) + 1), pa.int64()),
                RAW: pa.array([json.dumps(r, ensure_ascii=False) for r in records], pa.string()),
            }
        )
        if self.conversion.personal_sql:
            self._since_clear += len(records)
            if self._since_clear > CACHE_LIMIT:
                self.con.execute(f"DELETE FROM {PSEUDONYMS}")
                self._since_clear = 0
            self.identities.add(table, BATCH_VIEW, self.conversion.personal_sql)
        rows = query_arrow(self.con, table, BATCH_VIEW, self.conversion.rows_sql)
        events: list[dict[str, Any]] = []
        errors: list[RecordError] = []
        for rec, err, *values in sorted(rows, key=lambda r: r[0]):
            if err is not None:
                errors.append(RecordError(rec - 1, err["field"], err["value"], err["reason"]))
            else:
                events.append(dict(zip(self.columns, values, strict=True)))
        return events, errors

    def take_identities(self, events: Sequence[dict[str, Any]]) -> list[list[str]]:
        """Nothing: this converter stores identities itself, as a file ingest does."""
        return []

    def stored(self, identities: Sequence[Sequence[str]]) -> None:
        """Nothing to remember (see ``take_identities``)."""
