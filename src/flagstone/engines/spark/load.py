"""Spark schemas of the canonical tables, and views built from in-memory rows (tests, small jobs).

Timestamps are TIMESTAMP_NTZ (the store's are UTC without a zone) so that values round-trip to
Python exactly whatever the session time zone; decimals keep the store's DECIMAL(18,4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from flagstone.events import ENTITY_COLUMNS, EVENT_COLUMNS, Column


def _spark_type(column: Column) -> Any:
    from pyspark.sql import types as t

    return {
        "string": t.StringType(),
        "decimal": t.DecimalType(18, 4),
        "timestamp": t.TimestampNTZType(),
        "boolean": t.BooleanType(),
        "json": t.StringType(),  # JSON text, read with get_json_object
    }[column.type]


def _schema(columns: Sequence[Column], extra: Sequence[tuple[str, Any]] = ()) -> Any:
    from pyspark.sql import types as t

    fields = [t.StructField(c.name, _spark_type(c), nullable=not c.required) for c in columns]
    fields += [t.StructField(name, typ, nullable=False) for name, typ in extra]
    return t.StructType(fields)


def events_schema() -> Any:
    return _schema(EVENT_COLUMNS)


def entities_schema() -> Any:
    from pyspark.sql import types as t

    return _schema(ENTITY_COLUMNS, [("source", t.StringType()), ("batch_id", t.LongType())])


def create_views(
    spark: Any,
    events: Iterable[Mapping[str, Any]],
    entities: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    events_view: str = "events",
    entities_view: str = "entities",
) -> None:
    """Replace the two temporary views with these rows (entities as one batch, source ``t``)."""
    event_rows = [tuple(e.get(c.name) for c in EVENT_COLUMNS) for e in events]
    spark.createDataFrame(event_rows, events_schema()).createOrReplaceTempView(events_view)
    entity_rows = [
        (*tuple(name if c.name == "entity" else ent.get(c.name) for c in ENTITY_COLUMNS), "t", 1)
        for name, ent in (entities or {}).items()
    ]
    spark.createDataFrame(entity_rows, entities_schema()).createOrReplaceTempView(entities_view)
