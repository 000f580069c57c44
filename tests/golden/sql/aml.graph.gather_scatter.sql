WITH raw AS (
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
), edges AS MATERIALIZED (
  SELECT
    *,
    ROW_NUMBER() OVER (ORDER BY ts, event_id, source) AS rnk
  FROM raw
), all_legs AS MATERIALIZED (
  SELECT
    a.actor AS src,
    b.counterparty AS dst,
    b.actor AS mid,
    a.source AS source_a,
    a.event_id AS event_id_a,
    a.rnk AS rnk_a,
    a.ts AS ts_a,
    a.amount AS amount_a,
    b.source AS source_b,
    b.event_id AS event_id_b,
    b.rnk AS rnk_b,
    b.ts AS ts_b,
    b.amount AS amount_b
  FROM edges AS a
  JOIN edges AS b
    ON b.actor = a.counterparty
    AND b.counterparty <> a.actor
    AND b.rnk > a.rnk
    AND b.ts < a.ts + INTERVAL '2592000000000' MICROSECONDS
), legs AS MATERIALIZED (
  /* Only groups whose legs, all windows together, reach k can ever fire. */
  SELECT
    l.*
  FROM all_legs AS l
  JOIN (
    SELECT
      mid
    FROM all_legs
    GROUP BY
      mid
    HAVING
      COUNT(DISTINCT src) >= 2 AND COUNT(DISTINCT dst) >= 2
  ) AS g
    ON l.mid = g.mid
), closings AS (
  SELECT DISTINCT
    mid,
    source_b,
    event_id_b,
    rnk_b,
    ts_b
  FROM legs
), tested AS (
  SELECT
    c.mid,
    c.source_b,
    c.event_id_b,
    c.rnk_b,
    c.ts_b,
    COUNT(DISTINCT p.src) AS n_sources,
    COUNT(DISTINCT p.dst) AS n_destinations
  FROM closings AS c
  JOIN legs AS p
    ON p.mid = c.mid
    AND p.rnk_b <= c.rnk_b
    AND p.ts_a > c.ts_b - INTERVAL '2592000000000' MICROSECONDS
  GROUP BY
    c.mid,
    c.source_b,
    c.event_id_b,
    c.rnk_b,
    c.ts_b
), flagged AS (
  SELECT
    *,
    n_sources >= 2 AND n_destinations >= 2 AS hit,
    COALESCE(
      LAG(n_sources >= 2 AND n_destinations >= 2) OVER (PARTITION BY mid ORDER BY rnk_b),
      FALSE
    ) AS was_hit
  FROM tested
), episodes AS (
  SELECT
    *,
    SUM(CASE WHEN hit AND NOT was_hit THEN 1 ELSE 0 END) OVER (PARTITION BY mid ORDER BY rnk_b) AS ep
  FROM flagged
), episode_legs AS (
  SELECT DISTINCT
    c.ep,
    p.*
  FROM (
    SELECT
      *
    FROM episodes
    WHERE
      hit
  ) AS c
  JOIN legs AS p
    ON p.mid = c.mid
    AND p.rnk_b <= c.rnk_b
    AND p.ts_a > c.ts_b - INTERVAL '2592000000000' MICROSECONDS
), hops AS (
  SELECT
    mid,
    ep,
    source_a AS source,
    event_id_a AS event_id,
    rnk_a AS rnk,
    ts_a AS ts,
    amount_a AS amount
  FROM episode_legs
  UNION
  SELECT
    mid,
    ep,
    source_b AS source,
    event_id_b AS event_id,
    rnk_b AS rnk,
    ts_b AS ts,
    amount_b AS amount
  FROM episode_legs
), episode_values AS (
  SELECT
    mid,
    ep,
    COUNT(DISTINCT src) AS value_sources,
    COUNT(DISTINCT dst) AS value_destinations
  FROM episode_legs
  GROUP BY
    mid,
    ep
)
SELECT
  c.mid AS group_actor,
  c.source_b AS source,
  c.event_id_b AS event_id,
  c.ts_b AS ts,
  MIN(h.ts) AS first_ts,
  ARRAY_AGG(h.source ORDER BY h.rnk) AS evidence_sources,
  ARRAY_AGG(h.event_id ORDER BY h.rnk) AS evidence,
  v.value_sources,
  v.value_destinations,
  COUNT(*) AS value_transfers,
  SUM(h.amount) AS value_total
FROM (
  SELECT
    *
  FROM episodes
  WHERE
    hit AND NOT was_hit
) AS c
JOIN hops AS h
  ON h.mid = c.mid AND h.ep = c.ep
JOIN episode_values AS v
  ON v.mid = c.mid AND v.ep = c.ep
GROUP BY
  c.mid,
  c.source_b,
  c.event_id_b,
  c.rnk_b,
  c.ts_b,
  v.value_sources,
  v.value_destinations
