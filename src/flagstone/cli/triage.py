"""Alert triage: train a model on labelled history, measure it on other data, activate it (a
supervisor), and score the store's alerts. A score orders the review queue and explains itself;
it never closes, dismisses, escalates or files a case (docs/triage.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from flagstone.cli._common import ConfigOpt, DbOpt, StoreOpt, err, friendly, open_oversight, out
from flagstone.errors import InputError

triage_app = typer.Typer(
    name="triage",
    help="Order the review queue by a model trained on labelled history, with an explanation per alert.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

ModelDir = Annotated[Path, typer.Option("--model", help="The folder a model was saved in (`triage train --out`).")]
LabelsOpt = Annotated[
    Path,
    typer.Option(
        "--labels",
        help="Labels CSV: per scenario (labels.csv of `flagstone generate`) or per pattern "
        "(pattern_id,typology,source,event_id); see docs/backtest.md.",
    ),
]


@triage_app.command("train")
@friendly
def triage_train(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to save the model in (new, or holding this model).")],
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Labels CSV: per scenario (labels.csv of `flagstone generate`) or per pattern "
            "(pattern_id,typology,source,event_id); see docs/backtest.md.",
        ),
    ] = None,
    from_cases: Annotated[
        bool,
        typer.Option(
            "--from-cases",
            help="Learn from reviewers' decisions in the case database instead: filed or approved cases "
            "are positive, dismissed ones negative, open ones unlabelled; each weighted against the bias "
            "of what reviewers chose to read (docs/triage.md).",
        ),
    ] = False,
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the training: the same data and seed give the same model.")] = 0,
) -> None:
    """Train a model on the store's alerts, labelled by a labels file (an alert whose evidence
    holds a labelled record is worth a report) or by reviewers' decisions (`--from-cases`). The
    model is saved in --out and kept in the store (inactive) with its card; audited as
    triage_model_trained."""
    from flagstone.audit.events import TriageModelTrained
    from flagstone.oversight.activity import cli_actor, record
    from flagstone.store import Store
    from flagstone.triage.history import DESCRIPTIONS, labelled, train_on
    from flagstone.triage.model import train
    from flagstone.triage.registry import register

    if (labels is None) == (not from_cases):
        raise InputError("give either --labels FILE or --from-cases", field="--labels")
    if labels is not None:
        source = f"labels file {labels.name}"
        with Store(store) as st:
            history = labelled(st.con, labels)
            model = train_on(history, label_source=source, seed=seed)
            model.save(out_dir)
            register(st, model)
            path = st.path
        y = history.labels
        record(path, [TriageModelTrained(model.version, source, len(y), sum(y))])
    else:
        from flagstone.oversight.sync import copy_outcomes
        from flagstone.triage.features import model_inputs
        from flagstone.triage.reviewed import LABEL_SOURCE, case_rows, reviewed

        source = LABEL_SOURCE
        ov = open_oversight(store, db, config)
        try:
            rows = case_rows(ov.engine)
            with Store(ov.store_path) as st:
                copy_outcomes(ov, st)
                history_cases = reviewed(st.con, rows)
                y = history_cases.labels
                model = train(
                    model_inputs(history_cases.features),
                    y,
                    weights=history_cases.weights,
                    descriptions=DESCRIPTIONS,
                    seed=seed,
                    label_source=source,
                    label_details=history_cases.details,
                )
                model.save(out_dir)
                register(st, model)
            ov.audit.record(cli_actor(), TriageModelTrained(model.version, "reviewers' decisions", len(y), sum(y)))
        finally:
            ov.close()
    _print_card(model.card)
    out.print(
        f"model {model.version} saved in {out_dir} and kept in the store (not active)", highlight=False, soft_wrap=True
    )


@triage_app.command("train-detector")
@friendly
def triage_train_detector(
    labels: LabelsOpt,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to save the model in (new, or holding this model).")],
    window: Annotated[
        str,
        typer.Option(
            help="Length of the windows each account is scored over (30m, 24h, 7d, ...). Longer windows hold "
            "more of a scheme; shorter ones alert sooner."
        ),
    ] = "30d",
    store: StoreOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the training: the same data and seed give the same model.")] = 0,
) -> None:
    """Train the model-based detector used by `kind: model` rules: every account and window of the
    store is scored, labelled true when its payments hold a labelled record. The model is saved
    in --out and kept in the store with its card; audited as triage_model_trained. A rule file
    then names the folder and a threshold (docs/triage.md)."""
    from flagstone.audit.events import TriageModelTrained
    from flagstone.oversight.activity import record
    from flagstone.rules.kinds.model import MAX_WINDOW_US
    from flagstone.rules.reader import parse_duration
    from flagstone.store import Store
    from flagstone.triage.detector import train_detector
    from flagstone.triage.registry import register

    try:
        window_us = parse_duration(window)
    except ValueError as exc:
        raise InputError(str(exc), field="--window", value=window) from exc
    if window_us > MAX_WINDOW_US:
        raise InputError("the window is at most 3650d (ten years)", field="--window", value=window)
    with Store(store) as st:
        model, y = train_detector(st.con, labels, window, seed=seed)
        model.save(out_dir)
        register(st, model)
        path = st.path
    record(path, [TriageModelTrained(model.version, f"labels file {labels.name} (detector)", len(y), sum(y))])
    _print_card(model.card)
    out.print(
        f"detector model {model.version} ({len(y):,} account windows of {window}, {sum(y):,} labelled) saved in "
        f"{out_dir}; use it with a rule of kind: model",
        highlight=False,
        soft_wrap=True,
    )


@triage_app.command("evaluate")
@friendly
def triage_evaluate(model: ModelDir, labels: LabelsOpt, store: StoreOpt = None) -> None:
    """Measure a model on the store's alerts and a labels file (another period or data set than it
    was trained on): how much of the queue a reviewer reads, in priority order, to find every
    labelled pattern the alerts find, and the precision at the top of the queue. Stores nothing."""
    from flagstone.store import Store
    from flagstone.triage.history import labelled
    from flagstone.triage.measure import queue_measures
    from flagstone.triage.model import TriageModel

    m = TriageModel.load(model)
    with Store(store, read_only=True) as st:
        history = labelled(st.con, labels)
    scores = m.score(history.features)
    measures = queue_measures(list(scores.alert_ids), [float(p) for p in scores.priority], history.truth)
    for line in measures.lines():
        out.print(line, highlight=False, soft_wrap=True)


@triage_app.command("activate")
@friendly
def triage_activate(
    model: Annotated[Path, typer.Argument(help="The folder the model was saved in.")],
    supervisor: Annotated[
        str, typer.Option("--supervisor", help="The supervisor who decides; their password is asked.")
    ],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    review_sample: Annotated[
        float,
        typer.Option(
            "--review-sample",
            help="Share of alerts (0-0.5) drawn at random and shown first in the queue whatever their "
            "priority, so that reviewers' decisions also teach the next model about alerts it ranks low.",
        ),
    ] = 0.02,
    store: StoreOpt = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Make a model the one whose scores order every queue, as a supervisor (checked with their
    password, like a log-in). The store's alerts are scored and the cases get their priority;
    later scans score their new alerts. Audited as triage_model_activated and alerts_scored."""
    from flagstone.audit.events import AlertsScored, TriageModelActivated
    from flagstone.oversight.roles import allowed
    from flagstone.oversight.sync import copy_outcomes, sync_alerts
    from flagstone.oversight.users import LoginError, authenticate
    from flagstone.store import Store
    from flagstone.triage.model import TriageModel
    from flagstone.triage.registry import activate, check_share, register, score_store

    check_share(review_sample)
    m = TriageModel.load(model)
    _not_a_detector(m.card, model)
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else typer.prompt(f"password of {supervisor}", hide_input=True)
    )
    ov = open_oversight(store, db, config)
    try:
        try:
            user = authenticate(ov, supervisor, password)
        except LoginError as exc:
            raise InputError(str(exc), field="supervisor", value=supervisor) from exc
        if not allowed(user.role, "activate_triage_model"):
            raise InputError(
                f"{supervisor} is a {user.role}: only a supervisor activates a triage model", field="supervisor"
            )
        with Store(ov.store_path) as st:
            copy_outcomes(ov, st)
            register(st, m)
            previous = activate(st, m.version, review_sample)
            n = score_store(st, m)
            ov.audit.record(user.username, TriageModelActivated(m.version, user.username, previous))
            ov.audit.record(user.username, AlertsScored(m.version, n))
            sync_alerts(ov, st)
    finally:
        ov.close()
    out.print(
        f"model {m.version} active (was: {previous or 'none'}); {n} alerts scored", highlight=False, soft_wrap=True
    )


@triage_app.command("score")
@friendly
def triage_score(model: ModelDir, store: StoreOpt = None) -> None:
    """(Re)score the store's alerts with a model; its scores show in `flagstone alerts` and the
    queue when it is the active one. Audited as alerts_scored."""
    from flagstone.audit.events import AlertsScored
    from flagstone.oversight.activity import record
    from flagstone.store import Store
    from flagstone.triage.model import TriageModel
    from flagstone.triage.registry import register, score_store

    m = TriageModel.load(model)
    _not_a_detector(m.card, model)
    with Store(store) as st:
        register(st, m)
        n = score_store(st, m)
        path = st.path
    record(path, [AlertsScored(m.version, n)])
    err.print(f"{n} alerts scored by model {m.version}", highlight=False, soft_wrap=True)


def _not_a_detector(card: dict[str, Any], folder: Path) -> None:
    from flagstone.rules.kinds.model import is_detector

    if is_detector(card):
        raise InputError(
            f"{folder} holds a detector model: a rule of kind: model uses it; it does not order the queue",
            field="model",
        )


def _print_card(card: dict[str, object]) -> None:
    figures = card.get("validation", {})
    if isinstance(figures, dict):
        shown = ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items() if k != "period"
        )
        out.print(f"validation (a later period than training): {shown}", highlight=False, soft_wrap=True)
