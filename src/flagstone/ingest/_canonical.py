"""Canonical events as JSON objects (the scoring service's own format): checked and pseudonymised in
Python, without a database round trip, because a decision must take milliseconds. The encrypted
identities of new values are handed to the caller, which writes them with the events.

The checks are the ingest's for the same values (``_convert``): a blank text is missing, times
without an offset are UTC and must fall in 1900-2199, amounts and quantities fit DECIMAL(18,4)
without rounding, quantities are not negative, currencies are ISO 4217 codes; ``actor`` and
``counterparty`` become the same keyed pseudonyms as in a file ingest, and their identities are
stored encrypted. ``tests/test_canonical.py`` holds the two paths to the same result on random
records, and ``canonical_mapping_text`` is the mapping that ingests the same records from a file.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from flagstone.events import CURRENCIES, EVENT_COLUMNS, IDENTIFIER_FIELDS
from flagstone.ingest._pseudonym import Pseudonymiser
from flagstone.ingest._records import RecordError
from flagstone.protected import protected_match

PLACES = Decimal("0.0001")
LIMIT_DIGITS = 14  # DECIMAL(18,4): 14 digits before the point
TS_MIN, TS_MAX = datetime(1900, 1, 1), datetime(2200, 1, 1)
KNOWN_LIMIT = 100_000  # pseudonyms remembered as stored, before the memory is cleared
_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")
TEXT_FIELDS = ("event_id", "kind", "actor", "counterparty", "currency", "item", "category", "place", "channel")


class CanonicalEvent(BaseModel):
    """One event in the canonical schema (docs/events.md); ``source`` comes from the service."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, description="The source's own record id.")
    ts: datetime = Field(description="ISO 8601; without an offset it is UTC.")
    kind: str = Field(min_length=1, description="payment, transfer, cash_deposit, purchase, transit_tap, ...")
    actor: str | None = Field(None, description="Who acted; pseudonymised on arrival.")
    counterparty: str | None = Field(None, description="The other party; pseudonymised on arrival.")
    amount: Decimal | None = Field(None, description="Exact decimal, at most 4 places (a number or a string).")
    currency: str | None = Field(None, description="ISO 4217 code.")
    item: str | None = None
    category: str | None = None
    quantity: Decimal | None = Field(None, description="Not negative, at most 4 places.")
    place: str | None = None
    channel: str | None = None
    attrs: dict[str, Any] | None = Field(None, description="Anything else, kept as a JSON object.")

    @field_validator(*TEXT_FIELDS, "amount", "quantity", mode="before")
    @classmethod
    def _blank_is_missing(cls, v: Any) -> Any:
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("ts", mode="before")
    @classmethod
    def _text_time(cls, v: Any) -> Any:
        # Pydantic would read a number (or numeric text) as Unix time; the ingest reads ISO 8601 only.
        if not isinstance(v, str) or _NUMBER.fullmatch(v):
            raise ValueError("expected an ISO 8601 timestamp as text, such as 2024-03-31T14:05:00+02:00")
        return v

    @field_validator("ts")
    @classmethod
    def _utc_in_range(cls, v: datetime) -> datetime:
        try:
            utc = v.astimezone(UTC).replace(tzinfo=None) if v.tzinfo else v
        except OverflowError:  # e.g. 0001-01-01T00:00+14:00 is in year 0 in UTC
            utc = None
        if utc is None or not TS_MIN <= utc <= TS_MAX:
            raise ValueError("outside 1900-2199 after conversion to UTC")
        return utc

    @field_validator("amount", "quantity", mode="before")
    @classmethod
    def _ascii_number(cls, v: Any) -> Any:
        # Python's Decimal reads other scripts' digits (١٢٣); the ingest's SQL does not.
        if isinstance(v, str) and not v.isascii():
            raise ValueError("not a number; expected digits 0-9, e.g. 1234.56")
        return v

    @field_validator("amount", "quantity")
    @classmethod
    def _fits_the_store(cls, v: Decimal | None) -> Decimal | None:
        if v is None:
            return None
        # adjusted() reads the exponent without arithmetic: abs() of 1e999999999 would overflow
        if not v.is_finite() or (v != 0 and v.adjusted() >= LIMIT_DIGITS):
            raise ValueError("too large for DECIMAL(18,4): at most 14 digits before the decimal point")
        if v != v.quantize(PLACES):
            raise ValueError("more than 4 decimal places; DECIMAL(18,4) would round it")
        return v.quantize(PLACES)

    @field_validator("quantity")
    @classmethod
    def _not_negative(cls, v: Decimal | None) -> Decimal | None:
        if v is not None and v < 0:
            raise ValueError("negative quantity; expected 0 or more")
        return v

    @field_validator("currency")
    @classmethod
    def _iso_4217(cls, v: str | None) -> str | None:
        if v is None:
            return None
        code = v.strip().upper()
        if code not in CURRENCIES:
            raise ValueError("unknown currency; expected an ISO 4217 code such as EUR or USD")
        return code


def canonical_mapping_text(source: str) -> str:
    """The ingest mapping (YAML) for JSON-lines files of canonical events without ``attrs``."""
    names = [c.name for c in EVENT_COLUMNS if c.name not in ("source", "attrs")]
    fields = "\n".join(f"  {n}: {n}" for n in names)
    return f"source: {json.dumps(source)}\ntarget: events\nformat: jsonl\nfields:\n{fields}\n"


class CanonicalIntake:
    """Checks, converts and pseudonymises canonical events of one source."""

    def __init__(self, source: str, pseudonymiser: Pseudonymiser) -> None:
        self.source = source
        self.pseudonymiser = pseudonymiser
        self._known: set[str] = set()  # pseudonyms whose identity is stored already
        self._clear: dict[str, str] = {}  # pseudonym -> identity, met since the last take_identities

    def convert(self, records: Sequence[Any]) -> tuple[list[dict[str, Any]], list[RecordError]]:
        events: list[dict[str, Any]] = []
        errors: list[RecordError] = []
        for index, record in enumerate(records):
            try:
                event = CanonicalEvent.model_validate(record)
            except ValidationError as exc:
                errors.append(_first_problem(index, exc))
                continue
            special = _special_key(event.attrs)
            if special is not None:
                path, stem = special
                reason = f"names a special category ('{stem}'): Flagstone does not take such data (docs/oversight.md)"
                errors.append(RecordError(index, path, None, reason))
                continue
            row = event.model_dump()
            row["source"] = self.source
            if row["attrs"] is not None:
                row["attrs"] = json.dumps(row["attrs"], separators=(",", ":"), ensure_ascii=False)
            for name in IDENTIFIER_FIELDS:
                if row[name] is not None:
                    pseudonym = self.pseudonymiser.pseudonymise(row[name])
                    if pseudonym not in self._known:
                        self._clear[pseudonym] = row[name]
                    row[name] = pseudonym
            events.append(row)
        return events, errors

    def take_identities(self, events: Sequence[dict[str, Any]]) -> list[list[str]]:
        """The encrypted identities of the pseudonyms in ``events`` (converted here, and accepted by
        the caller) not stored yet, as ``[pseudonym, nonce, ciphertext]`` (hex). The caller stores
        them with the events, in the same durable write, and then calls ``stored``; identities of
        records it refused are forgotten."""
        clear = self._clear
        self._clear = {}
        pseudonyms = list(
            dict.fromkeys(e[f] for e in events for f in IDENTIFIER_FIELDS if e[f] in clear and e[f] not in self._known)
        )
        if not pseudonyms:
            return []
        nonces, ciphertexts = self.pseudonymiser.encrypt_many(pseudonyms, [clear[p] for p in pseudonyms])
        return [[p, n.hex(), c.hex()] for p, n, c in zip(pseudonyms, nonces, ciphertexts, strict=True)]

    def stored(self, identities: Sequence[Sequence[str]]) -> None:
        """These identities are durable: later events need not carry them again."""
        if len(self._known) > KNOWN_LIMIT:
            self._known.clear()
        self._known.update(p for p, _, _ in identities)


def _special_key(attrs: dict[str, Any] | None) -> tuple[str, str] | None:
    """The first key under ``attrs``, at any depth, whose name is a special category (religion,
    health, ...; however written), as (path, stem). A mapping's columns are checked when it loads;
    canonical events carry their own keys, so they are checked here, event by event."""
    stack: list[tuple[str, Any]] = [("attrs", attrs)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, inner in value.items():
                stem = protected_match(str(key))
                if stem is not None:
                    return f"{path}.{key}", stem
                stack.append((f"{path}.{key}", inner))
        elif isinstance(value, list):
            stack.extend((path, v) for v in value)
    return None


def _first_problem(index: int, exc: ValidationError) -> RecordError:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err.get("loc", ())) or None
    value = err.get("input")
    shown = None if value is None or (isinstance(value, dict) and field is None) else str(value)[:200]
    reason = err.get("msg", "invalid").removeprefix("Value error, ")
    if err.get("type") == "missing":
        reason = "missing, but every event needs it"
        shown = None
    elif str(err.get("type", "")).startswith(("datetime", "date_")):
        reason = f"not a valid ISO 8601 timestamp such as 2024-03-31T14:05:00+02:00 ({reason})"
    elif err.get("type") == "extra_forbidden":
        reason = "not a canonical field (see docs/events.md); put extra values under attrs"
    return RecordError(index, field, shown, reason)
