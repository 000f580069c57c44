WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    COALESCE((
      e.kind IN ('credit', 'cash_deposit') AND e.amount >= 10000
    ), FALSE) AS is_first,
    e.kind AS x_kind,
    e.amount AS x_amount,
    e.counterparty AS x_counterparty
  FROM events AS e
  WHERE
    (
      e.kind IN ('credit', 'cash_deposit', 'transfer', 'cash_withdrawal')
    )
    AND NOT e.actor IS NULL
), numbered AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY group_actor ORDER BY ts, event_id, source) AS seq
  FROM matched
), pairs AS (
  SELECT
    b.group_actor,
    b.seq AS b_seq,
    a.seq AS a_seq,
    a.source AS a_source,
    a.event_id AS a_event_id,
    a.ts AS a_ts,
    (
      EPOCH_US(b.ts) - EPOCH_US(a.ts)
    ) AS gap_us,
    a.x_amount AS a_amount,
    ROW_NUMBER() OVER (PARTITION BY b.group_actor, b.seq ORDER BY a.seq DESC) AS recency
  FROM numbered AS b
  JOIN (
    SELECT
      *
    FROM numbered
    WHERE
      is_first
  ) AS a
    ON a.group_actor = b.group_actor
    AND a.seq < b.seq
    AND a.ts > b.ts - INTERVAL '172800000000' MICROSECONDS
  WHERE
    (
      (
        (
          b.x_kind IN ('transfer', 'cash_withdrawal')
          AND b.x_amount >= (
            0.9 * a.x_amount
          )
        )
        AND (
          (
            b.x_counterparty IS NULL OR a.x_counterparty IS NULL
          )
          OR b.x_counterparty <> a.x_counterparty
        )
      )
    )
), linked AS (
  SELECT
    group_actor,
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
    group_actor,
    b_seq
), tested AS (
  SELECT
    n.*,
    l.*
    EXCLUDE (group_actor, b_seq),
    NOT l.b_seq IS NULL AS hit
  FROM numbered AS n
  LEFT JOIN linked AS l
    ON l.group_actor = n.group_actor AND l.b_seq = n.seq
), fired AS (
  SELECT
    *
  FROM (
    SELECT
      *,
      LAG(hit, 1, FALSE) OVER (PARTITION BY group_actor ORDER BY seq) AS was_hit
    FROM tested
  )
  WHERE
    hit AND NOT was_hit
)
SELECT
  group_actor,
  source,
  event_id,
  ts,
  first_ts,
  LIST_CONCAT(a_sources, [source]) AS evidence_sources,
  LIST_CONCAT(a_ids, [event_id]) AS evidence,
  a_amount AS value_a_amount,
  x_kind AS value_b_kind,
  x_amount AS value_b_amount,
  CAST(gap_us AS DOUBLE) / CAST(3600000000 AS DOUBLE) AS value_gap_hours,
  earlier_events AS value_earlier_events
FROM fired
