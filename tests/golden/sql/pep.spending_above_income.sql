WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    e.amount AS arg_spent,
    actor_entity.monthly_income AS actor__monthly_income
  FROM events AS e
  LEFT JOIN (
    SELECT
      *
    FROM entities
    QUALIFY
      ROW_NUMBER() OVER (PARTITION BY entity ORDER BY batch_id DESC) = 1
  ) AS actor_entity
    ON actor_entity.entity = e.actor
  WHERE
    (
      (
        actor_entity.pep
        AND e.kind IN ('payment', 'purchase', 'transfer', 'cash_withdrawal')
      )
    )
    AND NOT e.actor IS NULL
), numbered AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY group_actor ORDER BY ts, event_id, source) AS seq,
    COUNT(*) OVER (
      PARTITION BY group_actor
      ORDER BY ts
      RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) - COUNT(*) OVER (
      PARTITION BY group_actor
      ORDER BY ts
      RANGE BETWEEN INTERVAL '2591999999999' MICROSECONDS PRECEDING AND CURRENT ROW
    ) + 1 AS window_first_seq
  FROM matched
), measured AS (
  SELECT
    *,
    SUM(arg_spent) OVER w AS agg_spent,
    COUNT(*) OVER w AS agg_payments
  FROM (
    SELECT
      *,
      seq - window_first_seq AS back
    FROM numbered
  )
  WINDOW w AS (PARTITION BY group_actor ORDER BY seq ROWS BETWEEN back PRECEDING AND CURRENT ROW)
), tested AS (
  SELECT
    *,
    COALESCE(agg_spent > (
      3 * actor__monthly_income
    ), FALSE) AS hit
  FROM measured
), runs AS (
  SELECT
    *,
    seq AS last_seq
  FROM tested
), fired AS (
  SELECT
    *
  FROM (
    SELECT
      *,
      LAG(hit, 1, FALSE) OVER (PARTITION BY group_actor ORDER BY seq) AS was_hit
    FROM runs
  )
  WHERE
    hit AND NOT was_hit
)
SELECT
  f.group_actor,
  f.source,
  f.event_id,
  f.ts,
  f.agg_spent AS value_spent,
  f.agg_payments AS value_payments,
  MIN(m.ts) AS first_ts,
  ARRAY_AGG(m.source ORDER BY m.seq) AS evidence_sources,
  ARRAY_AGG(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON m.group_actor = f.group_actor AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY ALL
