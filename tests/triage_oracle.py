"""A plain-Python evaluator of the triage features (docs/triage.md): obvious rather than fast, the
definition ``flagstone.triage.features`` must match. Events are dicts with the canonical fields;
alerts are dicts with the store's alert columns."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from flagstone.triage._sql import HUB_DEGREE, NEGATIVE_OUTCOMES, POSITIVE_OUTCOMES, RECENT_DAYS

Event = dict[str, Any]
Alert = dict[str, Any]
SEVERITY = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def key(e: Event) -> tuple[datetime, str, str]:
    return (e["ts"], e["event_id"], e["source"])


def cut(a: Alert) -> tuple[datetime, str, str]:
    return (a["last_ts"], a["fire_event_id"], a["fire_source"])


def anchors(a: Alert) -> set[str]:
    out = set()
    for part in a["group_key"].split(", "):
        field, _, value = part.partition("=")
        if field in ("actor", "counterparty", "account") and value:
            out.add(value)
    return out


def _us(d: timedelta) -> int:
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds


def _ratio(num: float, den: float) -> float | None:
    return float(num) / den if den else None


def _sum(amounts: list[Decimal | None]) -> Decimal | None:
    given = [x for x in amounts if x is not None]
    return sum(given, Decimal(0)) if given else None


def features(
    alerts: list[Alert],
    events: list[Event],
    outcomes: list[tuple[str, str, datetime]] | None = None,
    hub_degree: int = HUB_DEGREE,
) -> dict[str, dict[str, float | None]]:
    by_key = {(e["source"], e["event_id"]): e for e in events}
    first_seen: dict[str, datetime] = {}
    for e in events:
        for acct in (e["actor"], e["counterparty"]):
            if acct is not None:
                first_seen[acct] = min(first_seen.get(acct, e["ts"]), e["ts"])

    def known(a: Alert) -> list[Event]:
        return [e for e in events if key(e) <= cut(a)]

    def evidence(a: Alert) -> list[Event]:
        evs = [by_key[k] for k in zip(a["evidence_sources"], a["evidence"], strict=True) if k in by_key]
        return [e for e in evs if key(e) <= cut(a)]

    def is_pair(e: Event) -> bool:
        return e["actor"] is not None and e["counterparty"] is not None and e["actor"] != e["counterparty"]

    def first_contact(e: Event) -> bool:
        pair = {e["actor"], e["counterparty"]}
        return not any(is_pair(f) and {f["actor"], f["counterparty"]} == pair and key(f) < key(e) for f in events)

    def neighbours(acct: str, evs: list[Event]) -> set[str]:
        out = set()
        for e in evs:
            if is_pair(e) and acct in (e["actor"], e["counterparty"]):
                out.add(e["counterparty"] if e["actor"] == acct else e["actor"])
        return out

    def touch(b: Alert) -> set[str]:
        accts = set(anchors(b))
        for e in evidence(b):
            accts |= {x for x in (e["actor"], e["counterparty"]) if x is not None}
        return accts

    result: dict[str, dict[str, float | None]] = {}
    for a in alerts:
        f: dict[str, float | None] = {}
        c_ts = a["last_ts"]
        ev = evidence(a)
        f["severity_rank"] = float(SEVERITY[a["severity"]]) if a["severity"] in SEVERITY else None
        f["evidence_events"] = float(len(ev))
        total = _sum([e["amount"] for e in ev])
        f["evidence_amount"] = float(total) if total is not None else None
        f["evidence_span_hours"] = (
            _us(max(e["ts"] for e in ev) - min(e["ts"] for e in ev)) / 3_600_000_000 if ev else None
        )
        firsts = sum(1 for e in ev if is_pair(e) and first_contact(e))
        f["evidence_first_contacts"] = float(firsts)
        f["evidence_first_contact_share"] = _ratio(firsts, sum(1 for e in ev if is_pair(e)))

        accts = anchors(a)
        kn = known(a)
        rows = []  # (anchor, side, other, event)
        for x in sorted(accts):
            for e in kn:
                if e["actor"] == x:
                    rows.append((x, "out", e["counterparty"], e))
                if e["counterparty"] == x:
                    rows.append((x, "in", e["actor"], e))
        pairs: dict[tuple[str, str], set[str]] = {}
        for x, side, other, _ in rows:
            if other is not None and other != x:
                pairs.setdefault((x, other), set()).add(side)
        nb = {other for _, other in pairs}
        deg = {v: len(neighbours(v, kn)) for v in nb}
        reach = set(nb)
        for v in nb:
            if deg[v] <= hub_degree:
                reach |= neighbours(v, kn)
        reach -= accts
        outs = [r for r in rows if r[1] == "out"]
        ins = [r for r in rows if r[1] == "in"]
        mutual = sum(1 for sides in pairs.values() if sides == {"out", "in"})
        recent = c_ts - timedelta(days=RECENT_DAYS)
        earlier_b = [b for b in alerts if b["alert_id"] != a["alert_id"] and cut(b) <= cut(a)]
        group: dict[str, float | None] = {
            "group_events_out": float(len(outs)),
            "group_events_in": float(len(ins)),
            "group_amount_out": float(_sum([r[3]["amount"] for r in outs]) or 0),
            "group_amount_in": float(_sum([r[3]["amount"] for r in ins]) or 0),
            "group_events_recent": float(sum(1 for r in rows if r[3]["ts"] > recent)),
            "group_cash_share": _ratio(sum(1 for r in rows if _cash(r[3])), len(rows)),
            "group_tenure_days": (_us(c_ts - min(r[3]["ts"] for r in rows)) / 86_400_000_000 if rows else None),
            "group_counterparties": float(len(pairs)),
            "out_degree": float(sum(1 for s in pairs.values() if "out" in s)),
            "in_degree": float(sum(1 for s in pairs.values() if "in" in s)),
            "reciprocity": _ratio(mutual, len(pairs)),
            "two_hop_reach": float(len(reach)),
            "counterparty_degree_mean": _ratio(sum(deg.values()), len(nb)),
            "counterparty_tenure_days_mean": (
                float(sum(_us(c_ts - first_seen[v]) for v in nb)) / 86_400_000_000 / len(nb) if nb else None
            ),
            "other_rule_alerts": float(sum(1 for b in earlier_b if b["rule_id"] != a["rule_id"] and accts & touch(b))),
            "earlier_alerts": float(sum(1 for b in earlier_b if accts & anchors(b))),
            "prior_reported_cases": None,
            "prior_dismissed_cases": None,
        }
        if outcomes is not None:
            mine = [(o, t) for acct, o, t in outcomes if acct in accts and t < c_ts]
            group["prior_reported_cases"] = float(sum(1 for o, _ in mine if o in POSITIVE_OUTCOMES))
            group["prior_dismissed_cases"] = float(sum(1 for o, _ in mine if o in NEGATIVE_OUTCOMES))
        if not accts:
            group = dict.fromkeys(group)
        f.update(group)
        result[a["alert_id"]] = f
    return result


def _cash(e: Event) -> bool:
    return e["kind"] in ("cash_deposit", "cash_withdrawal") or (e["channel"] or "").lower() == "cash"
