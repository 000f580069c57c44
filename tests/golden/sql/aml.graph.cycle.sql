WITH raw AS MATERIALIZED (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor,
    e.counterparty,
    e.amount
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
                e.kind = 'transfer'
                AND (
                  CASE
                    WHEN NOT e.actor IS NULL AND profile_median_activity.m2 > 0
                    THEN CAST((
                      COALESCE(actor_profile_activity.n, 0) * 20000
                    ) // profile_median_activity.m2 AS DECIMAL(18, 0)) * 0.0001
                  END < 0.85
                  OR CASE
                    WHEN NOT e.counterparty IS NULL AND profile_median_activity.m2 > 0
                    THEN CAST((
                      COALESCE(counterparty_profile_activity.n, 0) * 20000
                    ) // profile_median_activity.m2 AS DECIMAL(18, 0)) * 0.0001
                  END < 0.85
                )
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
), busy AS MATERIALIZED (
  SELECT
    actor
  FROM raw
  GROUP BY
    actor
  HAVING
    COUNT(*) > 200
), edges AS MATERIALIZED (
  SELECT
    *,
    ROW_NUMBER() OVER (ORDER BY ts, event_id, source) AS rnk
  FROM raw
  WHERE
    NOT actor IN (
      SELECT
        actor
      FROM busy
    )
    AND NOT counterparty IN (
      SELECT
        actor
      FROM busy
    )
), accounts AS MATERIALIZED (
  SELECT
    actor AS account,
    ROW_NUMBER() OVER () AS id
  FROM edges
  GROUP BY
    actor
), hops AS MATERIALIZED (
  SELECT
    e.rnk,
    e.ts,
    e.amount,
    a.id AS actor,
    c.id AS counterparty
  FROM edges AS e
  JOIN accounts AS a
    ON a.account = e.actor
  JOIN accounts AS c
    ON c.account = e.counterparty
), p1 AS (
  SELECT
    actor AS x1,
    rnk AS r1,
    ts AS t1,
    amount - 2 * amount AS lo,
    amount + 2 * amount AS hi,
    counterparty AS c
  FROM hops
), p2 AS MATERIALIZED (
  SELECT
    p.x1,
    p.r1,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x2,
    e.rnk AS r2,
    e.counterparty AS c
  FROM p1 AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r1
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x1
), p3 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.r1,
    p.r2,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x3,
    e.rnk AS r3,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p2
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r2
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
), p4 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.r1,
    p.r2,
    p.r3,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x4,
    e.rnk AS r4,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p3
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r3
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
), p5 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.x4,
    p.r1,
    p.r2,
    p.r3,
    p.r4,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x5,
    e.rnk AS r5,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p4
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r4
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
), p6 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.x4,
    p.x5,
    p.r1,
    p.r2,
    p.r3,
    p.r4,
    p.r5,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x6,
    e.rnk AS r6,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p5
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r5
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
    AND e.counterparty <> p.x5
), p7 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.x4,
    p.x5,
    p.x6,
    p.r1,
    p.r2,
    p.r3,
    p.r4,
    p.r5,
    p.r6,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x7,
    e.rnk AS r7,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p6
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r6
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
    AND e.counterparty <> p.x5
    AND e.counterparty <> p.x6
), p8 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.x4,
    p.x5,
    p.x6,
    p.x7,
    p.r1,
    p.r2,
    p.r3,
    p.r4,
    p.r5,
    p.r6,
    p.r7,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x8,
    e.rnk AS r8,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p7
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r7
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
    AND e.counterparty <> p.x5
    AND e.counterparty <> p.x6
    AND e.counterparty <> p.x7
), p9 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.x4,
    p.x5,
    p.x6,
    p.x7,
    p.x8,
    p.r1,
    p.r2,
    p.r3,
    p.r4,
    p.r5,
    p.r6,
    p.r7,
    p.r8,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x9,
    e.rnk AS r9,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p8
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r8
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
    AND e.counterparty <> p.x5
    AND e.counterparty <> p.x6
    AND e.counterparty <> p.x7
    AND e.counterparty <> p.x8
), p10 AS MATERIALIZED (
  SELECT
    p.x1,
    p.x2,
    p.x3,
    p.x4,
    p.x5,
    p.x6,
    p.x7,
    p.x8,
    p.x9,
    p.r1,
    p.r2,
    p.r3,
    p.r4,
    p.r5,
    p.r6,
    p.r7,
    p.r8,
    p.r9,
    p.t1,
    p.lo,
    p.hi,
    p.c AS x10,
    e.rnk AS r10,
    e.counterparty AS c
  FROM (
    SELECT
      *
    FROM p9
    WHERE
      c <> x1
  ) AS p
  JOIN hops AS e
    ON e.actor = p.c
    AND e.rnk > p.r9
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND e.amount BETWEEN p.lo AND p.hi
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
    AND e.counterparty <> p.x5
    AND e.counterparty <> p.x6
    AND e.counterparty <> p.x7
    AND e.counterparty <> p.x8
    AND e.counterparty <> p.x9
    AND e.counterparty = p.x1
), chosen AS (
  SELECT
    closing,
    value_length,
    UNNEST(ranks) AS rnk
  FROM (
    SELECT
      r3 AS closing,
      3 AS value_length,
      [r1, r2, r3] AS ranks
    FROM p3
    WHERE
      c = x1
    UNION ALL
    SELECT
      r4 AS closing,
      4 AS value_length,
      [r1, r2, r3, r4] AS ranks
    FROM p4
    WHERE
      c = x1
    UNION ALL
    SELECT
      r5 AS closing,
      5 AS value_length,
      [r1, r2, r3, r4, r5] AS ranks
    FROM p5
    WHERE
      c = x1
    UNION ALL
    SELECT
      r6 AS closing,
      6 AS value_length,
      [r1, r2, r3, r4, r5, r6] AS ranks
    FROM p6
    WHERE
      c = x1
    UNION ALL
    SELECT
      r7 AS closing,
      7 AS value_length,
      [r1, r2, r3, r4, r5, r6, r7] AS ranks
    FROM p7
    WHERE
      c = x1
    UNION ALL
    SELECT
      r8 AS closing,
      8 AS value_length,
      [r1, r2, r3, r4, r5, r6, r7, r8] AS ranks
    FROM p8
    WHERE
      c = x1
    UNION ALL
    SELECT
      r9 AS closing,
      9 AS value_length,
      [r1, r2, r3, r4, r5, r6, r7, r8, r9] AS ranks
    FROM p9
    WHERE
      c = x1
    UNION ALL
    SELECT
      r10 AS closing,
      10 AS value_length,
      [r1, r2, r3, r4, r5, r6, r7, r8, r9, r10] AS ranks
    FROM p10
    WHERE
      c = x1
  )
  QUALIFY
    ROW_NUMBER() OVER (PARTITION BY closing ORDER BY value_length, ranks DESC) = 1
)
SELECT
  ARG_MIN(e.actor, e.rnk) AS group_actor,
  ARG_MAX(e.source, e.rnk) AS source,
  ARG_MAX(e.event_id, e.rnk) AS event_id,
  MAX(e.ts) AS ts,
  MIN(e.ts) AS first_ts,
  ARRAY_AGG(e.source ORDER BY e.rnk) AS evidence_sources,
  ARRAY_AGG(e.event_id ORDER BY e.rnk) AS evidence,
  c.value_length,
  SUM(e.amount) AS value_total,
  MIN(e.amount) AS value_min_amount,
  MAX(e.amount) AS value_max_amount
FROM chosen AS c
JOIN edges AS e
  ON e.rnk = c.rnk
GROUP BY
  c.closing,
  c.value_length
