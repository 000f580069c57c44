"""The ``model`` kind's candidates and features as one SQL statement, written once in DuckDB's
dialect; the Spark engine transpiles it (``engines/spark/model.py``). Its columns are
``rules.kinds.model.SCHEMA``; the plain-Python definition there is the reference.

Per account and window: the events as payer and payee (``sides``), each event's rank within its
pair of accounts (``pairs``; 1 is a first contact), the window's aggregates (``agg``), and the
account's earlier windows as running sums (``hist``), so history costs no join. Evidence lists come
in any order with their times; ``detect`` sorts them.
"""

from __future__ import annotations

from functools import cache

from flagstone.events import cash_sql

MATCHED = "flagstone_model_matched"  # replaced by each engine's own subquery of matched events
ORDER = "ts, event_id, source"


def candidate_sql(matched: str, window_us: int) -> str:
    """The statement over ``matched`` (a parenthesised subquery with ``source, event_id, ts,
    actor, counterparty, amount, kind, channel``)."""
    return template(int(window_us)).replace(MATCHED, matched)


def _ratio(num: str, den: str) -> str:
    return f"(CAST({num} AS DOUBLE) / nullif(CAST({den} AS DOUBLE), 0))"


@cache
def template(window_us: int) -> str:
    """The statement in DuckDB's dialect over the placeholder table ``MATCHED``."""
    return f"""
WITH m AS (
  SELECT source, event_id, ts, actor, counterparty, amount, kind, channel FROM {MATCHED} AS mm
  WHERE actor IS NULL OR counterparty IS NULL OR actor <> counterparty
),
pairs AS (
  SELECT source, event_id,
         row_number() OVER (PARTITION BY least(actor, counterparty), greatest(actor, counterparty)
                            ORDER BY {ORDER}) AS k
  FROM m WHERE actor IS NOT NULL AND counterparty IS NOT NULL
),
sides AS (
  SELECT source, event_id, ts, amount, kind, channel, actor AS account, counterparty AS other, 1 AS is_out
  FROM m WHERE actor IS NOT NULL
  UNION ALL
  SELECT source, event_id, ts, amount, kind, channel, counterparty AS account, actor AS other, 0 AS is_out
  FROM m WHERE counterparty IS NOT NULL
),
s AS (
  SELECT x.source, x.event_id, x.ts, x.amount, x.kind, x.channel, x.account, x.other, x.is_out,
         epoch_us(x.ts) // {window_us} AS win, p.k
  FROM sides AS x LEFT JOIN pairs AS p ON p.source = x.source AND p.event_id = x.event_id
),
ranked AS (
  SELECT s.*, row_number() OVER (PARTITION BY account, win ORDER BY ts DESC, event_id DESC, source DESC) AS back
  FROM s
),
agg AS (
  SELECT account, win,
         count(*) FILTER (WHERE is_out = 0) AS n_in,
         count(*) FILTER (WHERE is_out = 1) AS n_out,
         coalesce(sum(amount) FILTER (WHERE is_out = 0), 0) AS amt_in,
         coalesce(sum(amount) FILTER (WHERE is_out = 1), 0) AS amt_out,
         count(DISTINCT other) FILTER (WHERE is_out = 0) AS senders,
         count(DISTINCT other) FILTER (WHERE is_out = 1) AS receivers,
         count(*) FILTER (WHERE k = 1) AS first_contacts,
         count(k) AS with_pair,
         count(*) FILTER (WHERE {cash_sql("s")}) AS n_cash,
         count(*) AS n,
         min(ts) AS first_ts,
         max(ts) AS last_ts,
         list(source) AS evidence_sources,
         list(event_id) AS evidence,
         list(ts) AS evidence_ts
  FROM s GROUP BY account, win
),
hist AS (
  SELECT a.*,
         coalesce(sum(n) OVER w, 0) AS prior_n,
         coalesce(sum(amt_in + amt_out) OVER w, 0) AS prior_amount,
         count(*) OVER w AS prior_windows,
         min(first_ts) OVER (PARTITION BY account ORDER BY win ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
           AS seen_ts
  FROM agg AS a
  WINDOW w AS (PARTITION BY account ORDER BY win ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
)
SELECT h.account, h.win, f.source AS fire_source, f.event_id AS fire_event_id, f.ts AS fire_ts, h.first_ts,
       h.evidence_sources, h.evidence, h.evidence_ts,
       CAST(h.n_in AS DOUBLE) AS window_events_in,
       CAST(h.n_out AS DOUBLE) AS window_events_out,
       CAST(h.amt_in AS DOUBLE) AS window_amount_in,
       CAST(h.amt_out AS DOUBLE) AS window_amount_out,
       CAST(h.senders AS DOUBLE) AS window_senders,
       CAST(h.receivers AS DOUBLE) AS window_receivers,
       {_ratio("least(h.amt_in, h.amt_out)", "greatest(h.amt_in, h.amt_out)")} AS window_pass_through,
       CAST(h.first_contacts AS DOUBLE) AS window_first_contacts,
       {_ratio("h.first_contacts", "h.with_pair")} AS window_first_contact_share,
       {_ratio("h.n_cash", "h.n")} AS window_cash_share,
       CAST(epoch_us(h.last_ts) - epoch_us(h.first_ts) AS DOUBLE) / 3600000000 AS window_span_hours,
       CAST(h.prior_n AS DOUBLE) AS prior_events,
       CAST(h.prior_windows AS DOUBLE) AS prior_windows,
       CAST(epoch_us(h.last_ts) - epoch_us(h.seen_ts) AS DOUBLE) / 86400000000 AS tenure_days,
       CAST(h.amt_in + h.amt_out AS DOUBLE)
         / nullif(CAST(h.prior_amount AS DOUBLE) / nullif(h.prior_windows, 0), 0) AS amount_vs_prior
FROM hist AS h
JOIN ranked AS f ON f.account = h.account AND f.win = h.win AND f.back = 1
"""
