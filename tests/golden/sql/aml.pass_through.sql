WITH booked AS (
  SELECT
    e.event_id,
    e.source,
    e.ts,
    e.kind,
    e.actor,
    e.counterparty,
    e.amount,
    e.currency,
    e.item,
    e.category,
    e.quantity,
    e.place,
    e.channel,
    e.attrs,
    COALESCE(e.kind IN ('credit', 'cash_deposit'), FALSE) AS booked_in
  FROM events AS e
  WHERE
    (
      e.kind IN ('credit', 'cash_deposit', 'transfer', 'cash_withdrawal')
    )
), leg_rows AS (
  SELECT
    event_id,
    source,
    ts,
    kind,
    actor,
    counterparty,
    amount,
    currency,
    item,
    category,
    quantity,
    place,
    channel,
    attrs,
    actor AS account,
    counterparty AS other,
    CASE WHEN booked_in THEN 'in' ELSE 'out' END AS direction,
    booked_in AS own
  FROM booked
  WHERE
    NOT actor IS NULL
  UNION ALL
  SELECT
    event_id,
    source,
    ts,
    kind,
    actor,
    counterparty,
    amount,
    currency,
    item,
    category,
    quantity,
    place,
    channel,
    attrs,
    counterparty AS account,
    actor AS other,
    'in' AS direction,
    FALSE AS own
  FROM booked
  WHERE
    NOT booked_in
    AND NOT counterparty IS NULL
    AND (
      actor IS NULL OR counterparty <> actor
    )
), leg_pairs AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY account, other, ts, amount, currency, direction, own
      ORDER BY event_id, source
    ) AS pair_rank
  FROM leg_rows
), legs AS (
  SELECT
    l.event_id,
    l.source,
    l.ts,
    l.kind,
    l.actor,
    l.counterparty,
    l.amount,
    l.currency,
    l.item,
    l.category,
    l.quantity,
    l.place,
    l.channel,
    l.attrs,
    l.account,
    l.other,
    l.direction
  FROM leg_pairs AS l
  LEFT JOIN leg_pairs AS m
    ON l.direction = 'in'
    AND m.direction = 'in'
    AND m.own <> l.own
    AND m.account = l.account
    AND m.other = l.other
    AND m.ts = l.ts
    AND m.pair_rank = l.pair_rank
    AND m.amount IS NOT DISTINCT FROM l.amount
    AND m.currency IS NOT DISTINCT FROM l.currency
  WHERE
    m.event_id IS NULL
    OR m.event_id > l.event_id
    OR (
      m.event_id = l.event_id AND m.source > l.source
    )
), matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.account AS group_account,
    COALESCE((
      e.direction = 'in' AND e.amount >= 10000
    ), FALSE) AS is_first,
    e.direction AS x_direction,
    e.amount AS x_amount,
    e.other AS x_other
  FROM legs AS e
  WHERE
    (
      TRUE
    ) AND NOT e.account IS NULL
), numbered AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY group_account ORDER BY ts, event_id, source) AS seq
  FROM matched
), pairs AS (
  SELECT
    b.group_account,
    b.seq AS b_seq,
    a.seq AS a_seq,
    a.source AS a_source,
    a.event_id AS a_event_id,
    a.ts AS a_ts,
    (
      EPOCH_US(b.ts) - EPOCH_US(a.ts)
    ) AS gap_us,
    a.x_amount AS a_amount,
    ROW_NUMBER() OVER (PARTITION BY b.group_account, b.seq ORDER BY a.seq DESC) AS recency
  FROM numbered AS b
  JOIN (
    SELECT
      *
    FROM numbered
    WHERE
      is_first
  ) AS a
    ON a.group_account = b.group_account
    AND a.seq < b.seq
    AND a.ts > b.ts - INTERVAL '172800000000' MICROSECONDS
  WHERE
    (
      (
        (
          b.x_direction = 'out' AND b.x_amount >= (
            0.9 * a.x_amount
          )
        )
        AND (
          (
            b.x_other IS NULL OR a.x_other IS NULL
          ) OR b.x_other <> a.x_other
        )
      )
    )
), linked AS (
  SELECT
    group_account,
    b_seq,
    COUNT(*) AS earlier_events,
    MIN(a_ts) AS first_ts,
    ARRAY_AGG(a_source ORDER BY a_seq) AS a_sources,
    ARRAY_AGG(a_event_id ORDER BY a_seq) AS a_ids,
    MAX(gap_us) FILTER(WHERE
      recency = 1) AS gap_us,
    MAX(a_amount) FILTER(WHERE
      recency = 1) AS a_amount
  FROM pairs
  GROUP BY
    group_account,
    b_seq
), tested AS (
  SELECT
    n.*,
    l.*
    EXCLUDE (group_account, b_seq),
    NOT l.b_seq IS NULL AS hit
  FROM numbered AS n
  LEFT JOIN linked AS l
    ON l.group_account = n.group_account AND l.b_seq = n.seq
), fired AS (
  SELECT
    *
  FROM (
    SELECT
      *,
      LAG(hit, 1, FALSE) OVER (PARTITION BY group_account ORDER BY seq) AS was_hit
    FROM tested
  )
  WHERE
    hit AND NOT was_hit
)
SELECT
  group_account,
  source,
  event_id,
  ts,
  first_ts,
  LIST_CONCAT(a_sources, [source]) AS evidence_sources,
  LIST_CONCAT(a_ids, [event_id]) AS evidence,
  a_amount AS value_a_amount,
  x_amount AS value_b_amount,
  x_direction AS value_b_direction,
  CAST(gap_us AS DOUBLE) / CAST(3600000000 AS DOUBLE) AS value_gap_hours,
  earlier_events AS value_earlier_events
FROM fired
