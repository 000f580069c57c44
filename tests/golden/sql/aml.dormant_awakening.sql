WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    e.amount AS val
  FROM events AS e
  WHERE
    (
      e.kind IN ('payment', 'transfer', 'cash_deposit', 'cash_withdrawal', 'credit')
    )
    AND NOT e.actor IS NULL
), numbered AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY group_actor ORDER BY ts, event_id, source) AS seq
  FROM matched
), gapped AS (
  SELECT
    *,
    LAG(ts) OVER (PARTITION BY group_actor ORDER BY seq) AS prev_ts
  FROM numbered
), woken AS (
  SELECT
    *,
    MAX(CASE WHEN (
      EPOCH_US(ts) - EPOCH_US(prev_ts)
    ) >= 5184000000000 THEN seq END) OVER (
      PARTITION BY group_actor
      ORDER BY seq
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS wake_seq
  FROM gapped
), awake AS (
  SELECT
    n.*,
    (
      EPOCH_US(w.ts) - EPOCH_US(w.prev_ts)
    ) AS gap_us
  FROM woken AS n
  JOIN gapped AS w
    ON w.group_actor = n.group_actor AND w.seq = n.wake_seq
  WHERE
    (
      EPOCH_US(n.ts) - EPOCH_US(w.ts)
    ) < 604800000000
), summed AS (
  SELECT
    *,
    SUM(val) OVER s AS total,
    COUNT(*) OVER s AS events
  FROM awake
  WINDOW s AS (
    PARTITION BY group_actor, wake_seq
    ORDER BY seq
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  )
), tested AS (
  SELECT
    n.*,
    s.wake_seq,
    s.gap_us,
    s.events,
    s.total,
    NOT s.seq IS NULL AND COALESCE(s.total >= 15000, FALSE) AS hit
  FROM numbered AS n
  LEFT JOIN summed AS s
    ON s.group_actor = n.group_actor AND s.seq = n.seq
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
  f.group_actor,
  f.source,
  f.event_id,
  f.ts,
  CAST(f.gap_us AS DOUBLE) / CAST(86400000000 AS DOUBLE) AS value_dormant_days,
  f.events AS value_events,
  f.total AS value_total,
  MIN(m.ts) AS first_ts,
  ARRAY_AGG(m.source ORDER BY m.seq) AS evidence_sources,
  ARRAY_AGG(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON m.group_actor = f.group_actor AND m.seq BETWEEN f.wake_seq - 1 AND f.seq
GROUP BY ALL
