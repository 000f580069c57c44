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
), bucketed AS MATERIALIZED (
  SELECT
    *,
    EPOCH_US(ts) // 2592000000000 AS b
  FROM edges
), dense AS (
  /* Test points whose receiver has k edges in (t - W, t] at all (ties included): no other can hold. */
  SELECT
    rnk
  FROM (
    SELECT
      rnk,
      COUNT(*) OVER (
        PARTITION BY counterparty
        ORDER BY ts
        RANGE BETWEEN INTERVAL '2591999999999' MICROSECONDS PRECEDING AND CURRENT ROW
      ) AS n
    FROM edges
  )
  WHERE
    n >= 3
), senders AS MATERIALIZED (
  SELECT DISTINCT
    c.close,
    c.t,
    c.b,
    e.actor AS s
  FROM (
    SELECT
      counterparty,
      rnk AS close,
      ts AS t,
      b,
      UNNEST([b - 1, b]) AS nb
    FROM bucketed
    WHERE
      rnk IN (
        SELECT
          rnk
        FROM dense
      )
  ) AS c
  JOIN bucketed AS e
    ON e.counterparty = c.counterparty
    AND e.b = c.nb
    AND e.rnk <= c.close
    AND e.ts > c.t - INTERVAL '2592000000000' MICROSECONDS
), broad AS (
  SELECT
    close
  FROM senders
  GROUP BY
    close
  HAVING
    COUNT(*) >= 3
), paid AS MATERIALIZED (
  SELECT
    c.close,
    e.actor,
    e.counterparty AS d,
    e.rnk
  FROM (
    SELECT
      *,
      UNNEST([b - 1, b]) AS nb
    FROM senders
    WHERE
      close IN (
        SELECT
          close
        FROM broad
      )
  ) AS c
  JOIN bucketed AS e
    ON e.actor = c.s
    AND e.b = c.nb
    AND e.rnk <= c.close
    AND e.ts > c.t - INTERVAL '2592000000000' MICROSECONDS
), receivers AS MATERIALIZED (
  SELECT
    close,
    d
  FROM (
    SELECT DISTINCT
      close,
      actor,
      d
    FROM paid
  )
  GROUP BY
    close,
    d
  HAVING
    COUNT(*) >= 3
), tested AS (
  SELECT
    c.counterparty AS y,
    c.rnk AS close,
    COALESCE(n.receivers >= 3, FALSE) AS hit
  FROM edges AS c
  LEFT JOIN (
    SELECT
      close,
      COUNT(*) AS receivers
    FROM receivers
    GROUP BY
      close
  ) AS n
    ON n.close = c.rnk
), episodes AS (
  SELECT
    y,
    close,
    hit,
    hit AND NOT COALESCE(LAG(hit) OVER (PARTITION BY y ORDER BY close), FALSE) AS fires
  FROM tested
), numbered AS (
  /* The test points of one episode: the firing one and the holding ones after it. */
  SELECT
    y,
    close,
    fires,
    SUM(CASE WHEN fires THEN 1 ELSE 0 END) OVER (PARTITION BY y ORDER BY close ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS episode
  FROM episodes
  WHERE
    hit
), seen AS (
  SELECT DISTINCT
    n.y,
    n.episode,
    p.rnk
  FROM numbered AS n
  JOIN paid AS p
    ON p.close = n.close
  JOIN receivers AS r
    ON r.close = p.close AND r.d = p.d
), fired AS (
  SELECT
    n.y,
    n.episode,
    c.source,
    c.event_id,
    c.ts
  FROM numbered AS n
  JOIN edges AS c
    ON c.rnk = n.close
  WHERE
    n.fires
)
SELECT
  f.y AS group_counterparty,
  f.source,
  f.event_id,
  f.ts,
  MIN(e.ts) AS first_ts,
  ARRAY_AGG(e.source ORDER BY e.rnk) AS evidence_sources,
  ARRAY_AGG(e.event_id ORDER BY e.rnk) AS evidence,
  COUNT(DISTINCT e.actor) AS value_senders,
  COUNT(DISTINCT e.counterparty) AS value_receivers,
  COUNT(*) AS value_transfers,
  SUM(e.amount) AS value_total
FROM fired AS f
JOIN seen AS s
  ON s.y = f.y AND s.episode = f.episode
JOIN edges AS e
  ON e.rnk = s.rnk
GROUP BY
  f.y,
  f.episode,
  f.source,
  f.event_id,
  f.ts
