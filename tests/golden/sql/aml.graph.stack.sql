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
), bucketed AS MATERIALIZED (
  SELECT
    *,
    EPOCH_US(ts) // 2592000000000 AS b
  FROM edges
), p1 AS MATERIALIZED (
  SELECT
    rnk AS h,
    ts AS t1,
    b AS b1,
    amount AS m1,
    rnk AS r,
    counterparty AS c,
    [actor, counterparty] AS accounts
  FROM bucketed
), p2 AS MATERIALIZED (
  SELECT DISTINCT
    p.h,
    p.t1,
    p.b1,
    p.m1,
    e.rnk AS r,
    e.counterparty AS c,
    LIST_SORT(LIST_APPEND(p.accounts, e.counterparty)) AS accounts
  FROM (
    SELECT
      *,
      UNNEST([b1, b1 + 1]) AS nb
    FROM p1
  ) AS p
  JOIN bucketed AS e
    ON e.actor = p.c
    AND e.b = p.nb
    AND e.rnk > p.r
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND NOT ARRAY_CONTAINS(p.accounts, e.counterparty)
), p3 AS MATERIALIZED (
  SELECT DISTINCT
    p.h,
    p.t1,
    p.b1,
    p.m1,
    e.rnk AS r,
    e.counterparty AS c,
    LIST_SORT(LIST_APPEND(p.accounts, e.counterparty)) AS accounts
  FROM (
    SELECT
      *,
      UNNEST([b1, b1 + 1]) AS nb
    FROM p2
  ) AS p
  JOIN bucketed AS e
    ON e.actor = p.c
    AND e.b = p.nb
    AND e.rnk > p.r
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND NOT ARRAY_CONTAINS(p.accounts, e.counterparty)
), p4 AS MATERIALIZED (
  SELECT DISTINCT
    p.h,
    p.t1,
    p.b1,
    p.m1,
    e.rnk AS r,
    e.counterparty AS c,
    LIST_SORT(LIST_APPEND(p.accounts, e.counterparty)) AS accounts
  FROM (
    SELECT
      *,
      UNNEST([b1, b1 + 1]) AS nb
    FROM p3
  ) AS p
  JOIN bucketed AS e
    ON e.actor = p.c
    AND e.b = p.nb
    AND e.rnk > p.r
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND NOT ARRAY_CONTAINS(p.accounts, e.counterparty)
), p5 AS MATERIALIZED (
  SELECT DISTINCT
    p.h,
    p.t1,
    p.b1,
    p.m1,
    e.rnk AS r,
    e.counterparty AS c,
    LIST_SORT(LIST_APPEND(p.accounts, e.counterparty)) AS accounts
  FROM (
    SELECT
      *,
      UNNEST([b1, b1 + 1]) AS nb
    FROM p4
  ) AS p
  JOIN bucketed AS e
    ON e.actor = p.c
    AND e.b = p.nb
    AND e.rnk > p.r
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND NOT ARRAY_CONTAINS(p.accounts, e.counterparty)
), p6 AS MATERIALIZED (
  SELECT DISTINCT
    p.h,
    p.t1,
    p.b1,
    p.m1,
    e.rnk AS r,
    e.counterparty AS c,
    LIST_SORT(LIST_APPEND(p.accounts, e.counterparty)) AS accounts
  FROM (
    SELECT
      *,
      UNNEST([b1, b1 + 1]) AS nb
    FROM p5
  ) AS p
  JOIN bucketed AS e
    ON e.actor = p.c
    AND e.b = p.nb
    AND e.rnk > p.r
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND NOT ARRAY_CONTAINS(p.accounts, e.counterparty)
), fired AS (
  SELECT
    h,
    MIN(r) AS close
  FROM p3
  GROUP BY
    h
), flow AS (
  SELECT
    h,
    r,
    MAX(depth) AS depth
  FROM (
    SELECT
      h,
      r,
      1 AS depth
    FROM p1
    UNION ALL
    SELECT
      h,
      r,
      2 AS depth
    FROM p2
    UNION ALL
    SELECT
      h,
      r,
      3 AS depth
    FROM p3
    UNION ALL
    SELECT
      h,
      r,
      4 AS depth
    FROM p4
    UNION ALL
    SELECT
      h,
      r,
      5 AS depth
    FROM p5
    UNION ALL
    SELECT
      h,
      r,
      6 AS depth
    FROM p6
  ) AS ends
  WHERE
    h IN (
      SELECT
        h
      FROM fired
    )
  GROUP BY
    h,
    r
), merged AS (
  SELECT
    hop.actor AS origin,
    q.close,
    f.r,
    MAX(f.depth) AS depth,
    MIN(hop.ts) AS first_ts
  FROM fired AS q
  JOIN edges AS hop
    ON hop.rnk = q.h
  JOIN flow AS f
    ON f.h = q.h
  GROUP BY
    hop.actor,
    q.close,
    f.r
)
SELECT
  m.origin AS group_actor,
  c.source,
  c.event_id,
  c.ts,
  MIN(m.first_ts) AS first_ts,
  ARRAY_AGG(e.source ORDER BY e.rnk) AS evidence_sources,
  ARRAY_AGG(e.event_id ORDER BY e.rnk) AS evidence,
  MAX(m.depth) AS value_depth,
  LENGTH(LIST_DISTINCT(LIST_CONCAT(ARRAY_AGG(e.actor), ARRAY_AGG(e.counterparty)))) AS value_accounts,
  COUNT(*) AS value_transfers,
  SUM(e.amount) AS value_total
FROM merged AS m
JOIN edges AS c
  ON c.rnk = m.close
JOIN edges AS e
  ON e.rnk = m.r
GROUP BY
  m.origin,
  c.source,
  c.event_id,
  c.ts
