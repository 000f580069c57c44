"""A small detector model for tests of the ``model`` rule kind, trained on made-up candidates
(so that the rule has a real LightGBM model and calibration to score with)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa

from flagstone.rules.kinds.model import DESCRIPTIONS, FEATURE_NAMES
from flagstone.triage.model import train


def tiny_detector(folder: Path, window: str = "3h", seed: int = 0) -> Path:
    """Train and save a detector whose priority rises with payments in and senders; returns the folder."""
    if (folder / "card.json").exists():
        return folder
    rng = np.random.default_rng(seed)
    n = 900
    values = {name: rng.integers(0, 6, n).astype(np.float64) for name in FEATURE_NAMES}
    signal = values["window_events_in"] + values["window_senders"] + rng.normal(0, 1.5, n)
    labels = (signal > 6).astype(int)
    t0 = datetime(2024, 1, 1)
    table = pa.table(
        {
            "alert_id": [f"c{i}" for i in range(n)],
            "rule_id": ["model"] * n,
            "fire_ts": pa.array([t0 + timedelta(hours=i) for i in range(n)], pa.timestamp("us")),
            **values,
        }
    )
    model = train(table, labels, descriptions=DESCRIPTIONS, seed=seed, label_details={"detector": {"window": window}})
    model.save(folder)
    return folder
