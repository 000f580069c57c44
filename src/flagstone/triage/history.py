"""Labelled history: the store's alerts with their features and what a labels file says of them,
and a model trained on that. One place for what ``triage train``, ``triage evaluate`` and the
demo all do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from flagstone.evaluate import CURRENT_ALERTS_SQL, AlertTruth, alert_truth, load_labels
from flagstone.triage.features import FEATURES, feature_table, model_inputs
from flagstone.triage.model import TriageModel, train

DESCRIPTIONS = {f.name: f.sentence for f in FEATURES}


@dataclass(frozen=True)
class Labelled:
    features: pa.Table  # one row per current alert (triage.features)
    truth: dict[str, AlertTruth]  # per alert id, from the labels file

    @property
    def labels(self) -> list[int]:
        """1 for an alert worth a report (its evidence holds a labelled record), per feature row."""
        return [int(self.truth[a].true) for a in self.features.column("alert_id").to_pylist()]


def labelled(con: duckdb.DuckDBPyConnection, labels: str | Path) -> Labelled:
    return Labelled(feature_table(con), alert_truth(con, CURRENT_ALERTS_SQL, load_labels(labels)))


def train_on(history: Labelled, *, label_source: str, seed: int = 0) -> TriageModel:
    return train(
        model_inputs(history.features), history.labels, descriptions=DESCRIPTIONS, seed=seed, label_source=label_source
    )
