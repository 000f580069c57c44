WITH matched AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    e.actor AS group_actor,
    e.kind AS value_kind,
    e.category AS value_category,
    e.quantity AS value_quantity,
    COALESCE(e.quantity >= 10, FALSE) AS hit
  FROM events AS e
  WHERE
    (
      (
        e.kind = 'purchase' AND e.category LIKE 'precursor.%'
      )
    )
    AND NOT e.actor IS NULL
), tested AS (
  SELECT
    *,
    LAG(hit, 1, FALSE) OVER (PARTITION BY group_actor ORDER BY ts, event_id, source) AS was_hit
  FROM matched
)
SELECT
  *
  EXCLUDE (hit, was_hit),
  ts AS first_ts,
  [source] AS evidence_sources,
  [event_id] AS evidence
FROM tested
WHERE
  hit AND NOT was_hit
