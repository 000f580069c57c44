"""Triage models kept in the store, and the scores they give the store's alerts.

Every trained model is stored whole (its files and card, ``triage_models``) under its version id,
a hash of its files, so the model that scored an alert can always be read back. At most one is
active: its scores order the review queue. Scoring writes ``alert_scores``: per alert and model the
priority, the explanation a reviewer reads, and every reason with its size. A score orders the
queue and says why; nothing here touches a case.

**Review sample.** Reviewers read the top of the queue, so the labels they give are biased toward
what the model already ranks high. Scoring therefore marks a random share of all alerts, whatever
their priority (``review_sample``, set at activation, default 2 %), for review: the queue shows
them first with their true priority. The draw hashes the model and alert ids, so it is the same
every time it is made and can be checked. Training on reviewers' decisions (``reviewed.py``) then
weights each label by the inverse of the chance that an alert like it was reviewed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from flagstone.errors import InputError
from flagstone.store import Store
from flagstone.triage.explain import explain
from flagstone.triage.features import GRAPH, feature_table
from flagstone.triage.model import TriageModel

REVIEW_SAMPLE = 0.02  # share of alerts marked for review whatever their priority


def review_sampled(model_id: str, alert_id: str, share: float) -> bool:
    """Whether the deterministic draw for this model and alert falls in the review sample."""
    digest = hashlib.sha256(f"{model_id}\x00{alert_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def check_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 0.5:
        raise InputError("the review sample is a share from 0 to 0.5", field="review_sample", value=share)
    return float(share)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def register(store: Store, model: TriageModel) -> bool:
    """Keep ``model`` in the store (inactive); False when it is there already."""
    # fetchall, not fetchone: DuckDB refuses new work on a connection with a result left open.
    if store.con.execute("SELECT 1 FROM triage_models WHERE model_id = ?", [model.version]).fetchall():
        return False
    files = {name: data.decode("utf-8") for name, data in sorted(model.files().items())}
    store.con.execute(
        "INSERT INTO triage_models (model_id, created_at, card, files, active, review_sample) "
        "VALUES (?, ?, ?, ?, FALSE, ?)",
        [model.version, _now(), json.dumps(model.card), json.dumps(files), REVIEW_SAMPLE],
    )
    return True


def stored_model(store: Store | duckdb.DuckDBPyConnection, model_id: str) -> TriageModel:
    """The model of that version id, read back from the store (its files checked by ``load``)."""
    con = store.con if isinstance(store, Store) else store
    rows = con.execute("SELECT files FROM triage_models WHERE model_id = ?", [model_id]).fetchall()
    if not rows:
        raise InputError(f"no triage model {model_id!r} in the store", field="model", value=model_id)
    files = {str(name): str(text).encode("utf-8") for name, text in json.loads(rows[0][0]).items()}
    return TriageModel.from_files(files, f"the store's triage model {model_id}")


def active_model_id(store: Store | duckdb.DuckDBPyConnection) -> str | None:
    con = store.con if isinstance(store, Store) else store
    rows = con.execute("SELECT model_id FROM triage_models WHERE active").fetchall()
    return str(rows[0][0]) if rows else None


def activate(store: Store, model_id: str, review_sample: float = REVIEW_SAMPLE) -> str:
    """Make ``model_id`` the active model, with that share of alerts marked for review whatever
    their priority; returns the model it replaces ('' for none)."""
    share = check_share(review_sample)
    previous = active_model_id(store) or ""
    with store.transaction() as con:
        if not con.execute("SELECT 1 FROM triage_models WHERE model_id = ?", [model_id]).fetchall():
            raise InputError(f"no triage model {model_id!r} in the store", field="model", value=model_id)
        con.execute("UPDATE triage_models SET active = (model_id = ?)", [model_id])
        con.execute("UPDATE triage_models SET review_sample = ? WHERE model_id = ?", [share, model_id])
    return previous


def _share(store: Store, model_id: str) -> float:
    rows = store.con.execute("SELECT review_sample FROM triage_models WHERE model_id = ?", [model_id]).fetchall()
    return float(rows[0][0]) if rows and rows[0][0] is not None else REVIEW_SAMPLE


def score_store(
    store: Store, model: TriageModel, alert_ids: Sequence[str] | None = None, *, features: pa.Table | None = None
) -> int:
    """Score the store's alerts (or only ``alert_ids``) with ``model``; returns how many. Earlier
    scores of the same model for those alerts are replaced. ``features``: the store's feature table,
    when the caller has just computed it."""
    if features is None:
        graph = any(f in GRAPH for f in model.features)  # the neighbours' events only if the model reads them
        features = feature_table(store.con, alert_ids=alert_ids, graph=graph)
    if alert_ids is not None:
        wanted = set(alert_ids)
        keep = [i for i, a in enumerate(features.column("alert_id").to_pylist()) if a in wanted]
        features = features.take(keep)
    if features.num_rows == 0:
        return 0
    scores = model.score(features)
    now = _now()
    share = _share(store, model.version)
    explained = explain(scores)
    ids = [e.alert_id for e in explained]
    # One Arrow table inserted at once: row-by-row inserts cost more than the scoring itself.
    table = pa.table(
        {
            "alert_id": pa.array(ids, pa.string()),
            "model_id": pa.array([model.version] * len(ids), pa.string()),
            "priority": pa.array([e.priority for e in explained], pa.float64()),
            "explanation": pa.array([e.text for e in explained], pa.string()),
            "contributions": pa.array([json.dumps(e.as_dict()["reasons"]) for e in explained], pa.string()),
            "scored_at": pa.array([now] * len(ids), pa.timestamp("us")),
            "review_sample": pa.array([review_sampled(model.version, a, share) for a in ids], pa.bool_()),
        }
    )
    with store.transaction() as con:
        con.execute(
            "DELETE FROM alert_scores WHERE model_id = ? AND alert_id IN (SELECT unnest(?))", [model.version, ids]
        )
        con.register("new_alert_scores", table)
        try:
            con.execute(
                "INSERT INTO alert_scores (alert_id, model_id, priority, explanation, contributions, scored_at, "
                "review_sample) SELECT alert_id, model_id, priority, explanation, CAST(contributions AS JSON), "
                "scored_at, review_sample FROM new_alert_scores"
            )
        finally:
            con.unregister("new_alert_scores")
    return len(ids)
