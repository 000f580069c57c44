"""A case's goAML suspicious-transaction report, built when a second person approves it.

The report names the parties by their real identifiers, decrypted from the vault, because the
financial intelligence unit needs them; that happens only here, after four eyes, and the report's
download and filing are audited. It is built from the approved proposal's text and frozen
evidence, and it rests in the case database only encrypted with the store's key (AES-GCM, bound
to its case and version), beside its SHA-256: whoever holds the database or its backups without
the key reads no identity, and a download later gives the very bytes that were approved.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from cryptography.exceptions import InvalidTag
from sqlalchemy import Connection, select

from flagstone.errors import InputError
from flagstone.ingest import Pseudonymiser
from flagstone.oversight.context import Oversight
from flagstone.oversight.goaml import (
    GoamlError,
    Party,
    ReportingEntity,
    ReportingPerson,
    StrReport,
    Transaction,
    build_report,
)
from flagstone.oversight.proposals import bound
from flagstone.oversight.schema import case_alerts, utcnow, vault
from flagstone.oversight.users import User
from flagstone.oversight.workflow import WorkflowError

# Who sends and who receives, by event kind: the actor is always the reporting entity's client.
_CASH_IN = frozenset({"cash_deposit"})
_CASH_OUT = frozenset({"cash_withdrawal"})


@dataclass(frozen=True)
class SealedReport:
    """An approved report as it rests: encrypted, with the SHA-256 of its clear bytes."""

    sha256: str
    nonce: bytes
    ciphertext: bytes


def seal_report(
    ov: Oversight,
    con: Connection,
    case: Any,
    *,
    version: int,
    text: str,
    evidence: list[dict[str, Any]],
    approver: User,
    proposer: str,
) -> SealedReport:
    """Build the report of proposal ``version`` (its ``text`` and frozen ``evidence``) and encrypt it."""
    xml = case_report_xml(
        ov, con, case, version=version, text=text, evidence=evidence, approver=approver, proposer=proposer
    )
    nonce, ciphertext = _cipher(ov, "encrypted").encrypt(bound(case.id, version), xml.decode("utf-8"))
    return SealedReport(hashlib.sha256(xml).hexdigest(), nonce, ciphertext)


def open_report(ov: Oversight, case_id: int, version: int, sealed: SealedReport) -> bytes:
    """The clear bytes of a sealed report, checked against the SHA-256 recorded at approval."""
    try:
        text = _cipher(ov, "decrypted").decrypt(bound(case_id, version), sealed.nonce, sealed.ciphertext)
    except InvalidTag as exc:
        raise WorkflowError(
            f"the report of case {case_id} cannot be decrypted: the key is not the one it was sealed with, "
            "or the sealed report was altered or moved from another case"
        ) from exc
    data = text.encode("utf-8")
    if hashlib.sha256(data).hexdigest() != sealed.sha256:
        raise WorkflowError(f"the report of case {case_id} does not match the SHA-256 recorded when it was approved")
    return data


def _cipher(ov: Oversight, done: str) -> Pseudonymiser:
    """The store's key (never a new one: a report sealed with a new key would open for nobody)."""
    try:
        return Pseudonymiser.for_store(ov.store_path, create=False)
    except InputError as exc:
        raise WorkflowError(f"the report cannot be {done} here: {exc}") from exc


def case_report_xml(
    ov: Oversight,
    con: Connection,
    case: Any,
    *,
    version: int,
    text: str,
    evidence: list[dict[str, Any]],
    approver: User,
    proposer: str,
) -> bytes:
    events = [SimpleNamespace(**e) for e in evidence]
    names = _identities(ov, con, {p for e in events for p in (e.actor, e.counterparty) if p})
    entity_cfg = ov.config.reporting_entity
    entity = ReportingEntity(
        rentity_id=entity_cfg.rentity_id,
        name=entity_cfg.name,
        branch=entity_cfg.branch,
        currency_code_local=entity_cfg.currency,
        country=entity_cfg.country,
    )
    first, _, last = approver.display_name.partition(" ")
    person = ReportingPerson(first_name=first or approver.username, last_name=last or approver.username, email=None)

    def party(pseudonym: str | None, client: bool) -> Party | None:
        if pseudonym is None:
            return None
        institution = entity_cfg.name if client else "unknown"
        return Party(account=names.get(pseudonym, pseudonym), name=None, institution=institution, country=None,
                     my_client=client)  # fmt: skip

    transactions = []
    for e in events:
        if e.kind in _CASH_IN:
            sender, receiver = None, party(e.actor, True)
        elif e.kind in _CASH_OUT:
            sender, receiver = party(e.actor, True), None
        else:
            sender, receiver = party(e.actor, True), party(e.counterparty, False)
        transactions.append(
            Transaction(
                number=e.event_id,
                date=e.ts,
                amount_local=Decimal(e.amount) if e.amount is not None else Decimal(0),
                currency=e.currency,
                kind=e.kind,
                description=_describe(e),
                place=e.place,
                sender=sender,
                receiver=receiver,
            )
        )
    alerts: list[Any] = list(
        con.execute(
            select(case_alerts.c.rule_id, case_alerts.c.rule_version, case_alerts.c.reason)
            .where(case_alerts.c.case_id == case.id)
            .order_by(case_alerts.c.first_ts, case_alerts.c.alert_id)
        ).all()
    ) or [SimpleNamespace(rule_id=case.rule_id, rule_version=case.rule_version, reason=case.reason)]
    # One scheme, every alert of it: each rule's reason, and each rule once among the indicators.
    reasons = "\n".join(f"- {a.reason} ({a.rule_id})" for a in alerts) if len(alerts) > 1 else case.reason
    rules = list(dict.fromkeys(f"{a.rule_id} v{a.rule_version}" for a in alerts))
    report = StrReport(
        entity=entity,
        person=person,
        reference=f"FLAGSTONE-CASE-{case.id}",
        submitted=utcnow(),
        reason=f"{reasons}\n\nReviewer's proposal: {text}",
        action=f"Detected by rule{'s' if len(rules) > 1 else ''} {', '.join(rules)}; report proposed by {proposer} "
        f"(proposal v{version}) and approved by {approver.username} (four eyes).",
        indicators=tuple(dict.fromkeys(a.rule_id for a in alerts)),
        transactions=tuple(transactions),
    )
    try:
        return build_report(report)
    except GoamlError as exc:  # e.g. a reporting entity the configuration left incomplete
        raise WorkflowError(f"the goAML report cannot be built: {exc}") from exc


def _describe(e: Any) -> str:
    parts = [e.kind]
    if e.item:
        parts.append(f"item {e.item}")
    if e.quantity is not None:
        parts.append(f"quantity {e.quantity}")
    if e.channel:
        parts.append(f"via {e.channel}")
    return ", ".join(parts)


def _identities(ov: Oversight, con: Connection, pseudonyms: set[str]) -> dict[str, str]:
    if not pseudonyms:
        return {}
    rows = con.execute(select(vault).where(vault.c.pseudonym.in_(sorted(pseudonyms)))).all()
    if not rows:
        return {}
    return ov.decrypt(rows)
