WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    e.counterparty AS arg_counterparties,
    e.amount AS arg_total
  FROM events AS e
  LEFT JOIN (
    SELECT
      e.actor AS entity,
      COUNT(*) FILTER(WHERE
        COALESCE(e.kind = 'payment', FALSE)) AS n
    FROM events AS e
    WHERE
      NOT e.actor IS NULL
    GROUP BY
      e.actor
  ) AS actor_profile_activity
    ON actor_profile_activity.entity = e.actor
  CROSS JOIN (
    SELECT
      CAST(2 * MEDIAN(n) AS BIGINT) AS m2
    FROM (
      SELECT
        e.actor AS entity,
        COUNT(*) FILTER(WHERE
          COALESCE(e.kind = 'payment', FALSE)) AS n
      FROM events AS e
      WHERE
        NOT e.actor IS NULL
      GROUP BY
        e.actor
    )
  ) AS profile_median_activity
  LEFT JOIN (
    SELECT
      e.actor AS entity,
      COUNT(*) FILTER(WHERE
        COALESCE(e.kind = 'payment', FALSE)) AS n
    FROM events AS e
    WHERE
      NOT e.actor IS NULL
    GROUP BY
      e.actor
  ) AS counterparty_profile_activity
    ON counterparty_profile_activity.entity = e.counterparty
  WHERE
    (
      (
        (
          (
            (
              (
                (
                  e.kind = 'transfer'
                  AND CASE
                    WHEN NOT e.actor IS NULL AND profile_median_activity.m2 > 0
                    THEN CAST((
                      COALESCE(actor_profile_activity.n, 0) * 20000
                    ) // profile_median_activity.m2 AS DECIMAL(18, 0)) * 0.0001
                  END < 0.85
                )
                AND CASE
                  WHEN NOT e.counterparty IS NULL AND profile_median_activity.m2 > 0
                  THEN CAST((
                    COALESCE(counterparty_profile_activity.n, 0) * 20000
                  ) // profile_median_activity.m2 AS DECIMAL(18, 0)) * 0.0001
                END < 0.85
              )
              AND NOT (
                e.actor IS NULL
              )
            )
            AND NOT (
              e.counterparty IS NULL
            )
          )
          AND e.actor <> e.counterparty
        )
        AND e.amount > 0
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
      RANGE BETWEEN INTERVAL '1814399999999' MICROSECONDS PRECEDING AND CURRENT ROW
    ) + 1 AS window_first_seq
  FROM matched
), measured AS (
  SELECT
    *,
    COUNT(DISTINCT arg_counterparties) OVER w AS agg_counterparties,
    COUNT(*) OVER w AS agg_transfers,
    SUM(arg_total) OVER w AS agg_total
  FROM (
    SELECT
      *,
      seq - window_first_seq AS back
    FROM numbered
    WHERE
      (
        group_actor
      ) IN (
        SELECT
          (
            group_actor
          )
        FROM numbered
        WHERE
          seq - window_first_seq + 1 >= 4
      )
  )
  WINDOW w AS (PARTITION BY group_actor ORDER BY seq ROWS BETWEEN back PRECEDING AND CURRENT ROW)
), tested AS (
  SELECT
    *,
    COALESCE(agg_counterparties >= 4, FALSE) AS hit
  FROM measured
), runs AS (
  SELECT
    *,
    COALESCE(
      MIN(CASE WHEN NOT hit THEN seq END) OVER (
        PARTITION BY group_actor
        ORDER BY seq
        ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING
      ) - 1,
      MAX(seq) OVER (PARTITION BY group_actor)
    ) AS last_seq
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
  COUNT(DISTINCT m.arg_counterparties) AS value_counterparties,
  COUNT(*) AS value_transfers,
  SUM(m.arg_total) AS value_total,
  MIN(m.ts) AS first_ts,
  ARRAY_AGG(m.source ORDER BY m.seq) AS evidence_sources,
  ARRAY_AGG(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON m.group_actor = f.group_actor AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY ALL
