WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    e.category AS arg_distinct
  FROM events AS e
  WHERE
    (
      (
        e.kind = 'purchase'
        AND e.category IN (
          'precursor.hydrogen_peroxide',
          'precursor.nitromethane',
          'precursor.nitric_acid',
          'precursor.potassium_chlorate',
          'precursor.potassium_perchlorate',
          'precursor.sodium_chlorate',
          'precursor.sodium_perchlorate',
          'precursor.ammonium_nitrate',
          'precursor.hexamine',
          'precursor.sulphuric_acid',
          'precursor.acetone',
          'precursor.potassium_nitrate',
          'precursor.sodium_nitrate',
          'precursor.calcium_nitrate',
          'precursor.calcium_ammonium_nitrate',
          'precursor.aluminium_powder',
          'precursor.magnesium_powder',
          'precursor.magnesium_nitrate_hexahydrate',
          'component.pressure_cooker',
          'component.timer',
          'component.ball_bearings',
          'component.black_powder'
        )
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
      RANGE BETWEEN INTERVAL '604799999999' MICROSECONDS PRECEDING AND CURRENT ROW
    ) + 1 AS window_first_seq
  FROM matched
), measured AS (
  SELECT
    *,
    COUNT(DISTINCT arg_distinct) OVER w AS agg_distinct,
    COUNT(*) OVER w AS agg_events
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
          seq - window_first_seq + 1 >= 3
      )
  )
  WINDOW w AS (PARTITION BY group_actor ORDER BY seq ROWS BETWEEN back PRECEDING AND CURRENT ROW)
), tested AS (
  SELECT
    *,
    COALESCE(agg_distinct >= 3, FALSE) AS hit
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
  f.agg_distinct AS value_distinct,
  f.agg_events AS value_events,
  MIN(m.ts) AS first_ts,
  ARRAY_AGG(m.source ORDER BY m.seq) AS evidence_sources,
  ARRAY_AGG(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN numbered AS m
  ON m.group_actor = f.group_actor AND m.seq BETWEEN f.window_first_seq AND f.last_seq
GROUP BY ALL
