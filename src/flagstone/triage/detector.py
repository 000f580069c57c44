"""Training the model-based detector (the ``model`` rule kind): every account and window of the
store is a candidate, labelled true when its events hold a labelled record, and a triage model is
trained on the candidates' features. The window goes in the model card, so a rule using the model
reads candidates of the length it was trained on."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from flagstone.engines.detector import candidate_sql
from flagstone.evaluate import Labels, load_labels
from flagstone.rules.kinds.model import DESCRIPTIONS, SCHEMA, feature_rows
from flagstone.rules.reader import parse_duration
from flagstone.triage.model import TriageModel, train

ALL_EVENTS = "(SELECT source, event_id, ts, actor, counterparty, amount, kind, channel FROM events)"


def candidate_table(con: duckdb.DuckDBPyConnection, window_us: int) -> pa.Table:
    """Every account and window of the store's events, with its features (``SCHEMA``)."""
    return con.sql(candidate_sql(ALL_EVENTS, window_us)).to_arrow_table().select(SCHEMA.names).cast(SCHEMA)


def labelled_keys(labels: Labels) -> set[tuple[str, str]]:
    """The (source, event_id) of every labelled record that means laundering."""
    table = labels.table
    if labels.format == "scenario":
        mask = [v == "suspicious" for v in table.column("label").to_pylist()]
        table = table.filter(pa.array(mask))
    return set(zip(table.column("source").to_pylist(), table.column("event_id").to_pylist(), strict=True))


def candidate_labels(table: pa.Table, keys: set[tuple[str, str]]) -> list[int]:
    return [
        int(any((s, e) in keys for s, e in zip(srcs, ids, strict=True)))
        for srcs, ids in zip(
            table.column("evidence_sources").to_pylist(), table.column("evidence").to_pylist(), strict=True
        )
    ]


def train_detector(
    con: duckdb.DuckDBPyConnection, labels: str | Path, window: str, *, seed: int = 0
) -> tuple[TriageModel, list[int]]:
    """The detector model trained on the store's candidates and a labels file; and the labels."""
    window_us = parse_duration(window)
    table = candidate_table(con, window_us)
    y = candidate_labels(table, labelled_keys(load_labels(labels)))
    model = train(
        feature_rows(table),
        y,
        descriptions=DESCRIPTIONS,
        seed=seed,
        label_source=f"labels file {Path(labels).name}, per account and {window} window",
        label_details={"detector": {"window": window.strip(), "candidates": table.num_rows}},
    )
    return model, y
