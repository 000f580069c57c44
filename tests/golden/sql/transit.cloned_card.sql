WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    e.place AS arg_vehicles
  FROM events AS e
  WHERE
    (
      e.kind = 'transit_tap'
    ) AND NOT e.actor IS NULL
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
      RANGE BETWEEN INTERVAL '86399999999' MICROSECONDS PRECEDING AND CURRENT ROW
    ) + 1 AS window_first_seq
  FROM matched
), measured AS (
  SELECT
    *,
    COUNT(DISTINCT arg_vehicles) OVER w AS agg_vehicles,
    COUNT(*) OVER w AS agg_taps
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
          seq - window_first_seq + 1 >= 36
      )
  )
  WINDOW w AS (PARTITION BY group_actor ORDER BY seq ROWS BETWEEN back PRECEDING AND CURRENT ROW)
), tested AS (
  SELECT
    *,
    COALESCE(agg_vehicles >= 36, FALSE) AS hit
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
  f.agg_vehicles AS value_vehicles,
  f.agg_taps AS value_taps,
  MIN(m.ts) AS first_ts,
  ARRAY_AGG(m.source ORDER BY m.seq) AS evidence_sources,
  ARRAY_AGG(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON m.group_actor = f.group_actor AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY ALL
