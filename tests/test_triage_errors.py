"""Bad input to the triage model is refused with a FlagstoneError that says what and where; hostile
tables, labels and model files never crash it any other way."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from triage_data import SENTENCES, synthetic

from flagstone.errors import FlagstoneError, InputError, ModelError
from flagstone.triage.model import FILES, TriageModel, _version, train

DATA = synthetic(400, seed=4)


@pytest.fixture(scope="module")
def model() -> TriageModel:
    return train(DATA.table, DATA.labels, descriptions=SENTENCES)


def refused(match: str, table: Any = DATA.table, labels: Any = DATA.labels, **kw: Any) -> InputError:
    kw.setdefault("descriptions", SENTENCES)
    with pytest.raises(InputError, match=match) as info:
        train(table, labels, **kw)
    return info.value


def test_empty_one_class_and_unlabelled_input_is_refused() -> None:
    refused("empty", table=DATA.table.slice(0, 0), labels=[])
    refused(r"the fit period \(240 alerts.*0 positive", labels=[0] * 400)
    refused(r"holds 240 positive and 0 negative", labels=[1] * 400)
    e = refused("row 7: expected a finite number", labels=[*DATA.labels[:7], math.nan, *DATA.labels[8:]])
    assert e.field == "labels"
    refused("row 3: expected a number, got NoneType", labels=[*DATA.labels[:3], None, *DATA.labels[4:]])
    refused("row 3: a label is 0 or 1", labels=[*DATA.labels[:3], 2, *DATA.labels[4:]])
    refused("row 0: expected a number, got str", labels=["1", *DATA.labels[1:]])
    refused("399 labels for 400 alerts", labels=DATA.labels[:-1])
    refused("expected a sequence", labels="0101")
    refused("row 2: expected a finite number", labels=np.array([0, 1, np.nan, *DATA.labels[3:]]))
    refused("row 1: a label is 0 or 1", labels=np.array([0, 5, *DATA.labels[2:]]))
    refused("3 labels for 400 alerts", labels=np.array([0, 1, 1]))
    refused("row 0: expected a number, got str", labels=np.array(["1", *map(str, DATA.labels[1:])]))
    refused("401 weights for 400 alerts", weights=[1.0] * 401)
    refused("row 5: a weight is 0 or more", weights=[1.0] * 5 + [-1.0] + [1.0] * 394)
    refused("row 0: expected a finite number", weights=[math.inf] + [1.0] * 399)
    refused("row 1: expected a finite number", weights=[1, 10**400] + [1.0] * 398)
    # Positives only in the earliest alerts: the later periods cannot validate anything.
    refused("the calibration period .* 0 positive", labels=[1] * 100 + [0] * 300)
    refused("negative labels \\(of weight > 0, and more than a billionth", weights=[0.0] * 400)


def test_bad_tables_are_refused_naming_the_column() -> None:
    t = DATA.table
    refused("expected a pyarrow Table", table={"alert_id": []})
    refused("no 'fire_ts' column", table=t.drop_columns(["fire_ts"]))
    e = refused("appears more than once", table=t.set_column(0, "alert_id", pa.array(["a"] * 400)))
    assert e.value == "a"
    refused("row 2 has no rule_id", table=t.set_column(1, "rule_id", pa.array(["r", "r", None] + ["r"] * 397)))
    refused("expected a timestamp column", table=t.set_column(2, "fire_ts", pa.array(["2026-01-01"] * 400)))
    refused("columns appear more than once: noise", table=t.append_column("noise", pa.array([0.0] * 400)))
    inf = pa.array([1.0] * 9 + [math.inf] + [1.0] * 390)
    e = refused(r"alert 'a9' \(row 9\) has an infinite value", table=t.set_column(4, "amount_z", inf))
    assert e.field == "amount_z"
    refused("expected a float64 feature column, got string", table=t.set_column(5, "noise", pa.array(["x"] * 400)))
    refused("letters, digits and '_'", table=t.rename_columns([*t.column_names[:5], "no-ise"]))
    religion = t.rename_columns([*t.column_names[:5], "religion_score"])
    refused("protected attribute", table=religion, descriptions={**SENTENCES, "religion_score": "{value}"})
    same_time = t.set_column(2, "fire_ts", pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 400))
    refused(r"the calibration period \(0 alerts", table=same_time)
    far = pa.array([2**62] * 400, pa.timestamp("us", tz="UTC"))
    refused(r"row 0: fire_ts is outside the years 1 to 9999", table=t.set_column(2, "fire_ts", far))


def test_bad_sentences_and_settings_are_refused() -> None:
    refused("no sentence for feature\\(s\\) noise", descriptions={k: SENTENCES[k] for k in ("new_payers", "amount_z")})
    for bad in ("{value:d} accounts", "{other} accounts", "accounts", "{value} and {value}", "{value.real}", ""):
        e = refused("sentence", descriptions={**SENTENCES, "noise": bad})
        assert e.field == "noise"
    refused("the seed is an integer", seed=-1)
    refused("the seed is an integer", seed=1.5)


def test_integer_and_null_feature_columns_are_read_as_numbers(model: TriageModel) -> None:
    t = DATA.table.set_column(3, "new_payers", DATA.table.column("new_payers").cast(pa.int64()))
    t = t.set_column(5, "noise", pa.nulls(400))
    assert len(model.score(t)) == 400


def test_a_model_file_that_is_not_lightgbm_is_refused(model: TriageModel, tmp_path: Path) -> None:
    model.save(tmp_path)
    (tmp_path / "model.txt").write_text("tree\nversion=v4\nnot a model\n")
    files = {name: (tmp_path / name).read_bytes() for name in FILES}
    card = json.loads((tmp_path / "card.json").read_text())
    (tmp_path / "card.json").write_text(json.dumps({**card, "model_version": _version(files)}))
    with pytest.raises(ModelError, match="not a LightGBM model"):
        TriageModel.load(tmp_path)


T0 = datetime(2026, 1, 1, tzinfo=UTC)
anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)


def rarely(draw: st.DrawFn) -> bool:
    """True one time in eight: each hostile corner is rare, so that some tables are good enough to
    train on and the model's own paths meet odd values too."""
    return draw(st.integers(0, 7)) == 0


@st.composite
def hostile_tables(draw: st.DrawFn) -> tuple[pa.Table, list[Any], list[Any] | None, dict[str, Any]]:
    """Mostly well-formed tables with hostile corners: few rows, one class, equal times, unknown
    and infinite values, odd names and types, labels and weights of any kind and length."""
    n = draw(st.integers(0, 80))
    modulo = draw(st.integers(1, 80)) if rarely(draw) else n + 1
    rules = st.sampled_from(["r1", "r2", None]) if rarely(draw) else st.sampled_from(["r1", "r2"])
    step = draw(st.integers(0, 5)) if rarely(draw) else 60
    columns: dict[str, Any] = {
        "alert_id": pa.array([f"a{i % modulo}" for i in range(n)], pa.string()),
        "rule_id": pa.array(draw(st.lists(rules, min_size=n, max_size=n)), pa.string()),
        "fire_ts": pa.array([T0 + timedelta(seconds=step * i) for i in range(n)], pa.timestamp("us", tz="UTC")),
    }
    if rarely(draw):  # any instant a timestamp column can hold, most of which no datetime can
        instants = st.integers(-(2**63) + 1, 2**63 - 1) | st.integers(0, 10**15)
        columns["fire_ts"] = pa.array(draw(st.lists(instants, min_size=n, max_size=n)), pa.timestamp("us"))
    names = ["f1", "f2"]
    if rarely(draw):
        names.append(draw(st.sampled_from(["religion", "a b", "rule_id", "f3", "f1"])))
    floats = st.floats(allow_nan=True, allow_infinity=rarely(draw)) | st.none()
    for name in names:
        kind = draw(st.sampled_from(["int", "string", "null"])) if rarely(draw) else "float"
        if kind == "float":
            columns[name] = pa.array(draw(st.lists(floats, min_size=n, max_size=n)), pa.float64())
        elif kind == "int":
            columns[name] = pa.array(draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), pa.int64())
        elif kind == "string":
            columns[name] = pa.array(["x"] * n)
        else:
            columns[name] = pa.nulls(n)
    table = pa.Table.from_arrays(list(columns.values()), names=list(columns))
    if rarely(draw):
        table = table.drop_columns([draw(st.sampled_from(table.column_names))])
    size = draw(st.integers(0, 81)) if rarely(draw) else n
    values = anything if rarely(draw) else st.sampled_from([0, 1])
    labels = draw(st.lists(values, min_size=size, max_size=size))
    weights = draw(st.lists(anything, min_size=n, max_size=n)) if rarely(draw) else None
    if weights is None and draw(st.booleans()):
        weights = draw(st.lists(st.floats(0, 10), min_size=n, max_size=n))
    templates = ["{oops}", "{value:d}", ""] if rarely(draw) else ["x {value}", "{value:.1f}"]
    descriptions = {name: draw(st.sampled_from(templates)) for name in names}
    return table, labels, weights, descriptions


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=hostile_tables())
def test_hostile_training_input_gives_a_model_or_a_clear_error(case: Any, model: TriageModel) -> None:
    table, labels, weights, descriptions = case
    try:
        trained = train(table, labels, weights=weights, descriptions=descriptions, max_rounds=5)
    except FlagstoneError as exc:
        assert str(exc)
    else:
        assert 0 < trained.card["validation"]["base_rate"] < 1
        assert len(trained.score(table)) == table.num_rows
    # Scoring any such table with another model: scores or a clear error, never a crash.
    try:
        scores = model.score(table)
    except FlagstoneError as exc:
        assert str(exc)
    else:
        assert all(0 < p < 1 for p in scores.priority)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
plausible_inputs = st.fixed_dictionaries(
    {
        "features": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["new_payers", "amount_z", "noise", "x y", 3]), "sentence": json_values}
            ),
            max_size=4,
        ),
        "rules": st.lists(st.sampled_from(["aml.structuring", "aml.graph.fan_in", 1]), max_size=3),
    }
)
plausible_calibration = st.fixed_dictionaries(
    {"method": st.sampled_from(["platt", "isotonic", "x"]), "a": json_values, "b": json_values, "x": json_values}
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(["inputs.json", "calibration.json"]),
    data=json_values | plausible_inputs | plausible_calibration,
    raw=st.binary(max_size=40),
)
def test_hostile_model_files_load_or_are_refused(
    model: TriageModel, tmp_path_factory: pytest.TempPathFactory, name: str, data: Any, raw: bytes
) -> None:
    d = tmp_path_factory.mktemp("m")
    model.save(d)
    # Random bytes: the version id no longer matches.
    (d / name).write_bytes(raw)
    with pytest.raises(ModelError):
        TriageModel.load(d)
    # Any JSON, with a card that names it: loaded or refused, never a crash.
    (d / name).write_text(json.dumps(data))
    files = {f: (d / f).read_bytes() for f in FILES}
    card = json.loads((d / "card.json").read_text())
    (d / "card.json").write_text(json.dumps({**card, "model_version": _version(files)}))
    try:
        loaded = TriageModel.load(d)
    except ModelError as exc:
        assert str(exc)
    else:
        try:
            assert len(loaded.score(DATA.table)) == 400
        except FlagstoneError as exc:
            assert str(exc)


def test_a_class_of_vanishing_weight_counts_as_absent() -> None:
    # Found by the hostile-input test: negatives weighing 5e-324 each passed the "weight > 0"
    # check, and the model's base rate came out as exactly 1.
    data = synthetic(600, seed=3)
    weights = [1.0 if y else 5e-324 for y in data.labels]
    with pytest.raises(InputError) as info:
        train(data.table, data.labels, weights=weights, descriptions=SENTENCES)
    assert "a billionth" in str(info.value) and info.value.field == "labels"
