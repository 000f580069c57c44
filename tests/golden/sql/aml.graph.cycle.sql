WITH raw AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor,
    e.counterparty,
    e.amount
  FROM events AS e
  WHERE
    COALESCE(
      (
        (
          (
            (
              e.kind = 'transfer' AND NOT (
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
      ),
      FALSE
    )
), edges AS MATERIALIZED (
  SELECT
    *,
    ROW_NUMBER() OVER (ORDER BY ts, event_id, source) AS rnk
  FROM raw
  WHERE
    NOT actor IN (
      SELECT
        actor
      FROM raw
      GROUP BY
        actor
      HAVING
        COUNT(*) > 200
    )
    AND NOT counterparty IN (
      SELECT
        actor
      FROM raw
      GROUP BY
        actor
      HAVING
        COUNT(*) > 200
    )
), p1 AS (
  SELECT
    actor AS x1,
    source AS s1,
    event_id AS id1,
    rnk AS r1,
    amount AS m1,
    ts AS t1,
    counterparty AS c
  FROM edges
), p2 AS MATERIALIZED (
  SELECT
    p.x1,
    p.s1,
    p.id1,
    p.r1,
    p.m1,
    p.t1,
    e.actor AS x2,
    e.source AS s2,
    e.event_id AS id2,
    e.rnk AS r2,
    e.amount AS m2,
    e.counterparty AS c
  FROM p1 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r1
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty <> p.x1
), p3 AS MATERIALIZED (
  SELECT
    p.x1,
    p.s1,
    p.id1,
    p.r1,
    p.m1,
    p.x2,
    p.s2,
    p.id2,
    p.r2,
    p.m2,
    p.t1,
    e.actor AS x3,
    e.source AS s3,
    e.event_id AS id3,
    e.rnk AS r3,
    e.amount AS m3,
    e.counterparty AS c
  FROM p2 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r2
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty <> p.x1
    AND e.counterparty <> p.x2
), p4 AS MATERIALIZED (
  SELECT
    p.x1,
    p.s1,
    p.id1,
    p.r1,
    p.m1,
    p.x2,
    p.s2,
    p.id2,
    p.r2,
    p.m2,
    p.x3,
    p.s3,
    p.id3,
    p.r3,
    p.m3,
    p.t1,
    e.actor AS x4,
    e.source AS s4,
    e.event_id AS id4,
    e.rnk AS r4,
    e.amount AS m4,
    e.counterparty AS c
  FROM p3 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r3
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty <> p.x1
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
), p5 AS MATERIALIZED (
  SELECT
    p.x1,
    p.s1,
    p.id1,
    p.r1,
    p.m1,
    p.x2,
    p.s2,
    p.id2,
    p.r2,
    p.m2,
    p.x3,
    p.s3,
    p.id3,
    p.r3,
    p.m3,
    p.x4,
    p.s4,
    p.id4,
    p.r4,
    p.m4,
    p.t1,
    e.actor AS x5,
    e.source AS s5,
    e.event_id AS id5,
    e.rnk AS r5,
    e.amount AS m5,
    e.counterparty AS c
  FROM p4 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r4
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty <> p.x1
    AND e.counterparty <> p.x2
    AND e.counterparty <> p.x3
    AND e.counterparty <> p.x4
), cycles AS (
  SELECT
    p.x1 AS group_actor,
    e.source,
    e.event_id,
    e.ts,
    p.t1 AS first_ts,
    [p.s1, p.s2, p.s3, e.source] AS evidence_sources,
    [p.id1, p.id2, p.id3, e.event_id] AS evidence,
    4 AS value_length,
    p.m1 + p.m2 + p.m3 + e.amount AS value_total,
    LEAST(p.m1, p.m2, p.m3, e.amount) AS value_min_amount,
    GREATEST(p.m1, p.m2, p.m3, e.amount) AS value_max_amount,
    e.rnk AS closing,
    p.r1 AS r1,
    p.r2 AS r2,
    p.r3 AS r3,
    0 AS r4,
    0 AS r5
  FROM p3 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r3
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty = p.x1
  UNION ALL
  SELECT
    p.x1 AS group_actor,
    e.source,
    e.event_id,
    e.ts,
    p.t1 AS first_ts,
    [p.s1, p.s2, p.s3, p.s4, e.source] AS evidence_sources,
    [p.id1, p.id2, p.id3, p.id4, e.event_id] AS evidence,
    5 AS value_length,
    p.m1 + p.m2 + p.m3 + p.m4 + e.amount AS value_total,
    LEAST(p.m1, p.m2, p.m3, p.m4, e.amount) AS value_min_amount,
    GREATEST(p.m1, p.m2, p.m3, p.m4, e.amount) AS value_max_amount,
    e.rnk AS closing,
    p.r1 AS r1,
    p.r2 AS r2,
    p.r3 AS r3,
    p.r4 AS r4,
    0 AS r5
  FROM p4 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r4
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty = p.x1
  UNION ALL
  SELECT
    p.x1 AS group_actor,
    e.source,
    e.event_id,
    e.ts,
    p.t1 AS first_ts,
    [p.s1, p.s2, p.s3, p.s4, p.s5, e.source] AS evidence_sources,
    [p.id1, p.id2, p.id3, p.id4, p.id5, e.event_id] AS evidence,
    6 AS value_length,
    p.m1 + p.m2 + p.m3 + p.m4 + p.m5 + e.amount AS value_total,
    LEAST(p.m1, p.m2, p.m3, p.m4, p.m5, e.amount) AS value_min_amount,
    GREATEST(p.m1, p.m2, p.m3, p.m4, p.m5, e.amount) AS value_max_amount,
    e.rnk AS closing,
    p.r1 AS r1,
    p.r2 AS r2,
    p.r3 AS r3,
    p.r4 AS r4,
    p.r5 AS r5
  FROM p5 AS p
  JOIN edges AS e
    ON e.actor = p.c
    AND e.rnk > p.r5
    AND e.ts < p.t1 + INTERVAL '2592000000000' MICROSECONDS
    AND ABS(e.amount - p.m1) <= 2 * p.m1
    AND e.counterparty = p.x1
), chosen AS (
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY group_actor, closing
      ORDER BY value_length, r1 DESC, r2 DESC, r3 DESC, r4 DESC, r5 DESC
    ) AS pick
  FROM cycles
)
SELECT
  *
  EXCLUDE (pick, closing, r1, r2, r3, r4, r5)
FROM chosen
WHERE
  pick = 1
