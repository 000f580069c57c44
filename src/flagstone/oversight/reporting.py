"""A case's goAML suspicious-transaction report, built when a second person approves it.

The report names the parties by their real identifiers, decrypted from the vault, because the
financial intelligence unit needs them; that happens only here, after four eyes, and the report's
download and filing are audited.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from flagstone.oversight.context import Oversight, utcnow
from flagstone.oversight.goaml import (
    GoamlError,
    Party,
    ReportingEntity,
    ReportingPerson,
    StrReport,
    Transaction,
    build_report,
)
from flagstone.oversight.schema import case_events, vault
from flagstone.oversight.users import User
from flagstone.oversight.workflow import WorkflowError

# Who sends and who receives, by event kind: the actor is always the reporting entity's client.
_CASH_IN = frozenset({"cash_deposit"})
_CASH_OUT = frozenset({"cash_withdrawal"})


def case_report_xml(ov: Oversight, con: Connection, case: Any, *, approver: User, proposer: str) -> str:
    events = con.execute(select(case_events).where(case_events.c.case_id == case.id).order_by(case_events.c.ts)).all()
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
    report = StrReport(
        entity=entity,
        person=person,
        reference=f"FLAGSTONE-CASE-{case.id}",
        submitted=utcnow(),
        reason=f"{case.reason}\n\nReviewer's proposal: {case.proposal or ''}",
        action=f"Detected by rule {case.rule_id} v{case.rule_version}; report proposed by {proposer} and "
        f"approved by {approver.username} (four eyes).",
        indicators=(case.rule_id,),
        transactions=tuple(transactions),
    )
    try:
        return build_report(report).decode("utf-8")
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
