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
# An alert whose evidence alone holds half of a labelled pattern shows a reviewer the scheme, not
# a piece of it; it counts this many times as much as other true alerts. With per-pattern labels on
# the AMLGentex sets, weights of 2, 3 and 5 gave the same queues within 0.02 (bench/triage.py);
# per-scenario labels name no patterns, so every weight stays 1 there.
FINDER_WEIGHT = 3.0


@dataclass(frozen=True)
class Labelled:
    features: pa.Table  # one row per current alert (triage.features)
    truth: dict[str, AlertTruth]  # per alert id, from the labels file

    @property
    def labels(self) -> list[int]:
        """1 for an alert worth a report (its evidence holds a labelled record), per feature row."""
        return [int(self.truth[a].true) for a in self.features.column("alert_id").to_pylist()]

    @property
    def weights(self) -> list[float]:
        """``FINDER_WEIGHT`` for an alert that finds a pattern alone, else 1, per feature row."""
        ids = self.features.column("alert_id").to_pylist()
        return [FINDER_WEIGHT if self.truth[a].found else 1.0 for a in ids]


def labelled(con: duckdb.DuckDBPyConnection, labels: str | Path) -> Labelled:
    return Labelled(feature_table(con), alert_truth(con, CURRENT_ALERTS_SQL, load_labels(labels)))


def train_on(history: Labelled, *, label_source: str, seed: int = 0) -> TriageModel:
    weights = history.weights
    finders = sum(w > 1 for w in weights)
    return train(
        model_inputs(history.features),
        history.labels,
        weights=weights if finders else None,
        descriptions=DESCRIPTIONS,
        seed=seed,
        label_source=label_source,
        label_details={"alerts_finding_a_pattern_alone": finders, "their_weight": FINDER_WEIGHT} if finders else None,
    )
