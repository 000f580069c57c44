"""The triage model: LightGBM on a feature table, validated on time-ordered periods and calibrated,
so that its priority reads as the probability that an alert is worth a report.

Training sorts the labelled alerts by ``fire_ts`` and cuts them into three periods (alerts that
fired at the same instant stay together):

- **fit** (the earliest 60 %): the trees learn here. Positives are rare, so each positive counts
  ``scale_pos_weight`` = (weight of negatives / weight of positives) times; that distorts the raw
  score as a probability, which the calibration undoes.
- **calibration** (the next 20 %): early stopping on its AUC picks the number of trees, and a
  curve fitted on it (``calibration.py``: isotonic with enough labels, Platt otherwise) maps the
  raw score to a probability.
- **test** (the newest 20 %): never seen by either; the card's validation figures come from here.

The model shipped is the one measured: it is not refitted on all periods afterwards. Training is
reproducible: LightGBM runs ``deterministic``, row-wise, on a fixed number of threads, with one
seed, so training twice on the same table gives byte-identical model text and the same version id.

A model is a directory of plain files, never a pickle: ``model.txt`` (LightGBM's text),
``inputs.json`` (features, their sentences, the rule categories), ``calibration.json`` and
``card.json``. The version id is the SHA-256 of the first three; loading recomputes it.

Nothing here reads or writes cases: a model orders and explains, people decide.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from flagstone.errors import InputError, ModelError
from flagstone.triage import calibration as calibrations
from flagstone.triage import drift, metrics
from flagstone.triage.calibration import Calibration
from flagstone.triage.scores import Scores
from flagstone.triage.table import EPOCH, RULE, Inputs, check_name, check_sentence, read

FloatArray = npt.NDArray[np.float64]
Values: TypeAlias = Sequence[float] | Sequence[int] | Sequence[bool] | npt.NDArray[Any] | pa.Array | pa.ChunkedArray

PERIODS = (("fit", 0.6), ("calibration", 0.8), ("test", 1.0))  # cumulative share of alerts by time
FILES = ("model.txt", "inputs.json", "calibration.json")  # hashed into the version id; card.json is not
THREADS = 1  # fixed: part of what makes the model text byte-identical run to run


def _lightgbm() -> ModuleType:
    try:
        import lightgbm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ModelError("the triage model needs LightGBM: pip install 'flagstone[triage]'") from None
    return lightgbm


def _params(seed: int, scale_pos_weight: float) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "max_depth": 5,
        "min_data_in_leaf": 20,
        "min_data_per_group": 20,
        "lambda_l2": 1.0,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "scale_pos_weight": scale_pos_weight,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": THREADS,
        "verbosity": -1,
    }


def _numbers(values: Values, n: int, what: str) -> FloatArray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf" and values.ndim == 1:
        if len(values) != n:
            raise InputError(f"{len(values)} {what} for {n} alerts", field=what, value=len(values))
        fast = values.astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(fast))
        if len(bad):
            raise InputError(f"row {int(bad[0])}: expected a finite number", field=what, value=float(fast[bad[0]]))
        return fast
    if isinstance(values, pa.Array | pa.ChunkedArray):
        items: list[Any] = values.to_pylist()
    elif isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise InputError(f"expected a sequence of {n} numbers", field=what, value=type(values).__name__)
    else:
        items = list(values)
    if len(items) != n:
        raise InputError(f"{len(items)} {what} for {n} alerts", field=what, value=len(items))
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(items):
        if isinstance(v, str | bytes) or not isinstance(v, int | float | np.integer | np.floating | np.bool_):
            raise InputError(f"row {i}: expected a number, got {type(v).__name__}", field=what, value=v)
        try:
            out[i] = float(v)
        except OverflowError:
            out[i] = math.inf
        if not math.isfinite(out[i]):
            raise InputError(f"row {i}: expected a finite number", field=what, value=v)
    return out


def _labels(labels: Values, n: int) -> FloatArray:
    y = _numbers(labels, n, "labels")
    bad = np.flatnonzero((y != 0) & (y != 1))
    if len(bad):
        raise InputError(f"row {int(bad[0])}: a label is 0 or 1", field="labels", value=float(y[bad[0]]))
    return y


def _weights(weights: Values | None, n: int) -> FloatArray:
    if weights is None:
        return np.ones(n)
    w = _numbers(weights, n, "weights")
    bad = np.flatnonzero(w < 0)
    if len(bad):
        raise InputError(f"row {int(bad[0])}: a weight is 0 or more", field="weights", value=float(w[bad[0]]))
    return w


_NEGLIGIBLE = 1e-9  # a class weighing less than this share of a period counts as absent


def _iso(micros: int) -> str:
    return (EPOCH + timedelta(microseconds=micros)).isoformat()


def _periods(fire_us: npt.NDArray[np.int64]) -> list[tuple[str, slice]]:
    """Cuts of the time-sorted alerts at the shares of ``PERIODS``, never between equal times."""
    n = len(fire_us)
    cuts, start = [], 0
    for name, share in PERIODS:
        end = n if share >= 1 else max(start, math.ceil(share * n))
        while 0 < end < n and fire_us[end] == fire_us[end - 1]:
            end += 1
        cuts.append((name, slice(start, end)))
        start = end
    return cuts


def _summary(y: FloatArray, w: FloatArray, fire_us: npt.NDArray[np.int64]) -> dict[str, Any]:
    return {
        "alerts": len(y),
        "positives": int(y.sum()),
        "negatives": int(len(y) - y.sum()),
        "from": _iso(int(fire_us.min())) if len(y) else None,
        "to": _iso(int(fire_us.max())) if len(y) else None,
        "positive_weight": float(np.sum(w * y)),
        "negative_weight": float(np.sum(w * (1 - y))),
    }


def _version(files: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for name in FILES:
        digest.update(name.encode() + b"\0" + len(files[name]).to_bytes(8, "big") + files[name])
    return "sha256:" + digest.hexdigest()


def _json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _booster(text: str, inputs: int) -> Any:
    lgb = _lightgbm()
    try:
        # LightGBM's parser aborts the process on some malformed text (a truncated tree): only text
        # whose hash the card names reaches it, so only a file forged together with its card could.
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ModelError(f"model.txt is not a LightGBM model: {exc}") from None
    if booster.num_feature() != inputs:
        raise ModelError(f"model.txt has {booster.num_feature()} inputs, inputs.json names {inputs}")
    return booster


def _raw(booster: Any, matrix: FloatArray) -> FloatArray:
    if len(matrix) == 0:
        return np.empty(0)
    return np.asarray(booster.predict(matrix, raw_score=True, num_threads=THREADS), dtype=np.float64)


@dataclass(frozen=True)
class _Parts:
    text: str
    features: tuple[str, ...]
    sentences: dict[str, str]
    rules: tuple[str, ...]
    calibration: Calibration

    def files(self) -> dict[str, bytes]:
        """The hashed files, as saved."""
        inputs = {
            "features": [{"name": f, "sentence": self.sentences[f]} for f in self.features],
            "rules": list(self.rules),
        }
        return {
            "model.txt": self.text.encode(),
            "inputs.json": _json_bytes(inputs),
            "calibration.json": _json_bytes(self.calibration.to_json()),
        }


class TriageModel:
    """A trained, calibrated model and its card. Build one with :func:`train` or :meth:`load`."""

    def __init__(self, parts: _Parts, card: dict[str, Any]) -> None:
        self._parts = parts
        self.card = card
        self._booster = _booster(parts.text, 1 + len(parts.features))
        self._rule_code = {rule: float(i) for i, rule in enumerate(parts.rules)}

    @property
    def version(self) -> str:
        return str(self.card["model_version"])

    @property
    def features(self) -> tuple[str, ...]:
        return self._parts.features

    @property
    def sentences(self) -> Mapping[str, str]:
        return dict(self._parts.sentences)

    @property
    def calibration(self) -> Calibration:
        return self._parts.calibration

    def _matrix(self, inputs: Inputs) -> FloatArray:
        codes = np.array([self._rule_code.get(r, math.nan) for r in inputs.rule_ids], dtype=np.float64)
        return np.column_stack([codes, inputs.values]) if len(codes) else np.empty((0, 1 + len(inputs.names)))

    def _own(self, features: pa.Table) -> pa.Table:
        """``features`` with only the model's columns when it holds them all (a store's feature table
        holds more than a model reads); otherwise as given, for ``read`` to say what is missing."""
        if not isinstance(features, pa.Table):
            return features
        wanted = ["alert_id", "rule_id", *self.features]
        if set(wanted) <= set(features.column_names) and len(set(features.column_names)) == features.num_columns:
            return features.select(wanted)
        return features

    def raw(self, features: pa.Table) -> FloatArray:
        """The raw score (log-odds) of every alert of ``features``."""
        inputs = read(self._own(features), expected=self.features, timed=False)
        return _raw(self._booster, self._matrix(inputs))

    def score(self, features: pa.Table) -> Scores:
        """Priorities and per-input contributions (TreeSHAP, ``pred_contrib``) for every alert of
        ``features``, which must hold exactly the model's features. A rule the model never saw is
        scored as an unknown category. Columns the model does not read are left aside."""
        inputs = read(self._own(features), expected=self.features, timed=False)
        matrix = self._matrix(inputs)
        k = 1 + len(self.features)
        if len(matrix):
            contrib = np.asarray(
                self._booster.predict(matrix, pred_contrib=True, num_threads=THREADS), dtype=np.float64
            )
            raw = _raw(self._booster, matrix)
            base = float(contrib[0, -1])
            contrib = contrib[:, :-1]
        else:
            contrib, raw = np.empty((0, k)), np.empty(0)
            unknown = np.full((1, k), math.nan)
            base = float(self._booster.predict(unknown, pred_contrib=True, num_threads=THREADS)[0, -1])
        calibration = self.calibration
        priority = calibration(raw)
        base_priority = float(calibration(base)[()])
        points = contrib * calibration.secant(raw, base)[:, None]
        return Scores(
            model_version=self.version,
            alert_ids=inputs.alert_ids,
            rule_ids=inputs.rule_ids,
            inputs=(RULE, *self.features),
            values=inputs.values,
            priority=priority,
            raw=raw,
            base=base,
            base_priority=base_priority,
            contributions=contrib,
            points=points,
            sentences=self.sentences,
        )

    def save(self, directory: str | Path) -> Path:
        """Write the model's four files into ``directory`` (made if needed); the same model always
        gives the same bytes. A directory holding another model is refused: a version is never
        overwritten."""
        out = Path(directory)
        card_path = out / "card.json"
        if card_path.exists():
            try:
                other = json.loads(card_path.read_text(encoding="utf-8")).get("model_version")
            except (OSError, ValueError, AttributeError):
                other = "unreadable"
            if other != self.version:
                raise ModelError(f"{out} already holds model {other}; save {self.version} elsewhere")
        out.mkdir(parents=True, exist_ok=True)
        for name, data in self.files().items():
            (out / name).write_bytes(data)
        return out

    def files(self) -> dict[str, bytes]:
        """The model's four files by name, as ``save`` writes them (and ``from_files`` reads them)."""
        return {**self._parts.files(), "card.json": _json_bytes(self.card)}

    @classmethod
    def load(cls, directory: str | Path) -> TriageModel:
        """The model saved in ``directory``, after checking that its files are the ones its card
        names (the version id is their hash)."""
        src = Path(directory)
        files: dict[str, bytes] = {}
        for name in (*FILES, "card.json"):
            try:
                files[name] = (src / name).read_bytes()
            except OSError as exc:
                raise ModelError(f"{src / name}: cannot read the model file ({exc.strerror or exc})") from None
        return cls.from_files(files, src)

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], origin: str | Path = "the model") -> TriageModel:
        """The model whose files (by name) are ``files``, checked as ``load`` checks a folder;
        ``origin`` names where they came from in errors."""
        src = Path(origin)
        missing = [name for name in (*FILES, "card.json") if name not in files]
        if missing:
            raise ModelError(f"{src}: the model lacks {', '.join(missing)}")
        try:
            card = json.loads(files["card.json"])
        except ValueError as exc:
            raise ModelError(f"{src / 'card.json'}: not JSON ({exc})") from None
        if not isinstance(card, dict) or card.get("model_version") != _version(files):
            raise ModelError(f"{src}: the model files are not the ones its card.json names (changed since saved?)")
        try:
            inputs = json.loads(files["inputs.json"])
            calibration = calibrations.from_json(json.loads(files["calibration.json"]))
            text = files["model.txt"].decode()
        except ValueError as exc:  # UnicodeDecodeError is one too
            raise ModelError(f"{src}: a model file is not valid ({exc})") from None
        try:
            features = tuple(str(f["name"]) for f in inputs["features"])
            sentences = {str(f["name"]): check_sentence(str(f["name"]), f["sentence"]) for f in inputs["features"]}
            rules = tuple(str(r) for r in inputs["rules"])
            for name in features:
                check_name(name)
            if len(set(features)) != len(features) or len(set(rules)) != len(rules):
                raise TypeError("a feature or rule is named twice")
        except (KeyError, TypeError, InputError) as exc:
            raise ModelError(f"{src / 'inputs.json'}: not a list of features and rules ({exc})") from None
        return cls(_Parts(text, features, sentences, rules, calibration), card)


def train(
    features: pa.Table,
    labels: Values,
    *,
    descriptions: Mapping[str, str],
    weights: Values | None = None,
    seed: int = 0,
    label_source: str = "labelled history",
    label_details: Mapping[str, Any] | None = None,
    trained_by: str | None = None,
    trained_at: datetime | None = None,
    max_rounds: int = 400,
    early_stopping_rounds: int = 40,
) -> TriageModel:
    """Train, calibrate and measure a model on the labelled alerts of ``features``.

    ``labels`` holds 1 (worth a report) or 0 per row; ``weights`` (optional, >= 0) the weight of
    each label, e.g. inverse-propensity weights for labels learnt from reviewers; ``label_details``
    go into the card's ``labels`` as they are. ``descriptions``
    maps every feature to its sentence template with ``{value}``. ``trained_by`` defaults to the
    operating-system user, ``trained_at`` to now; neither enters the version id.
    """
    lgb = _lightgbm()
    inputs = read(features, timed=True)
    n = len(inputs.alert_ids)
    if n == 0:
        raise InputError("the feature table is empty: no alerts to train on")
    y = _labels(labels, n)
    w = _weights(weights, n)
    if len(set(inputs.alert_ids)) != n:
        twice = next(a for a, count in Counter(inputs.alert_ids).items() if count > 1)
        raise InputError(f"alert {twice!r} appears more than once", field="alert_id", value=twice)
    if not isinstance(descriptions, Mapping):
        raise InputError("descriptions map each feature to its sentence", field="descriptions")
    missing = [f for f in inputs.names if f not in descriptions]
    if missing:
        raise InputError(f"no sentence for feature(s) {', '.join(missing)}", field="descriptions", value=missing)
    sentences = {f: check_sentence(f, descriptions[f]) for f in inputs.names}
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        raise InputError("the seed is an integer from 0 to 2**31 - 1", field="seed", value=seed)

    assert inputs.fire_us is not None
    order = np.lexsort((np.array(inputs.alert_ids, dtype=object).astype(str), inputs.fire_us))
    fire_us, y, w = inputs.fire_us[order], y[order], w[order]
    rule_ids = [inputs.rule_ids[i] for i in order]
    rules = tuple(sorted(set(rule_ids)))
    codes = {r: float(i) for i, r in enumerate(rules)}
    matrix = np.column_stack([np.array([codes[r] for r in rule_ids]), inputs.values[order]])

    periods = _periods(fire_us)
    summaries = {}
    for name, part in periods:
        summary = _summary(y[part], w[part], fire_us[part])
        summaries[name] = summary
        # A class whose weight is a vanishing share of the period's is as good as absent: its base
        # rate would round to 0 or 1 and nothing could be validated on it.
        least = _NEGLIGIBLE * (summary["positive_weight"] + summary["negative_weight"])
        if summary["positive_weight"] <= least or summary["negative_weight"] <= least:
            raise InputError(
                f"the {name} period ({summary['alerts']} alerts, {summary['from']} to {summary['to']}) "
                f"holds {summary['positives']} positive and {summary['negatives']} negative labels "
                "(of weight > 0, and more than a billionth of the period's): time-ordered validation needs "
                "both in each period; give more labelled history",
                field="labels",
            )
    fit, cal, test = (part for _, part in periods)
    mean_w = {name: float(np.mean(w[part])) for name, part in periods}
    spw = summaries["fit"]["negative_weight"] / summaries["fit"]["positive_weight"]
    params = _params(seed, spw)
    names = [RULE, *inputs.names]
    dataset = lgb.Dataset(
        matrix[fit],
        label=y[fit],
        weight=w[fit] / mean_w["fit"],
        feature_name=names,
        categorical_feature=[0],
        params={"verbosity": -1},
        free_raw_data=False,
    )
    valid = lgb.Dataset(matrix[cal], label=y[cal], weight=w[cal] / mean_w["calibration"], reference=dataset)
    booster = lgb.train(
        params,
        dataset,
        num_boost_round=max_rounds,
        valid_sets=[valid],
        valid_names=["calibration"],
        callbacks=[lgb.early_stopping(early_stopping_rounds, verbose=False)],
    )
    rounds = int(booster.best_iteration) if booster.best_iteration > 0 else int(booster.current_iteration())
    text = booster.model_to_string(num_iteration=rounds)
    fitted = _booster(text, len(names))
    calibration = calibrations.fit(_raw(fitted, matrix[cal]), y[cal], w[cal])
    parts = _Parts(text, inputs.names, sentences, rules, calibration)

    raw_test = _raw(fitted, matrix[test])
    p_test = calibration(raw_test)
    gain = np.asarray(fitted.feature_importance(importance_type="gain"), dtype=np.float64)[1:]
    top = [inputs.names[j] for j in np.argsort(-gain, kind="stable")[: drift.TOP_FEATURES] if gain[j] > 0]
    column = {f: j for j, f in enumerate(inputs.names)}
    drift_reference = {
        "alerts": "labelled alerts it was trained on (all three periods)",
        "priority": drift.reference(calibration(_raw(fitted, matrix))),
        "features": {f: drift.reference(inputs.values[order][:, column[f]]) for f in top},
    }
    yt, wt = y[test], w[test]
    figures = {
        "period": {"from": summaries["test"]["from"], "to": summaries["test"]["to"]},
        "alerts": summaries["test"]["alerts"],
        "positives": summaries["test"]["positives"],
        "auc": metrics.auc(raw_test, yt, wt),
        "average_precision": metrics.average_precision(raw_test, yt, wt),
        "precision_top_10_percent": metrics.precision_at_top(raw_test, yt, wt, 0.1),
        "base_rate": float(np.sum(wt * yt) / np.sum(wt)),
        "calibration_error": metrics.calibration_error(p_test, yt, wt),
        "weighted": weights is not None,
    }
    figures = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in figures.items()}
    when = (trained_at or datetime.now(UTC)).astimezone(UTC)
    who = trained_by if trained_by is not None else _os_user()
    unknown = np.isnan(inputs.values).mean(axis=0) if n else np.zeros(len(inputs.names))
    card: dict[str, Any] = {
        "model_version": _version(parts.files()),
        "trained_by": who,
        "trained_at": when.isoformat(),
        "lightgbm_version": str(lgb.__version__),
        "training_data": {
            "alerts": n,
            "from": _iso(int(fire_us.min())),
            "to": _iso(int(fire_us.max())),
            "rules": dict(sorted(Counter(rule_ids).items())),
            "periods": summaries,
        },
        "labels": {
            "source": label_source,
            "positives": int(y.sum()),
            "negatives": int(n - y.sum()),
            "weights": "given (e.g. inverse propensity)" if weights is not None else "none (all 1)",
            **(label_details or {}),
        },
        "features": [
            {"name": f, "sentence": sentences[f], "unknown_share": float(unknown[j])}
            for j, f in enumerate(inputs.names)
        ],
        "training": {
            "algorithm": "LightGBM gradient-boosted trees, binary objective",
            "categorical": [RULE],
            "rounds": rounds,
            "params": params,
            "imbalance": "scale_pos_weight = negative / positive label weight in the fit period",
            "calibration": {**calibration.to_json(), "period": "calibration"},
        },
        "validation": figures,
        "drift_reference": drift_reference,
        "known_limits": _limits(summaries, figures, label_source),
    }
    return TriageModel(parts, card)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _limits(summaries: Mapping[str, Any], figures: Mapping[str, Any], label_source: str) -> list[str]:
    cal = summaries["calibration"]
    limits = [
        "The priority orders the review queue and says why; it never closes, dismisses, escalates or files a case.",
        f"Trained on alerts that fired from {summaries['fit']['from']} to {summaries['test']['to']}; "
        "rules or behaviour not seen in that period are not validated, and the population drifts.",
        f"Labels come from {label_source}: the model learns what those labels call worth a report, "
        "including their blind spots (alerts nobody reviewed are not labelled).",
        f"The priority is calibrated on {cal['alerts']} alerts ({cal['positives']} positive) from {cal['from']} "
        f"to {cal['to']}: it is a probability for alerts like those, never finer than 1/{cal['alerts'] + 1}.",
        "The newest 20 % of the labelled alerts measure the model and are not learnt from.",
        "Explanations share out the change from the base priority in proportion to each input's "
        "log-odds contribution (TreeSHAP): exact in sum, an approximation per feature.",
    ]
    if figures["positives"] < 30:
        limits.append(
            f"The validation figures rest on {figures['positives']} positive alerts only: treat them as rough."
        )
    return limits
