"""The account view (``ir.AccountView``) as SQL, shared by the DuckDB and Spark engines: common
table expressions that turn the rule's matched events into legs, ending in one named ``legs``.

Steps: ``booked`` (the matched events, each with ``booked_in``), ``leg_rows`` (each event's own
leg, plus the payee's derived incoming leg of an outgoing event), ``leg_pairs`` (incoming legs
numbered within one movement and kind, own or derived) and ``legs``: an incoming leg whose partner
of the other kind (same movement, same number) comes earlier in event order is left out. Cost:
one pass over the matched events, a sort of the legs by movement and a hash join of the legs with
themselves on the movement, so O(N log N); the legs are at most twice the events.
"""

from __future__ import annotations

from flagstone.events import EVENT_COLUMNS

COLUMNS = tuple(c.name for c in EVENT_COLUMNS)


def legs_ctes(source: str, match: str, incoming: str, same: str) -> str:
    """``source``: ``FROM`` the events (aliased ``e``) with the joins ``match`` and ``incoming``
    need; ``match`` / ``incoming``: those expressions as SQL over ``e``; ``same``: the dialect's
    null-safe equality operator (a missing amount or currency matches a missing one)."""
    cols = ", ".join(COLUMNS)
    picked = ", ".join(f"e.{c}" for c in COLUMNS)
    kept = ", ".join(f"l.{c}" for c in COLUMNS)
    return f"""booked AS (
  SELECT {picked}, coalesce({incoming}, FALSE) AS booked_in
  {source}
  WHERE ({match})
), leg_rows AS (
  SELECT {cols}, actor AS account, counterparty AS other,
    CASE WHEN booked_in THEN 'in' ELSE 'out' END AS direction, booked_in AS own
  FROM booked
  WHERE actor IS NOT NULL
  UNION ALL
  SELECT {cols}, counterparty AS account, actor AS other, 'in' AS direction, FALSE AS own
  FROM booked
  WHERE NOT booked_in AND counterparty IS NOT NULL AND (actor IS NULL OR counterparty <> actor)
), leg_pairs AS (
  SELECT *, row_number() OVER (
    PARTITION BY account, other, ts, amount, currency, direction, own ORDER BY event_id, source
  ) AS pair_rank
  FROM leg_rows
), legs AS (
  SELECT {kept}, l.account, l.other, l.direction
  FROM leg_pairs AS l
  LEFT JOIN leg_pairs AS m
    ON l.direction = 'in' AND m.direction = 'in' AND m.own <> l.own
    AND m.account = l.account AND m.other = l.other AND m.ts = l.ts AND m.pair_rank = l.pair_rank
    AND m.amount {same} l.amount AND m.currency {same} l.currency
  WHERE m.event_id IS NULL OR m.event_id > l.event_id OR (m.event_id = l.event_id AND m.source > l.source)
)"""
