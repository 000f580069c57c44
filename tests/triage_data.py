"""Synthetic feature tables for the triage model tests, with a planted signal and known truth.

Each alert has two informative features (``new_payers``, a count, and ``amount_z``), one feature of
pure noise with some values unknown, and a rule that shifts the odds. The label is drawn from the
true probability ``sigmoid(-3 + 0.6 new_payers + amount_z + 0.5 [rule b])``, which the tests keep
to measure calibration against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SENTENCES = {
    "new_payers": "the receiving account was paid by {value:.0f} accounts it had never dealt with before",
    "amount_z": "the amount is {value:.1f} standard deviations above the account's usual",
    "noise": "a number unrelated to anything was {value:.2f}",
}


@dataclass(frozen=True)
class Synthetic:
    table: pa.Table
    labels: list[int]
    truth: npt.NDArray[np.float64]  # the probability each label was drawn with


def synthetic(n: int, seed: int, *, start: datetime = T0, signal: bool = True, prefix: str = "a") -> Synthetic:
    """``n`` alerts one minute apart from ``start``; ``signal=False`` draws labels at a fixed rate."""
    rng = np.random.default_rng(seed)
    new_payers = rng.poisson(3, n).astype(float)
    amount_z = rng.normal(size=n)
    noise = rng.normal(size=n)
    noise[rng.random(n) < 0.2] = np.nan
    rules = rng.choice(["aml.graph.fan_in", "aml.structuring"], n)
    logit = -3 + 0.6 * new_payers + amount_z + 0.5 * (rules == "aml.structuring")
    truth = 1 / (1 + np.exp(-logit)) if signal else np.full(n, 0.25)
    labels = (rng.random(n) < truth).astype(int).tolist()
    table = pa.table(
        {
            "alert_id": [f"{prefix}{i}" for i in range(n)],
            "rule_id": rules.tolist(),
            "fire_ts": pa.array([start + timedelta(minutes=i) for i in range(n)], pa.timestamp("us", tz="UTC")),
            "new_payers": pa.array(new_payers, pa.float64()),
            "amount_z": pa.array(amount_z, pa.float64()),
            "noise": pa.array(noise, pa.float64(), from_pandas=True),
        }
    )
    return Synthetic(table, labels, truth)


def later(data: Synthetic) -> datetime:
    """A start after the last alert of ``data``."""
    last = data.table.column("fire_ts")[-1].as_py()
    assert isinstance(last, datetime)
    return last + timedelta(days=1)
