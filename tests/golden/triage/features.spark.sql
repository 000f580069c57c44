WITH al AS (
  SELECT
    alert_id,
    rule_id,
    severity,
    group_key,
    last_ts AS c_ts,
    fire_event_id AS c_id,
    fire_source AS c_src,
    evidence,
    evidence_sources
  FROM alerts
), anchor AS (
  SELECT DISTINCT
    alert_id,
    rule_id,
    c_ts,
    c_id,
    c_src,
    acct
  FROM (
    SELECT
      alert_id,
      rule_id,
      c_ts,
      c_id,
      c_src,
      REGEXP_EXTRACT(group_key, '(?:^|, )actor=(.*?)(?:, [a-z_.]+=|$)') AS acct
    FROM al
    UNION ALL
    SELECT
      alert_id,
      rule_id,
      c_ts,
      c_id,
      c_src,
      REGEXP_EXTRACT(group_key, '(?:^|, )counterparty=(.*?)(?:, [a-z_.]+=|$)') AS acct
    FROM al
    UNION ALL
    SELECT
      alert_id,
      rule_id,
      c_ts,
      c_id,
      c_src,
      REGEXP_EXTRACT(group_key, '(?:^|, )account=(.*?)(?:, [a-z_.]+=|$)') AS acct
    FROM al
  ) AS parts
  WHERE
    acct <> ''
), an_count AS (
  SELECT
    alert_id,
    COUNT(*) AS an_n
  FROM anchor
  GROUP BY
    alert_id
), ev_keys AS (
  SELECT
    al.alert_id,
    ELEMENT_AT(al.evidence, t.i) AS eid,
    ELEMENT_AT(al.evidence_sources, t.i) AS src
  FROM al AS al
  LATERAL VIEW
  EXPLODE(SEQUENCE(1, SIZE(al.evidence))) t AS i
), evid AS (
  SELECT
    al.alert_id,
    e.source,
    e.event_id,
    e.ts,
    e.actor,
    e.counterparty,
    e.amount
  FROM ev_keys AS k
  JOIN al AS al
    ON al.alert_id = k.alert_id
  JOIN events AS e
    ON e.source = k.src AND e.event_id = k.eid
  WHERE
    (
      e.ts < al.c_ts
      OR (
        e.ts = al.c_ts
        AND (
          e.event_id < al.c_id OR (
            e.event_id = al.c_id AND e.source <= al.c_src
          )
        )
      )
    )
), pair_events AS (
  SELECT
    e.source,
    e.event_id,
    e.ts,
    LEAST(e.actor, e.counterparty) AS lo,
    GREATEST(e.actor, e.counterparty) AS hi,
    ROW_NUMBER() OVER (
      PARTITION BY LEAST(e.actor, e.counterparty), GREATEST(e.actor, e.counterparty)
      ORDER BY e.ts NULLS LAST, e.event_id NULLS LAST, e.source NULLS LAST
    ) AS k
  FROM events AS e
  WHERE
    NOT e.actor IS NULL AND NOT e.counterparty IS NULL AND e.actor <> e.counterparty
), pf AS (
  SELECT
    x,
    y,
    ts,
    event_id,
    source
  FROM (
    SELECT
      lo AS x,
      hi AS y,
      ts,
      event_id,
      source
    FROM pair_events
    WHERE
      k = 1
    UNION ALL
    SELECT
      hi AS x,
      lo AS y,
      ts,
      event_id,
      source
    FROM pair_events
    WHERE
      k = 1
  ) AS both_sides
), ev_feat AS (
  SELECT
    v.alert_id,
    COUNT(*) AS n,
    SUM(v.amount) AS amount,
    MIN(v.ts) AS t0,
    MAX(v.ts) AS t1,
    COUNT(*) FILTER(WHERE
      p.k = 1) AS first_contacts,
    COUNT(*) FILTER(WHERE
      NOT p.k IS NULL) AS with_pair
  FROM evid AS v
  LEFT JOIN pair_events AS p
    ON p.source = v.source AND p.event_id = v.event_id
  GROUP BY
    v.alert_id
), hist AS (
  SELECT
    an.alert_id,
    an.acct,
    'out' AS side,
    e.counterparty AS other,
    e.ts,
    e.amount,
    (
      e.kind IN ('cash_deposit', 'cash_withdrawal')
      OR LOWER(COALESCE(e.channel, '')) = 'cash'
    ) AS cash
  FROM anchor AS an
  JOIN events AS e
    ON e.actor = an.acct
  WHERE
    (
      e.ts < an.c_ts
      OR (
        e.ts = an.c_ts
        AND (
          e.event_id < an.c_id OR (
            e.event_id = an.c_id AND e.source <= an.c_src
          )
        )
      )
    )
  UNION ALL
  SELECT
    an.alert_id,
    an.acct,
    'in' AS side,
    e.actor AS other,
    e.ts,
    e.amount,
    (
      e.kind IN ('cash_deposit', 'cash_withdrawal')
      OR LOWER(COALESCE(e.channel, '')) = 'cash'
    ) AS cash
  FROM anchor AS an
  JOIN events AS e
    ON e.counterparty = an.acct
  WHERE
    (
      e.ts < an.c_ts
      OR (
        e.ts = an.c_ts
        AND (
          e.event_id < an.c_id OR (
            e.event_id = an.c_id AND e.source <= an.c_src
          )
        )
      )
    )
), grp AS (
  SELECT
    h.alert_id,
    COUNT(*) FILTER(WHERE
      h.side = 'out') AS n_out,
    COUNT(*) FILTER(WHERE
      h.side = 'in') AS n_in,
    SUM(h.amount) FILTER(WHERE
      h.side = 'out') AS amt_out,
    SUM(h.amount) FILTER(WHERE
      h.side = 'in') AS amt_in,
    COUNT(*) FILTER(WHERE
      h.cash) AS n_cash,
    COUNT(*) FILTER(WHERE
      h.ts > al.c_ts - INTERVAL '30' DAY) AS n_recent,
    MIN(h.ts) AS first_ts,
    MAX(al.c_ts) AS c_ts
  FROM hist AS h
  JOIN al
    ON al.alert_id = h.alert_id
  GROUP BY
    h.alert_id
), pairs AS (
  SELECT
    alert_id,
    acct,
    other,
    MAX(CASE WHEN side = 'out' THEN 1 ELSE 0 END) AS has_out,
    MAX(CASE WHEN side = 'in' THEN 1 ELSE 0 END) AS has_in
  FROM hist
  WHERE
    NOT other IS NULL AND other <> acct
  GROUP BY
    alert_id,
    acct,
    other
), deg AS (
  SELECT
    alert_id,
    COUNT(*) AS n_pairs,
    SUM(has_out) AS n_outdeg,
    SUM(has_in) AS n_indeg,
    SUM(has_out * has_in) AS n_mutual
  FROM pairs
  GROUP BY
    alert_id
), nb AS (
  SELECT DISTINCT
    p.alert_id,
    p.other AS v,
    an.c_ts,
    an.c_id,
    an.c_src
  FROM pairs AS p
  JOIN anchor AS an
    ON an.alert_id = p.alert_id AND an.acct = p.acct
), nb_stream AS (
  SELECT
    f.x AS v,
    f.ts,
    f.event_id,
    f.source,
    0 AS mark,
    CAST(NULL AS STRING) AS alert_id
  FROM pf AS f
  WHERE
    f.x IN (
      SELECT
        v
      FROM nb
    )
  UNION ALL
  SELECT
    v,
    c_ts AS ts,
    c_id AS event_id,
    c_src AS source,
    1 AS mark,
    alert_id
  FROM nb
), nb_run AS (
  SELECT
    alert_id,
    v,
    mark,
    SUM(1 - mark) OVER (
      PARTITION BY v
      ORDER BY ts NULLS LAST, event_id NULLS LAST, source NULLS LAST, mark NULLS LAST
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ) AS d
  FROM nb_stream
), nb_deg AS (
  SELECT
    alert_id,
    v,
    d
  FROM nb_run
  WHERE
    mark = 1
), nn AS (
  SELECT
    nb.alert_id,
    nb.v,
    f.y AS w
  FROM nb
  JOIN nb_deg AS nd
    ON nd.alert_id = nb.alert_id AND nd.v = nb.v
  JOIN pf AS f
    ON f.x = nb.v
  WHERE
    nd.d <= 100
    AND (
      f.ts < nb.c_ts
      OR (
        f.ts = nb.c_ts
        AND (
          f.event_id < nb.c_id OR (
            f.event_id = nb.c_id AND f.source <= nb.c_src
          )
        )
      )
    )
), seen AS (
  SELECT
    acct,
    MIN(ts) AS first_ts
  FROM (
    SELECT
      actor AS acct,
      ts
    FROM events
    WHERE
      NOT actor IS NULL
    UNION ALL
    SELECT
      counterparty AS acct,
      ts
    FROM events
    WHERE
      NOT counterparty IS NULL
  ) AS sides
  GROUP BY
    acct
), cp AS (
  SELECT
    nb.alert_id,
    COUNT(*) AS n_cp,
    SUM(nd.d) AS sum_deg,
    SUM(DATEDIFF(MICROSECOND, s.first_ts, nb.c_ts)) AS sum_age_us
  FROM nb
  JOIN nb_deg AS nd
    ON nd.alert_id = nb.alert_id AND nd.v = nb.v
  JOIN seen AS s
    ON s.acct = nb.v
  GROUP BY
    nb.alert_id
), reach_set AS (
  SELECT
    alert_id,
    v AS w
  FROM nb
  UNION
  SELECT
    alert_id,
    w
  FROM nn
), reach AS (
  SELECT
    r.alert_id,
    COUNT(*) AS n_reach
  FROM reach_set AS r
  LEFT JOIN anchor AS an
    ON an.alert_id = r.alert_id AND an.acct = r.w
  WHERE
    an.acct IS NULL
  GROUP BY
    r.alert_id
), touch AS (
  SELECT DISTINCT
    alert_id,
    acct
  FROM (
    SELECT
      alert_id,
      acct
    FROM anchor
    UNION ALL
    SELECT
      alert_id,
      actor AS acct
    FROM evid
    WHERE
      NOT actor IS NULL
    UNION ALL
    SELECT
      alert_id,
      counterparty AS acct
    FROM evid
    WHERE
      NOT counterparty IS NULL
  ) AS t
), other_rules AS (
  SELECT
    an.alert_id,
    COUNT(DISTINCT b.alert_id) AS n
  FROM anchor AS an
  JOIN touch AS t
    ON t.acct = an.acct
  JOIN al AS b
    ON b.alert_id = t.alert_id
  WHERE
    b.rule_id <> an.rule_id
    AND (
      b.c_ts < an.c_ts
      OR (
        b.c_ts = an.c_ts
        AND (
          b.c_id < an.c_id OR (
            b.c_id = an.c_id AND b.c_src <= an.c_src
          )
        )
      )
    )
  GROUP BY
    an.alert_id
), earlier AS (
  SELECT
    an.alert_id,
    COUNT(DISTINCT b.alert_id) AS n
  FROM anchor AS an
  JOIN anchor AS b
    ON b.acct = an.acct
  WHERE
    b.alert_id <> an.alert_id
    AND (
      b.c_ts < an.c_ts
      OR (
        b.c_ts = an.c_ts
        AND (
          b.c_id < an.c_id OR (
            b.c_id = an.c_id AND b.c_src <= an.c_src
          )
        )
      )
    )
  GROUP BY
    an.alert_id
), outc AS (
  SELECT
    an.alert_id,
    COUNT(*) FILTER(WHERE
      o.outcome IN ('approved', 'filed')) AS n_pos,
    COUNT(*) FILTER(WHERE
      o.outcome IN ('dismissed')) AS n_neg
  FROM anchor AS an
  JOIN outcomes AS o
    ON o.account = an.acct
  WHERE
    o.ts < an.c_ts
  GROUP BY
    an.alert_id
)
SELECT
  al.alert_id,
  al.rule_id,
  al.c_ts AS fire_ts,
  CAST(CASE al.severity
    WHEN 'low'
    THEN 0
    WHEN 'medium'
    THEN 1
    WHEN 'high'
    THEN 2
    WHEN 'critical'
    THEN 3
  END AS DOUBLE) AS severity_rank,
  CAST(COALESCE(ef.n, 0) AS DOUBLE) AS evidence_events,
  CAST(ef.amount AS DOUBLE) AS evidence_amount,
  (
    CAST(DATEDIFF(MICROSECOND, ef.t0, ef.t1) AS DOUBLE) / 3600000000
  ) AS evidence_span_hours,
  CAST(COALESCE(ef.first_contacts, 0) AS DOUBLE) AS evidence_first_contacts,
  (
    CAST(ef.first_contacts AS DOUBLE) / NULLIF(ef.with_pair, 0)
  ) AS evidence_first_contact_share,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(g.n_out, 0) END AS DOUBLE) AS group_events_out,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(g.n_in, 0) END AS DOUBLE) AS group_events_in,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(g.amt_out, 0) END AS DOUBLE) AS group_amount_out,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(g.amt_in, 0) END AS DOUBLE) AS group_amount_in,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(g.n_recent, 0) END AS DOUBLE) AS group_events_recent,
  (
    CAST(g.n_cash AS DOUBLE) / NULLIF(g.n_out + g.n_in, 0)
  ) AS group_cash_share,
  (
    CAST(DATEDIFF(MICROSECOND, g.first_ts, g.c_ts) AS DOUBLE) / 86400000000
  ) AS group_tenure_days,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(d.n_pairs, 0) END AS DOUBLE) AS group_counterparties,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(d.n_outdeg, 0) END AS DOUBLE) AS out_degree,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(d.n_indeg, 0) END AS DOUBLE) AS in_degree,
  (
    CAST(d.n_mutual AS DOUBLE) / NULLIF(d.n_pairs, 0)
  ) AS reciprocity,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(r.n_reach, 0) END AS DOUBLE) AS two_hop_reach,
  (
    CAST(c.sum_deg AS DOUBLE) / NULLIF(c.n_cp, 0)
  ) AS counterparty_degree_mean,
  (
    CAST(c.sum_age_us AS DOUBLE) / 86400000000 / NULLIF(c.n_cp, 0)
  ) AS counterparty_tenure_days_mean,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(o.n, 0) END AS DOUBLE) AS other_rule_alerts,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(ea.n, 0) END AS DOUBLE) AS earlier_alerts,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(oc.n_pos, 0) END AS DOUBLE) AS prior_reported_cases,
  CAST(CASE WHEN an_n > 0 THEN COALESCE(oc.n_neg, 0) END AS DOUBLE) AS prior_dismissed_cases
FROM al
LEFT JOIN an_count AS ac
  ON ac.alert_id = al.alert_id
LEFT JOIN ev_feat AS ef
  ON ef.alert_id = al.alert_id
LEFT JOIN grp AS g
  ON g.alert_id = al.alert_id
LEFT JOIN deg AS d
  ON d.alert_id = al.alert_id
LEFT JOIN reach AS r
  ON r.alert_id = al.alert_id
LEFT JOIN cp AS c
  ON c.alert_id = al.alert_id
LEFT JOIN other_rules AS o
  ON o.alert_id = al.alert_id
LEFT JOIN earlier AS ea
  ON ea.alert_id = al.alert_id
LEFT JOIN outc AS oc
  ON oc.alert_id = al.alert_id
ORDER BY
  al.alert_id NULLS LAST
