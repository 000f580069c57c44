"""The canonical event: one schema for payments, purchases and transit taps alike.

This module is the single definition of the events table and the reference tables; the store's
DDL, the ingest validator, the rule type checker and ``docs/events.md`` (checked by a test) all
follow it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ValueType = Literal["string", "decimal", "timestamp", "boolean", "json"]

# Exact decimals with four places cover every ISO 4217 minor unit (at most 4) and fractional
# quantities; 18 digits keep them in a 64-bit integer, which is what makes window sums fast.
DECIMAL_SQL = "DECIMAL(18,4)"


@dataclass(frozen=True)
class Column:
    name: str
    type: ValueType
    required: bool
    doc: str

    @property
    def sql_type(self) -> str:
        return {
            "string": "VARCHAR",
            "decimal": DECIMAL_SQL,
            "timestamp": "TIMESTAMP",
            "boolean": "BOOLEAN",
            "json": "JSON",
        }[self.type]


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "string", True, "The source's own record id, kept exactly as given."),
    Column("source", "string", True, "Name of the source system (from the mapping)."),
    Column("ts", "timestamp", True, "When the event happened, in UTC (microsecond precision)."),
    Column(
        "kind",
        "string",
        True,
        "What happened: payment, transfer, cash_deposit, cash_withdrawal, purchase, transit_tap, ... (an open set).",
    ),
    Column("actor", "string", False, "Who acted (account, customer, fare card). Pseudonymised at ingest."),
    Column("counterparty", "string", False, "The other party, if any. Pseudonymised at ingest."),
    Column("amount", "decimal", False, "Money amount, exact decimal (up to 4 places)."),
    Column("currency", "string", False, "ISO 4217 code of `amount`."),
    Column("item", "string", False, "Product or fare item, as the source names it."),
    Column("category", "string", False, "Category of the item (given, or looked up in the catalogue)."),
    Column("quantity", "decimal", False, "How many units of `item` (not negative)."),
    Column("place", "string", False, "Where: a vehicle, shop, branch or terminal."),
    Column("channel", "string", False, "How: branch, atm, online, card, ..."),
    Column("attrs", "json", False, "Anything else from the source, as a JSON object."),
)

EVENT_FIELDS: dict[str, Column] = {c.name: c for c in EVENT_COLUMNS}

# Fields that are always pseudonymised at ingest; a mapping may mark more as personal.
IDENTIFIER_FIELDS: tuple[str, ...] = ("actor", "counterparty")

ENTITY_COLUMNS: tuple[Column, ...] = (
    Column("entity", "string", True, "The entity's identifier, pseudonymised like `actor`."),
    Column("entity_type", "string", False, "`person` or `organisation`."),
    Column("pep", "boolean", False, "True for a politically exposed person."),
    Column("monthly_income", "decimal", False, "Declared monthly income (in the deployment currency)."),
    Column("country", "string", False, "ISO 3166 country code of residence or registration."),
)

ENTITY_FIELDS: dict[str, Column] = {c.name: c for c in ENTITY_COLUMNS}

CATALOGUE_COLUMNS: tuple[Column, ...] = (
    Column("item", "string", True, "Product code or name as it appears in events."),
    Column("category", "string", True, "Category, e.g. `precursor.hydrogen_peroxide`."),
    Column("description", "string", False, "Human description of the item."),
)

# ISO 4217 codes accepted at ingest (active codes; the list is short on purpose to catch typos).
CURRENCIES: frozenset[str] = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL
    GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW
    KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN
    NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS
    VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split()  # noqa: SIM905 - readable as a block
)


# What counts as cash, for the triage features and the model detector: a kind in the canonical set
# (cash_deposit, cash_withdrawal; the demo bank) or channel CASH in any case (AMLGentex marks cash
# spending that way). One definition, in SQL and in Python.
CASH_KINDS = ("cash_deposit", "cash_withdrawal")


def cash_sql(e: str) -> str:
    """SQL test that event alias ``e`` is cash."""
    kinds = ", ".join(f"'{k}'" for k in CASH_KINDS)
    return f"({e}.kind IN ({kinds}) OR lower(coalesce({e}.channel, '')) = 'cash')"


def is_cash(kind: object, channel: object) -> bool:
    """The same test on one event's values."""
    return kind in CASH_KINDS or str(channel or "").lower() == "cash"
