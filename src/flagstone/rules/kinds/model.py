"""The ``model`` rule kind: a model-based detector. Every account is scored per time window by a
model trained on labelled history (``flagstone triage train-detector``), and a window whose
calibrated score reaches ``threshold`` becomes an alert with the score's explanation, so that
laundering no rule shape catches still reaches a person. It decides nothing: it raises an alert
for review like any rule.

A **candidate** is an account and a window: the account's matched events (as payer or payee; an
event between an account and itself is left out) whose time falls in one window of ``window``
length counted from the Unix epoch (``floor`` of whole microseconds, truncated toward zero as SQL's
integer division does). It fires at its last event in event order ``(ts, event_id, source)``;
every feature reads only the events up to that one. The window is the model's: it is trained on
candidates of one length and reads only those.

This module holds the typed rule, the features' definitions (``FEATURES``), the plain-Python
candidates and features (the oracle, which the engines' SQL must equal) and ``detect``: what every
engine does with its candidate table (score, keep those at or above the threshold, explain).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa

from flagstone.errors import InputError, ModelError
from flagstone.events import is_cash
from flagstone.rules import ir
from flagstone.rules.episodes import micros
from flagstone.rules.evaluator import Context, Entities, Event, evaluate
from flagstone.rules.finding import Finding
from flagstone.rules.reader import Common, RuleKind, parse_duration
from flagstone.triage.explain import explain
from flagstone.triage.model import TriageModel

GROUP = "account"
MAX_WINDOW_US = 3650 * 86_400_000_000  # ten years: longer windows say nothing and overflow nothing
_EPOCH = datetime(1970, 1, 1)
READS = ("ts", "actor", "counterparty", "amount", "kind", "channel")  # for the protected-attribute check
VALUES = ("priority", "explanation", "window_events", "window_amount_in", "window_amount_out")


@dataclass(frozen=True)
class DetectorFeature:
    name: str
    sentence: str  # with {value}: what a reviewer reads


FEATURES = (
    DetectorFeature("window_events_in", "{value:.0f} payments came into the account in the window"),
    DetectorFeature("window_events_out", "{value:.0f} payments left the account in the window"),
    DetectorFeature("window_amount_in", "{value:,.2f} was paid into the account in the window"),
    DetectorFeature("window_amount_out", "{value:,.2f} was paid out of the account in the window"),
    DetectorFeature("window_senders", "{value:.0f} different accounts paid the account in the window"),
    DetectorFeature("window_receivers", "the account paid {value:.0f} different accounts in the window"),
    DetectorFeature("window_pass_through", "the smaller of money in and out was {value:.0%} of the larger"),
    DetectorFeature("window_first_contacts", "{value:.0f} of the window's payments were first contacts"),
    DetectorFeature("window_first_contact_share", "{value:.0%} of the window's payments were first contacts"),
    DetectorFeature("window_cash_share", "{value:.0%} of the window's payments were cash"),
    DetectorFeature("window_span_hours", "the window's payments spanned {value:.0f} hours"),
    DetectorFeature("prior_events", "the account had {value:.0f} payments before the window"),
    DetectorFeature("prior_windows", "the account was active in {value:.0f} earlier windows"),
    DetectorFeature("tenure_days", "the account was first seen {value:.0f} days before"),
    DetectorFeature("amount_vs_prior", "the window moved {value:.1f} times the account's usual amount per window"),
)
FEATURE_NAMES = tuple(f.name for f in FEATURES)
DESCRIPTIONS = {f.name: f.sentence for f in FEATURES}
SCHEMA = pa.schema(
    [
        ("account", pa.string()),
        ("win", pa.int64()),
        ("fire_source", pa.string()),
        ("fire_event_id", pa.string()),
        ("fire_ts", pa.timestamp("us")),
        ("first_ts", pa.timestamp("us")),
        ("evidence_sources", pa.list_(pa.string())),
        ("evidence", pa.list_(pa.string())),
        ("evidence_ts", pa.list_(pa.timestamp("us"))),
        *((name, pa.float64()) for name in FEATURE_NAMES),
    ]
)


@dataclass(frozen=True)
class ModelRule:
    meta: ir.RuleMeta
    match: ir.Expr
    model: TriageModel
    model_path: str
    window_us: int
    window_text: str
    threshold: float
    reads: tuple[ir.Field, ...] = tuple(ir.Field(f) for f in READS)

    @property
    def group_by(self) -> tuple[str, ...]:
        return (GROUP,)

    @property
    def value_names(self) -> tuple[str, ...]:
        return VALUES


def is_detector(card: dict[str, Any]) -> bool:
    """Whether a model card is a detector's (``triage train-detector`` records its window there)."""
    labels = card.get("labels")
    return isinstance(labels, dict) and isinstance(labels.get("detector"), dict)


def check_detector(model: TriageModel, origin: str) -> tuple[str, int]:
    """The window (text, microseconds) a detector model was trained on; refuses any other model."""
    if not is_detector(model.card) or sorted(model.features) != sorted(FEATURE_NAMES):
        raise ModelError(f"{origin}: not a detector model (train one with `flagstone triage train-detector`)")
    text = str(model.card["labels"]["detector"].get("window", ""))
    window_us = parse_duration(text)
    if window_us > MAX_WINDOW_US:
        raise ModelError(f"{origin}: the model's window {text!r} is longer than ten years")
    return text, window_us


def build_model(c: Common) -> tuple[ir.Rule, set[str]]:
    r = c.reader
    if "group_by" in r.data:
        raise r.error("group_by", "a model rule groups by account (payer or payee); leave group_by out")
    raw = r.text("model")
    folder = Path(raw).expanduser()
    if not folder.is_absolute():
        folder = Path(r.path).parent / folder
    try:
        model = TriageModel.load(folder)
        window_text, window_us = check_detector(model, str(folder))
    except (InputError, ModelError, ValueError) as exc:
        raise r.error("model", f"cannot use the model in {folder}: {exc}", raw) from exc
    threshold = r.resolve("threshold", c.params)
    if isinstance(threshold, Decimal):
        threshold = float(threshold)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
        raise r.error("threshold", "threshold is a priority from 0 to 1", threshold)
    rule = ModelRule(c.meta, c.match, model, str(folder), window_us, window_text, float(threshold))
    return rule, set(VALUES)


def _win(ts: Any, window_us: int) -> int:
    us = micros(ts - _EPOCH)
    q = abs(us) // window_us  # truncated toward zero, as SQL's integer division
    return q if us >= 0 else -q


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else float(num) / float(den)


def candidates(events: list[Event], entities: Entities, match: ir.Expr, window_us: int) -> pa.Table:
    """The oracle: every candidate with its features, as the engines' statement gives them."""
    matched = [
        e
        for e in events
        if evaluate(match, Context(e, entities)) is True
        and (e["actor"] is None or e["counterparty"] is None or e["actor"] != e["counterparty"])
    ]
    matched.sort(key=lambda e: (e["ts"], e["event_id"], e["source"]))
    first_of_pair: dict[tuple[str, str], tuple[str, str]] = {}
    for e in matched:
        if e["actor"] is not None and e["counterparty"] is not None:
            pair = (min(e["actor"], e["counterparty"]), max(e["actor"], e["counterparty"]))
            first_of_pair.setdefault(pair, (e["source"], e["event_id"]))
    windows: dict[tuple[str, int], list[tuple[Event, bool, str | None]]] = defaultdict(list)
    for e in matched:
        for account, other, out in ((e["actor"], e["counterparty"], True), (e["counterparty"], e["actor"], False)):
            if account is not None:
                windows[(account, _win(e["ts"], window_us))].append((e, out, other))
    rows = []
    by_account: dict[str, list[int]] = defaultdict(list)
    for account, win in windows:
        by_account[account].append(win)
    for account, wins in sorted(by_account.items()):
        prior_n, prior_amount, seen = 0, Decimal(0), None
        for k, win in enumerate(sorted(wins)):
            side = windows[(account, win)]
            evs = [e for e, _, _ in side]
            amt_in = sum((e["amount"] for e, out, _ in side if not out and e["amount"] is not None), Decimal(0))
            amt_out = sum((e["amount"] for e, out, _ in side if out and e["amount"] is not None), Decimal(0))
            paired = [e for e in evs if e["actor"] is not None and e["counterparty"] is not None]
            first = sum(
                1
                for e in paired
                if first_of_pair[(min(e["actor"], e["counterparty"]), max(e["actor"], e["counterparty"]))]
                == (e["source"], e["event_id"])
            )
            cash = sum(1 for e in evs if is_cash(e["kind"], e.get("channel")))
            t0, t1 = evs[0]["ts"], evs[-1]["ts"]
            seen = t0 if seen is None else min(seen, t0)
            mean_prior = _ratio(float(prior_amount), k) if k else None
            rows.append(
                {
                    "account": account,
                    "win": win,
                    "fire_source": evs[-1]["source"],
                    "fire_event_id": evs[-1]["event_id"],
                    "fire_ts": t1,
                    "first_ts": t0,
                    "evidence_sources": [e["source"] for e in evs],
                    "evidence": [e["event_id"] for e in evs],
                    "evidence_ts": [e["ts"] for e in evs],
                    "window_events_in": float(sum(1 for _, out, _ in side if not out)),
                    "window_events_out": float(sum(1 for _, out, _ in side if out)),
                    "window_amount_in": float(amt_in),
                    "window_amount_out": float(amt_out),
                    "window_senders": float(len({o for _, out, o in side if not out and o is not None})),
                    "window_receivers": float(len({o for _, out, o in side if out and o is not None})),
                    "window_pass_through": _ratio(float(min(amt_in, amt_out)), float(max(amt_in, amt_out))),
                    "window_first_contacts": float(first),
                    "window_first_contact_share": _ratio(first, len(paired)),
                    "window_cash_share": _ratio(cash, len(evs)),
                    "window_span_hours": float(micros(t1 - t0)) / 3_600_000_000,
                    "prior_events": float(prior_n),
                    "prior_windows": float(k),
                    "tenure_days": float(micros(t1 - seen)) / 86_400_000_000,
                    "amount_vs_prior": (
                        None if mean_prior is None or mean_prior == 0 else float(amt_in + amt_out) / mean_prior
                    ),
                }
            )
            prior_n += len(evs)
            prior_amount += amt_in + amt_out
    return pa.Table.from_pylist(rows, schema=SCHEMA)


def feature_rows(table: pa.Table) -> pa.Table:
    """The candidate table as the triage model reads it: ``alert_id`` (account and window),
    ``rule_id`` (always ``model``: one category, in training and in every rule using the model),
    ``fire_ts`` and the features."""
    accounts, wins = table.column("account").to_pylist(), table.column("win").to_pylist()
    ids = [f"{a}@{w}" for a, w in zip(accounts, wins, strict=True)]
    return pa.table(
        {
            "alert_id": pa.array(ids, pa.string()),
            "rule_id": pa.array(["model"] * table.num_rows, pa.string()),
            "fire_ts": table.column("fire_ts"),
            **{name: table.column(name) for name in FEATURE_NAMES},
        }
    )


def detect(rule: ModelRule, table: pa.Table) -> list[Finding]:
    """Every engine's last step: score the candidates, keep those at or above the threshold, and
    make each a finding with its priority, explanation and evidence (in event order)."""
    if table.num_rows == 0:
        return []
    table = table.select(SCHEMA.names).cast(SCHEMA)
    # Priorities of all candidates first; contributions and sentences only for those kept.
    priority = rule.model.calibration(rule.model.raw(feature_rows(table)))
    keep = [i for i, p in enumerate(priority) if float(p) >= rule.threshold]
    if not keep:
        return []
    table = table.take(keep)
    scores = rule.model.score(feature_rows(table))
    texts = {e.alert_id: e.text for e in explain(scores)}
    findings = []
    for i, row in enumerate(table.to_pylist()):
        keys = zip(row["evidence_ts"], row["evidence"], row["evidence_sources"], strict=True)
        evidence = tuple((src, eid) for _, eid, src in sorted(keys))
        values: tuple[tuple[str, ir.Value], ...] = (
            ("priority", round(float(scores.priority[i]), 6)),
            ("explanation", texts[scores.alert_ids[i]]),
            ("window_events", int(row["window_events_in"] + row["window_events_out"])),
            ("window_amount_in", row["window_amount_in"]),
            ("window_amount_out", row["window_amount_out"]),
        )
        findings.append(
            Finding(
                rule_id=rule.meta.id,
                rule_version=rule.meta.version,
                group=((GROUP, row["account"]),),
                fire=(row["fire_source"], row["fire_event_id"]),
                first_ts=row["first_ts"],
                last_ts=row["fire_ts"],
                evidence=evidence,
                values=values,
            )
        )
    return findings


def run_model(rule: ModelRule, events: list[Event], entities: Entities) -> list[Finding]:
    return detect(rule, candidates(events, entities, rule.match, rule.window_us))


KIND = RuleKind(
    "model",
    ModelRule,
    {
        "model": "folder of a detector model (`flagstone triage train-detector --out`), relative to the rule file",
        "threshold": "lowest calibrated priority (0-1) that raises an alert",
    },
    build_model,
    run_model,
)
