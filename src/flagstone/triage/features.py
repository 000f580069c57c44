"""Per-alert features for triage (issue 15), computed in the store with SQL, from data up to each
alert's firing event only.

``FEATURES`` lists them in column order, each with the sentence a reviewer reads and the canonical
event fields it reads (checked against protected attributes as rules are, ``check_protected``).
``feature_table`` runs the statement of ``_sql.py`` on DuckDB; ``spark_feature_table`` runs the
same statement, transpiled by sqlglot, on Spark. Both return one row per alert: ``alert_id``,
``rule_id``, ``fire_ts``, then one float64 column per feature (NULL when unknown). docs/triage.md
lists the features and their exact definitions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from flagstone.errors import RuleError
from flagstone.protected import PROTECTED_REFUSAL, configured_match, protected_match
from flagstone.store import has_table
from flagstone.triage._sql import EVENT_READS, HUB_DEGREE, feature_sql, more_events_sql, relevant_events_sql
from flagstone.triage._sql import GRAPH as GRAPH


@dataclass(frozen=True)
class Feature:
    name: str  # snake_case column name
    sentence: str  # a format template with {value}, what a reviewer reads
    reads: tuple[str, ...]  # canonical event fields it reads
    group: str  # evidence, group, graph or alerts: where docs/triage.md lists it


_ORDER = ("ts", "event_id", "source")  # every feature reads the event order to stop at the alert
_EDGE = ("actor", "counterparty")

FEATURES: tuple[Feature, ...] = (
    Feature(
        "severity_rank", "the rule's severity is {value:.0f} on a scale of 0 (low) to 3 (critical)", (), "evidence"
    ),
    Feature("evidence_events", "the evidence holds {value:.0f} events up to the alert", _ORDER, "evidence"),
    Feature("evidence_amount", "the evidence moves {value:,.2f} in total", (*_ORDER, "amount"), "evidence"),
    Feature("evidence_span_hours", "the evidence spans {value:,.1f} hours", _ORDER, "evidence"),
    Feature(
        "evidence_first_contacts",
        "{value:.0f} of the evidence payments were between accounts that had never dealt with each other before",
        (*_ORDER, *_EDGE),
        "evidence",
    ),
    Feature(
        "evidence_first_contact_share",
        "{value:.0%} of the evidence payments were first contacts between their two accounts",
        (*_ORDER, *_EDGE),
        "evidence",
    ),
    Feature("group_events_out", "the account made {value:.0f} payments before the alert", (*_ORDER, *_EDGE), "group"),
    Feature(
        "group_events_in", "the account received {value:.0f} payments before the alert", (*_ORDER, *_EDGE), "group"
    ),
    Feature(
        "group_amount_out", "the account paid out {value:,.2f} before the alert", (*_ORDER, *_EDGE, "amount"), "group"
    ),
    Feature(
        "group_amount_in", "the account received {value:,.2f} before the alert", (*_ORDER, *_EDGE, "amount"), "group"
    ),
    Feature(
        "group_events_recent",
        "the account had {value:.0f} payments in the 30 days before the alert",
        (*_ORDER, *_EDGE),
        "group",
    ),
    Feature(
        "group_cash_share",
        "{value:.0%} of the account's payments before the alert were in cash",
        (*_ORDER, *_EDGE, "kind", "channel"),
        "group",
    ),
    Feature(
        "group_tenure_days", "the account was first seen {value:,.1f} days before the alert", (*_ORDER, *_EDGE), "group"
    ),
    Feature(
        "group_counterparties",
        "the account had dealt with {value:.0f} other accounts before the alert",
        (*_ORDER, *_EDGE),
        "group",
    ),
    Feature("out_degree", "the account had paid {value:.0f} different accounts", (*_ORDER, *_EDGE), "graph"),
    Feature("in_degree", "the account had been paid by {value:.0f} different accounts", (*_ORDER, *_EDGE), "graph"),
    Feature(
        "reciprocity",
        "{value:.0%} of the account's counterparties had paid it and been paid by it",
        (*_ORDER, *_EDGE),
        "graph",
    ),
    Feature(
        "two_hop_reach",
        "the account reached {value:.0f} accounts within two steps of payments",
        (*_ORDER, *_EDGE),
        "graph",
    ),
    Feature(
        "counterparty_degree_mean",
        "the account's counterparties had each dealt with {value:,.1f} accounts on average",
        (*_ORDER, *_EDGE),
        "graph",
    ),
    Feature(
        "counterparty_tenure_days_mean",
        "the account's counterparties were first seen {value:,.1f} days before the alert on average",
        (*_ORDER, *_EDGE),
        "graph",
    ),
    Feature(
        "other_rule_alerts",
        "{value:.0f} alerts of other rules had already involved the account",
        (*_ORDER, *_EDGE),
        "alerts",
    ),
    Feature("earlier_alerts", "the account had been the subject of {value:.0f} alerts before", _ORDER, "alerts"),
    Feature("prior_reported_cases", "{value:.0f} earlier cases on the account were reported", (), "alerts"),
    Feature("prior_dismissed_cases", "{value:.0f} earlier cases on the account were dismissed", (), "alerts"),
)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
KEY_COLUMNS = ("alert_id", "rule_id", "fire_ts")
SCHEMA = pa.schema(
    [("alert_id", pa.string()), ("rule_id", pa.string()), ("fire_ts", pa.timestamp("us"))]
    + [(name, pa.float64()) for name in FEATURE_NAMES]
)


def check_protected(features: Sequence[Feature] = FEATURES, protected: Sequence[str] | None = None) -> None:
    """Refuse a feature that reads a special category, or a field the configuration marks protected
    (``protected``; by default the deployment's, as for rules)."""
    if protected is None:
        from flagstone.config import load_config

        protected = load_config().unreadable_by_rules()
    for feature in features:
        for ref in feature.reads:
            if (stem := protected_match(ref.rpartition(".")[2])) is not None:
                raise RuleError(
                    f"feature '{feature.name}' reads '{ref}', which looks like a protected attribute ('{stem}'): "
                    + PROTECTED_REFUSAL,
                    field=ref,
                )
            if (name := configured_match(ref, protected)) is not None:
                raise RuleError(
                    f"feature '{feature.name}' reads '{ref}', which the configuration marks protected ('{name}'): "
                    "features may not use protected attributes",
                    field=ref,
                )


# Counts and spans that grow with how much history the store holds (a 100-day export against a
# 365-day one, or one deployment a year later): computed, kept and shown, but not model inputs,
# since a model trained on one history length misreads another. Measured with bench/triage.py:
# trained on the 365-day AMLGentex set and measured on the 100-day one, the share of the queue read
# to find every pattern fell from 0.88 with them to 0.66 without; the other direction held (0.98 to
# 0.96). Ratios and recent windows (group_events_recent, reciprocity, shares) stay.
HISTORY_LENGTH = frozenset(
    {
        "group_events_out",
        "group_events_in",
        "group_amount_out",
        "group_amount_in",
        "group_tenure_days",
        "group_counterparties",
        "out_degree",
        "in_degree",
        "two_hop_reach",
        "counterparty_degree_mean",
        "counterparty_tenure_days_mean",
        "earlier_alerts",
    }
)
MODEL_FEATURES = tuple(f.name for f in FEATURES if f.name not in HISTORY_LENGTH)


def model_inputs(table: pa.Table) -> pa.Table:
    """A feature table with only what a triage model is trained on: ids, time, ``MODEL_FEATURES``."""
    return table.select(["alert_id", "rule_id", "fire_ts", *MODEL_FEATURES])


STORE_OUTCOMES = "case_outcomes"  # the store's copy of decided cases (store.py)


def feature_table(
    con: duckdb.DuckDBPyConnection,
    *,
    alerts: str = "alerts",
    events: str = "events",
    outcomes: str | None = STORE_OUTCOMES,
    protected: Sequence[str] | None = None,
    hub_degree: int = HUB_DEGREE,
    alert_ids: Sequence[str] | None = None,
    graph: bool = True,
) -> pa.Table:
    """One row per alert of ``alerts``: ``alert_id``, ``rule_id``, ``fire_ts``, then ``FEATURES``.

    ``outcomes``: a table or view of case outcomes ``(account, outcome, ts)``; by default the
    store's ``case_outcomes`` (copied in from the case database by ``oversight.sync.copy_outcomes``)
    when it has one; without one the case features are NULL. ``hub_degree``: an
    account with more counterparties is not expanded in the two-hop reach. ``alert_ids``: compute
    only these alerts' rows (a scan's new alerts), reading only the events of their accounts and
    neighbours; the values are those of the whole table, every other alert still counting as
    context. ``graph=False`` leaves the features of ``GRAPH`` NULL and reads no neighbour's events
    (for a model that does not read them)."""
    check_protected(FEATURES, protected)
    if outcomes == STORE_OUTCOMES and not has_table(con, STORE_OUTCOMES):
        outcomes = None
    if alert_ids is None:
        table = con.sql(feature_sql(alerts, events, outcomes, "duckdb", hub_degree, graph=graph)).to_arrow_table()
        return table.cast(SCHEMA)
    wanted = pa.table({"alert_id": pa.array(sorted(set(alert_ids)), pa.string())})
    with _registered(con, _TARGETS, wanted):
        relevant = _relevant_events(con, alerts, events, graph)
        with _registered(con, _RELEVANT, relevant):
            sql = feature_sql(alerts, _RELEVANT, outcomes, "duckdb", hub_degree, targets=_TARGETS, graph=graph)
            return con.sql(sql).to_arrow_table().cast(SCHEMA)


_TARGETS = "triage_feature_targets"
_RELEVANT = "triage_feature_events"
_MORE = "triage_feature_more"


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def _relevant_events(con: duckdb.DuckDBPyConnection, alerts: str, events: str, graph: bool) -> pa.Table:
    """The events the targets' features read: one pass over ``events`` for their accounts and
    evidence, a second only when accounts beyond those are needed (``more_events_sql``)."""
    first = con.sql(relevant_events_sql(alerts, events, _TARGETS)).to_arrow_table()
    with _registered(con, _RELEVANT, first):
        more = con.sql(more_events_sql(alerts, _TARGETS, _RELEVANT, graph)).to_arrow_table()
        if more.num_rows == 0:
            return first
        with _registered(con, _MORE, more):
            # UNION, not UNION ALL: an event may be in both, and must count once.
            return con.sql(
                f"SELECT * FROM {_RELEVANT} UNION SELECT {EVENT_READS} FROM {events} "
                f"WHERE actor IN (SELECT acct FROM {_MORE}) OR counterparty IN (SELECT acct FROM {_MORE})"
            ).to_arrow_table()


def spark_feature_table(
    spark: Any,
    alerts_view: str = "alerts",
    events_view: str = "events",
    *,
    outcomes_view: str | None = None,
    protected: Sequence[str] | None = None,
    hub_degree: int = HUB_DEGREE,
) -> pa.Table:
    """The same features on Spark, from temporary views with the store's columns (``alerts`` with
    ``evidence`` and ``evidence_sources`` arrays). ``spark`` is a SparkSession, not imported here."""
    check_protected(FEATURES, protected)
    sql = feature_sql(alerts_view, events_view, outcomes_view, "spark", hub_degree)
    try:
        rows = spark.sql(sql).collect()
    except Exception as exc:
        raise RuntimeError(f"{exc}\n-- statement:\n{sql}") from exc
    columns = [c.name for c in SCHEMA]
    return pa.Table.from_pylist([{c: row[c] for c in columns} for row in rows], schema=SCHEMA)
