"""Alert triage: every alert scored and explained by a model trained on labelled history and on
reviewers' decisions (issue 15). A score orders the review queue and says why; it never closes,
dismisses, escalates or files a case.

- ``features``: per-alert features, computed in the store with SQL from engine-neutral definitions,
  from data up to the alert's time only. ``feature_table`` gives one row per alert: ``alert_id``,
  ``rule_id``, ``fire_ts``, then one float64 column per ``FEATURES`` name (NULL when unknown).
- ``model``: a seeded LightGBM model on those columns, validated on time-ordered splits and
  calibrated, so that its priority reads as a probability.
- ``explain``: each score's largest feature contributions, as sentences a reviewer understands.
"""
