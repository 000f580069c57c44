"""The ingest mappings (docs/mapping.md) that turn each demo export into canonical events.

Between them they use every mapping feature: a delimiter, a decimal comma, a local time zone with
a strptime format, coded values through ``map``, epoch milliseconds, a constant, a catalogue
lookup, an amount computed from quantity and unit price, native Parquet timestamps and extra
columns kept in ``attrs``.
"""

from __future__ import annotations

from flagstone.generate._bank import KIND_CODES
from flagstone.generate._time import BANK_ZONE

_KIND_MAP = ", ".join(f"{code}: {kind}" for code, kind in KIND_CODES.items())

MAPPINGS: dict[str, str] = {
    "catalogue.yaml": """\
source: shop_catalogue
description: The shop's product catalogue; gives purchases their category (load it before shop.jsonl)
target: catalogue
format: csv
fields:
  item: sku
  category: category
  description: description
""",
    "entities.yaml": """\
source: bank_kyc
description: The bank's customer records (KYC) - customer type, PEP status, declared monthly income
target: entities
format: csv
fields:
  entity: account
  entity_type: {column: customer_type, map: {"P": person, "O": organisation}}
  pep: pep
  monthly_income: monthly_income
  country: country
""",
    "bank.yaml": f"""\
source: bank
description: Core-banking transaction export - semicolons, decimal comma, local booking times
target: events
format: csv
csv:
  delimiter: ";"
  decimal: ","
timezone: {BANK_ZONE}
fields:
  event_id: TXN_ID
  ts: {{column: BOOKED_AT, format: "%d.%m.%Y %H:%M:%S"}}
  kind: {{column: TYPE, map: {{{_KIND_MAP}}}, unmapped: quarantine}}
  actor: ACCOUNT
  counterparty: COUNTER_ACCOUNT
  amount: AMOUNT
  currency: CCY
  channel: CHANNEL
  place: TERMINAL
attrs:
  reference: REFERENCE
""",
    "shop.yaml": """\
source: shop
description: Web shop and store tills - one JSON object per order line (no line total), epoch-millisecond times
target: events
format: jsonl
fields:
  event_id: line_id
  ts: {column: ts, format: epoch_ms}
  kind: {value: purchase}
  actor: customer
  amount: {compute: "qty * unit_price"}
  currency: currency
  item: sku
  category: {lookup: catalogue, key: item}
  quantity: qty
  place: store
  channel: channel
attrs:
  order_id: order_id
  unit_price: unit_price
""",
    "transit.yaml": """\
source: transit
description: Fare-card validators on board - one row per tap; card and vehicle only, no stops
target: events
format: parquet
fields:
  event_id: tap_id
  ts: tapped_at
  kind: {value: transit_tap}
  actor: card_id
  place: vehicle
  item: fare_product
  amount: fare
  currency: {value: EUR}
""",
}
