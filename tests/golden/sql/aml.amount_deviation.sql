WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    CAST(e.amount AS DOUBLE) AS val
  FROM events AS e
  WHERE
    (
      e.kind = 'transfer'
    ) AND NOT e.actor IS NULL
), numbered AS (
  SELECT
    *,
    ROW_NUMBER() OVER (PARTITION BY group_actor ORDER BY ts, event_id, source) AS seq
  FROM matched
), framed AS (
  SELECT
    *,
    seq - (
      COUNT(*) OVER (
        PARTITION BY group_actor
        ORDER BY ts
        RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
      ) - COUNT(*) OVER (
        PARTITION BY group_actor
        ORDER BY ts
        RANGE BETWEEN INTERVAL '7775999999999' MICROSECONDS PRECEDING AND CURRENT ROW
      ) + 1
    ) AS back
  FROM numbered
), measured AS (
  SELECT
    *,
    MEDIAN(val) OVER h AS med,
    MAD(val) OVER h AS mad,
    COUNT(val) OVER h AS history_count
  FROM framed
  WINDOW h AS (PARTITION BY group_actor ORDER BY seq ROWS BETWEEN back PRECEDING AND 1 PRECEDING)
), scored AS (
  SELECT
    *,
    (
      val - med
    ) / NULLIF(CAST('1.4826' AS DOUBLE) * mad, 0) AS z
  FROM measured
), tested AS (
  SELECT
    *,
    COALESCE(
      NOT val IS NULL
      AND history_count >= 8
      AND (
        (
          (
            val >= 10000 AND val >= (
              8 * med
            )
          ) AND (
            z >= 8 OR mad = 0
          )
        )
      ),
      FALSE
    ) AS hit
  FROM scored
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
  f.val AS value_value,
  f.med AS value_median,
  f.mad AS value_mad,
  f.z AS value_z,
  f.history_count AS value_history_count,
  MIN(m.ts) AS first_ts,
  ARRAY_AGG(m.source ORDER BY m.seq) AS evidence_sources,
  ARRAY_AGG(m.event_id ORDER BY m.seq) AS evidence
FROM fired AS f
JOIN framed AS m
  ON m.group_actor = f.group_actor
  AND m.seq BETWEEN f.seq - f.back AND f.seq
  AND (
    NOT m.val IS NULL OR m.seq = f.seq
  )
GROUP BY ALL
