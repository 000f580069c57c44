"""Versions of a case's proposed report: what each one says, the evidence it covers, how it ended.

A proposal is numbered (v1, v2, ...) and has an identity: the SHA-256 of the case, the version,
the proposer, the text, the evidence events as they are stored and the parties in them. The
approve form carries that identity, so an approval binds to exactly what the approver read. The
evidence is frozen when a version is proposed: events a sync adds later are shown apart and are
not in the report (to include them, send the proposal back and propose again, which makes a new
version). Versions are never deleted while the case lives; one that ends records how (withdrawn by
its proposer, sent back by another supervisor, approved) and which supervisors had opened the case
while it was current, so that a withdrawal under an approver's eyes shows in the history.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from flagstone.oversight.schema import audit_entries, case_events, proposals, users, utcnow

APPROVED = "approved"
WITHDRAWN = "withdrawn"
SENT_BACK = "sent back"
_FORMAT = "flagstone-proposal/v1"


@dataclass(frozen=True)
class Draft:
    """A version about to be proposed: its number, frozen evidence and identity."""

    version: int
    evidence: list[tuple[str, str]]
    sha256: str


def latest(con: Connection, case_id: int) -> Any:
    """The newest version of the case's proposal (whatever its outcome), or None."""
    query = select(proposals).where(proposals.c.case_id == case_id).order_by(proposals.c.version.desc()).limit(1)
    return con.execute(query).first()


def identity(row: Any) -> str | None:
    """The identity the case holds: its current or approved version's, None when sent back."""
    return row.sha256 if row is not None and row.outcome in (None, APPROVED) else None


def draft(con: Connection, case: Any, proposer: str, text: str) -> Draft:
    """The next version of ``case``'s proposal, covering the evidence it holds now."""
    top = con.execute(select(func.max(proposals.c.version)).where(proposals.c.case_id == case.id)).scalar()
    version = int(top or 0) + 1
    rows = evidence(con, case.id)
    keys = [(r["source"], r["event_id"]) for r in rows]
    return Draft(version, keys, digest(case, version, proposer, text, rows))


def add(con: Connection, case_id: int, new: Draft, text: str, proposer_id: int, audit_seq: int) -> None:
    """Keep version ``new``, proposed by ``proposer_id`` and audited as entry ``audit_seq``."""
    con.execute(
        insert(proposals).values(
            case_id=case_id,
            version=new.version,
            text=text,
            proposer_id=proposer_id,
            proposed_at=utcnow(),
            audit_seq=audit_seq,
            evidence=json.dumps([list(k) for k in new.evidence]),
            sha256=new.sha256,
        )
    )


def evidence(con: Connection, case_id: int, keys: list[tuple[str, str]] | None = None) -> list[dict[str, Any]]:
    """The case's evidence in time order; only the events ``keys`` names when given."""
    rows = [
        dict(r._mapping)
        for r in con.execute(
            select(case_events)
            .where(case_events.c.case_id == case_id)
            .order_by(case_events.c.ts, case_events.c.source, case_events.c.event_id)
        )
    ]
    if keys is None:
        return rows
    wanted = set(keys)
    return [r for r in rows if (r["source"], r["event_id"]) in wanted]


def frozen(row: Any) -> list[tuple[str, str]]:
    """The evidence keys a version was proposed with."""
    return [(str(s), str(e)) for s, e in json.loads(row.evidence)]


def digest(case: Any, version: int, proposer: str, text: str, rows: list[dict[str, Any]]) -> str:
    """The identity of a version: every byte an approver reads, canonically."""
    events = [{k: _plain(v) for k, v in sorted(r.items()) if k != "case_id"} for r in rows]
    parties = sorted({p for r in rows for p in (r["actor"], r["counterparty"]) if p})
    doc = {
        "format": _FORMAT,
        "case": case.id,
        "alert": case.alert_id,
        "rule": [case.rule_id, case.rule_version],
        "reason": case.reason,
        "values": case.values_json,
        "group_key": case.group_key,
        "version": version,
        "proposer": proposer,
        "text": text,
        "evidence": events,
        "parties": parties,
    }
    data = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    """One spelling per value, whatever the database hands back (2.5 and 2.5000 are one amount)."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, float):
        return format(Decimal(repr(value)).normalize(), "f")
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def holders(con: Connection, case_id: int, since_seq: int, proposer_id: int) -> list[str]:
    """Supervisors other than the proposer who opened the case after audit entry ``since_seq``:
    they held this version (they may have its approve form open)."""
    viewers = con.execute(
        select(audit_entries.c.actor)
        .where(
            audit_entries.c.action == "alert_viewed",
            audit_entries.c.target == str(case_id),
            audit_entries.c.seq > since_seq,
        )
        .distinct()
    ).scalars()
    names = set(viewers)
    if not names:
        return []
    return sorted(
        con.execute(
            select(users.c.username).where(
                users.c.username.in_(sorted(names)), users.c.role == "supervisor", users.c.id != proposer_id
            )
        ).scalars()
    )


def end(con: Connection, row: Any, outcome: str, by_id: int, reason: str = "", **report: Any) -> list[str]:
    """Close version ``row`` with ``outcome``; returns the supervisors who held it."""
    held = holders(con, row.case_id, row.audit_seq, row.proposer_id)
    con.execute(
        update(proposals)
        .where(proposals.c.id == row.id)
        .values(
            outcome=outcome,
            ended_by=by_id,
            ended_at=utcnow(),
            end_reason=reason or None,
            held_by=json.dumps(held),
            **report,
        )
    )
    return held


def versions(con: Connection, case_id: int) -> list[dict[str, Any]]:
    """Every version of the case's proposal, oldest first, for the case page."""
    rows = con.execute(select(proposals).where(proposals.c.case_id == case_id).order_by(proposals.c.version)).all()
    out = []
    for r in rows:
        item = {k: v for k, v in r._mapping.items() if k not in ("report_nonce", "report_ciphertext", "evidence")}
        item["evidence_keys"] = frozen(r)
        item["held_by"] = json.loads(r.held_by) if r.held_by else []
        out.append(item)
    return out


def stale_detail(con: Connection, case_id: int, seen: str | None, current: Any) -> str:
    """What changed between the version the approver opened and the one the case holds now."""
    opened = None
    if seen:
        opened = con.execute(
            select(proposals).where(proposals.c.case_id == case_id, proposals.c.sha256 == seen)
        ).first()
    parts = []
    if opened is not None and opened.outcome not in (None, APPROVED):
        when = opened.ended_at.strftime("%Y-%m-%d %H:%M:%S") if opened.ended_at else "?"
        parts.append(f"you opened v{opened.version}, {opened.outcome} at {when} UTC")
    elif seen and opened is None:
        parts.append("the version you opened is not one of this case's")
    if current is not None and current.outcome is None:
        parts.append(f"the case now holds v{current.version}")
    else:
        parts.append("the case holds no proposal now")
    return "; ".join(parts)


def bound(case_id: int, version: int) -> str:
    """What the ciphertext is bound to (AES-GCM associated data): it opens for this case and version only."""
    return f"goaml-report/case-{case_id}/v{version}"
