"""goAML XML export of suspicious-transaction reports (STR).

goAML is UNODC's reporting system for financial intelligence units. ``build_report`` turns an
approved Flagstone case into one ``<report>`` document; ``validate`` checks a document against
``goaml.xsd``, Flagstone's subset of the published goAML schema (same element names and order;
see docs/goaml.md for what it leaves out and which goAML-required elements a compliance officer
must still complete).

Text is never allowed to break the document or the schema: characters XML 1.0 cannot carry are
replaced by U+FFFD, line breaks are normalised to ``\\n`` (what any XML parser would do), and
strings are cut to goAML's maximum lengths. Numbers and dates are not silently altered: an amount
or date goAML cannot represent raises ``GoamlError``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext
from importlib import resources
from xml.etree import ElementTree as ET
from xml.parsers import expat

import xmlschema

from flagstone.errors import FlagstoneError

__all__ = [
    "DEFAULT_FUNDS_CODES",
    "DEFAULT_TRANSMODE_CODES",
    "GoamlError",
    "Party",
    "ReportingEntity",
    "ReportingPerson",
    "StrReport",
    "Transaction",
    "build_report",
    "validate",
]

SUBMISSION_CODE = "E"  # electronic submission (goAML: E electronic, M manual)
REPORT_CODE = "STR"
UNKNOWN_CODE = "-"  # the "unknown" entry every goAML code list carries
CASH_FUNDS = "K"  # funds type "cash" in goAML's funds lookup (FIU-specific; see docs/goaml.md)

# goAML conduction types (transmode_code) are an FIU lookup table: the letters mean what the
# receiving FIU says they mean. Until an FIU's table is configured every kind maps to "unknown".
DEFAULT_TRANSMODE_CODES: Mapping[str, str] = {
    "payment": UNKNOWN_CODE,
    "transfer": UNKNOWN_CODE,
    "cash_deposit": UNKNOWN_CODE,
    "cash_withdrawal": UNKNOWN_CODE,
    "purchase": UNKNOWN_CODE,
    "transit_tap": UNKNOWN_CODE,
}

# (from_funds_code, to_funds_code) per Flagstone kind: cash enters on the from side of a deposit
# and leaves on the to side of a withdrawal.
DEFAULT_FUNDS_CODES: Mapping[str, tuple[str, str]] = {
    "cash_deposit": (CASH_FUNDS, UNKNOWN_CODE),
    "cash_withdrawal": (UNKNOWN_CODE, CASH_FUNDS),
}

# Maximum lengths from the goAML 5.0.1 schema.
_COMMENTS = 8000
_TEXT = 255
_NAME = 100
_ADDRESS = 100
_TXN_NUMBER = 100
_TRANSMODE_COMMENT = 50
_INDICATOR = 255
_EMAILS = 5

_AMOUNT_LIMIT = Decimal("7900000000000000")
_AMOUNT_PLACES = 13
_EARLIEST = datetime(1753, 1, 1)
_INT_MAX = 2**31 - 1

_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_CURRENCY = re.compile(r"[A-Z]{3}")
_COUNTRY = re.compile(r"[A-Z]{2}")
_CODE = re.compile(r"[A-Z]{1,2}|-")


class GoamlError(FlagstoneError, ValueError):
    """A goAML report cannot be built, or a document does not match goaml.xsd."""


@dataclass(frozen=True)
class ReportingEntity:
    """The reporting institution, from configuration."""

    rentity_id: int
    name: str
    branch: str | None
    currency_code_local: str  # ISO 4217, e.g. "EUR"
    country: str  # ISO 3166 alpha-2
    # goAML's <location> needs a street line and a city; without both it is left out.
    address: str | None = None
    city: str | None = None


@dataclass(frozen=True)
class ReportingPerson:
    """The compliance officer who approved the report."""

    first_name: str
    last_name: str
    email: str | None


@dataclass(frozen=True)
class Party:
    """One side of a transaction."""

    account: str  # the identifier (real after approval, or a pseudonym)
    name: str | None  # account holder's name, if known
    institution: str  # institution name (our own for my_client)
    country: str | None
    my_client: bool  # True: written as t_from_my_client / t_to_my_client


@dataclass(frozen=True)
class Transaction:
    number: str  # event_id
    date: datetime  # UTC when naive
    amount_local: Decimal
    currency: str | None
    kind: str  # Flagstone event kind: cash_deposit, transfer, payment, ...
    description: str
    place: str | None
    sender: Party | None  # None: cash paid in by someone unknown
    receiver: Party | None  # None: cash paid out to someone unknown


@dataclass(frozen=True)
class StrReport:
    entity: ReportingEntity
    person: ReportingPerson
    reference: str  # entity_reference: the Flagstone case id
    submitted: datetime
    reason: str  # why suspicious: rule reasons and the reviewer's text
    action: str  # action taken
    indicators: tuple[str, ...]  # FIU indicator codes, at least one
    transactions: tuple[Transaction, ...]  # at least one


# ----------------------------------------------------------------------------- building


def build_report(
    report: StrReport,
    *,
    transmode_codes: Mapping[str, str] | None = None,
    funds_codes: Mapping[str, tuple[str, str]] | None = None,
) -> bytes:
    """The report as a UTF-8 goAML XML document with an XML declaration.

    ``transmode_codes`` maps Flagstone event kinds to the FIU's conduction codes and
    ``funds_codes`` maps kinds to (from, to) funds codes; kinds missing from either map to "-".
    """
    transmodes = DEFAULT_TRANSMODE_CODES if transmode_codes is None else transmode_codes
    funds = DEFAULT_FUNDS_CODES if funds_codes is None else funds_codes
    entity = report.entity
    _check_entity(entity)
    if not report.transactions:
        raise GoamlError("a goAML report needs at least one <transaction>; the report has none")
    indicators = [_text(i, _INDICATOR) for i in report.indicators]
    indicators = [i for i in indicators if i]
    if not indicators:
        raise GoamlError("a goAML report needs at least one <report_indicators>/<indicator>; none given")

    root = ET.Element("report")
    _leaf(root, "rentity_id", str(entity.rentity_id))
    _optional(root, "rentity_branch", _text(entity.branch, _TEXT))
    _leaf(root, "submission_code", SUBMISSION_CODE)
    _leaf(root, "report_code", REPORT_CODE)
    _optional(root, "entity_reference", _text(report.reference, _TEXT))
    _leaf(root, "submission_date", _date(report.submitted, "submission_date"))
    _leaf(root, "currency_code_local", entity.currency_code_local)
    _reporting_person(root, report.person)
    _location(root, entity)
    _optional(root, "reason", _text(report.reason, _COMMENTS))
    _optional(root, "action", _text(report.action, _COMMENTS))
    for index, txn in enumerate(report.transactions, start=1):
        _transaction(root, txn, entity, transmodes, funds, index)
    block = ET.SubElement(root, "report_indicators")
    for indicator in indicators:
        _leaf(block, "indicator", indicator)

    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _check_entity(entity: ReportingEntity) -> None:
    if not 1 <= entity.rentity_id <= _INT_MAX:
        raise GoamlError(f"rentity_id must be between 1 and {_INT_MAX}; configured: {entity.rentity_id}")
    if not _CURRENCY.fullmatch(entity.currency_code_local):
        raise GoamlError(
            f"currency_code_local must be an ISO 4217 code such as EUR; configured: {entity.currency_code_local!r}"
        )
    if not _COUNTRY.fullmatch(entity.country):
        raise GoamlError(f"the reporting entity's country must be ISO 3166 alpha-2; configured: {entity.country!r}")


def _reporting_person(root: ET.Element, person: ReportingPerson) -> None:
    node = ET.SubElement(root, "reporting_person")
    _leaf(node, "first_name", _required(person.first_name, _NAME, "reporting_person/first_name"))
    _leaf(node, "last_name", _required(person.last_name, _NAME, "reporting_person/last_name"))
    _optional(node, "email", _text(person.email, _TEXT))


def _location(root: ET.Element, entity: ReportingEntity) -> None:
    address, city = _text(entity.address, _ADDRESS), _text(entity.city, _TEXT)
    if not (address and city):
        return
    node = ET.SubElement(root, "location")
    _leaf(node, "address_type", UNKNOWN_CODE)
    _leaf(node, "address", address)
    _leaf(node, "city", city)
    _leaf(node, "country_code", entity.country)


def _transaction(
    root: ET.Element,
    txn: Transaction,
    entity: ReportingEntity,
    transmodes: Mapping[str, str],
    funds: Mapping[str, tuple[str, str]],
    index: int,
) -> None:
    where = f"transaction {index} ({txn.number!r})"
    node = ET.SubElement(root, "transaction")
    _leaf(node, "transactionnumber", _required(txn.number, _TXN_NUMBER, f"{where}: transactionnumber"))
    _leaf(node, "transaction_location", _text(txn.place, _TEXT))
    _leaf(node, "transaction_description", _text(txn.description, _COMMENTS))
    _leaf(node, "date_transaction", _date(txn.date, f"{where}: date_transaction"))
    _leaf(node, "transmode_code", _code(transmodes.get(txn.kind, UNKNOWN_CODE), f"transmode code for {txn.kind!r}"))
    _optional(node, "transmode_comment", _text(txn.kind, _TRANSMODE_COMMENT))
    _leaf(node, "amount_local", _amount(txn.amount_local, f"{where}: amount_local"))
    from_funds, to_funds = funds.get(txn.kind, (UNKNOWN_CODE, UNKNOWN_CODE))
    currency = _currency(txn.currency)
    _side(node, "from", txn.sender, _code(from_funds, f"from funds code for {txn.kind!r}"), currency, entity, where)
    _side(node, "to", txn.receiver, _code(to_funds, f"to funds code for {txn.kind!r}"), currency, entity, where)


def _side(
    node: ET.Element,
    side: str,
    party: Party | None,
    funds_code: str,
    currency: str | None,
    entity: ReportingEntity,
    where: str,
) -> None:
    my_client = party is not None and party.my_client
    block = ET.SubElement(node, f"t_{side}_my_client" if my_client else f"t_{side}")
    _leaf(block, f"{side}_funds_code", funds_code)
    country = UNKNOWN_CODE
    if party is not None:
        _account(block, f"{side}_account", party, currency, entity, where)
        country = _country(party.country) or (entity.country if party.my_client else UNKNOWN_CODE)
    _leaf(block, f"{side}_country", country)


def _account(
    block: ET.Element, tag: str, party: Party, currency: str | None, entity: ReportingEntity, where: str
) -> None:
    node = ET.SubElement(block, tag)
    _leaf(node, "institution_name", _required(party.institution, _TEXT, f"{where}: {tag}/institution_name"))
    if party.my_client:
        _optional(node, "branch", _text(entity.branch, _TEXT))
    _leaf(node, "account", _required(party.account, _TEXT, f"{where}: {tag}/account"))
    if party.my_client:
        _leaf(node, "currency_code", currency or entity.currency_code_local)
    else:
        _optional(node, "currency_code", currency or "")
    _optional(node, "account_name", _text(party.name, _TEXT))
    if party.my_client:
        _leaf(node, "personal_account_type", UNKNOWN_CODE)
        _leaf(node, "status_code", UNKNOWN_CODE)


# ----------------------------------------------------------------------------- values


def _leaf(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, tag).text = text


def _optional(parent: ET.Element, tag: str, text: str) -> None:
    if text:
        _leaf(parent, tag, text)


def _text(value: str | None, limit: int) -> str:
    """XML-safe text cut to ``limit`` characters ("" for None)."""
    if value is None:
        return ""
    clean = _NOT_XML_CHAR.sub("\ufffd", value).replace("\r\n", "\n").replace("\r", "\n")
    return clean[:limit]


def _required(value: str, limit: int, field: str) -> str:
    text = _text(value, limit)
    if not text:
        raise GoamlError(f"{field} is required by goAML and is empty")
    return text


def _code(value: str, what: str) -> str:
    if not _CODE.fullmatch(value):
        raise GoamlError(f"{what} must be one or two capital letters or '-'; configured: {value!r}")
    return value


def _currency(value: str | None) -> str | None:
    code = (value or "").strip().upper()
    return code if _CURRENCY.fullmatch(code) else None


def _country(value: str | None) -> str | None:
    code = (value or "").strip().upper()
    return code if _COUNTRY.fullmatch(code) else None


def _date(value: datetime, field: str) -> str:
    if value.tzinfo is not None:
        try:
            value = value.astimezone(UTC).replace(tzinfo=None)
        except OverflowError as exc:
            raise GoamlError(f"{field}: {value.isoformat()} is outside the dates goAML can hold") from exc
    if value < _EARLIEST:
        raise GoamlError(f"{field}: goAML dates start at 1753-01-01; got {value.isoformat()}")
    return value.replace(microsecond=0).isoformat(timespec="seconds")


def _amount(value: Decimal, field: str) -> str:
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise GoamlError(f"{field}: {value!r} is not a decimal amount") from exc
    if not amount.is_finite():
        raise GoamlError(f"{field}: {value} is not a finite amount")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_AMOUNT_PLACES:
        with localcontext() as context:
            context.prec = 60  # room for 16 integer and 13 fraction digits, whatever the input
            amount = amount.quantize(Decimal(1).scaleb(-_AMOUNT_PLACES), rounding=ROUND_HALF_EVEN)
    if abs(amount) > _AMOUNT_LIMIT:
        raise GoamlError(f"{field}: {value} is outside goAML's range of ±{_AMOUNT_LIMIT}")
    return format(amount, "f")


# ----------------------------------------------------------------------------- validation


@functools.cache
def _schema() -> xmlschema.XMLSchema10:
    source = resources.files("flagstone.oversight").joinpath("goaml.xsd").read_text(encoding="utf-8")
    return xmlschema.XMLSchema10(source)


def validate(xml: bytes) -> None:
    """Raise ``GoamlError`` naming the line and element of the first problem, if ``xml`` does not
    match goaml.xsd."""
    root, lines = _parse(xml)
    for error in _schema().iter_errors(root):
        raise GoamlError(_describe(error, lines)) from None


def _parse(xml: bytes) -> tuple[ET.Element, dict[int, int]]:
    """The element tree of ``xml`` and each element's start line (keyed by ``id``).

    Expat directly rather than ElementTree's parser, because only expat reports line numbers;
    DTDs are refused, which also rules out entity expansion attacks.
    """
    builder = ET.TreeBuilder()
    lines: dict[int, int] = {}
    parser = expat.ParserCreate()

    def start(tag: str, attrs: dict[str, str]) -> None:
        lines[id(builder.start(tag, attrs))] = parser.CurrentLineNumber

    def refuse_dtd(*_: object) -> None:
        raise GoamlError(f"goAML XML must not contain a DTD (line {parser.CurrentLineNumber})")

    parser.buffer_text = True
    parser.StartElementHandler = start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = refuse_dtd
    parser.EntityDeclHandler = refuse_dtd
    try:
        parser.Parse(xml, True)
    except expat.ExpatError as exc:
        raise GoamlError(
            f"goAML XML is not well-formed at line {exc.lineno}, column {exc.offset}: {expat.errors.messages[exc.code]}"
        ) from exc
    return builder.close(), lines


def _describe(error: xmlschema.XMLSchemaValidationError, lines: dict[int, int]) -> str:
    elem = error.elem if isinstance(error.elem, ET.Element) else None
    child = getattr(error, "invalid_child", None)
    # For a misplaced or unknown child, point at the child itself, not at its parent's start.
    at = child if isinstance(child, ET.Element) else elem
    line = lines.get(id(at)) if at is not None else None
    where = f"line {line}, " if line else ""
    what = f"element <{at.tag}>" if at is not None else "the document"
    inside = f" inside <{elem.tag}>" if at is child and elem is not None else ""
    path = error.path or (f"/{elem.tag}" if elem is not None else "/")
    reason = (error.reason or str(error)).strip()
    return f"goAML XML does not match goaml.xsd at {where}{what}{inside} ({path}): {reason}"
