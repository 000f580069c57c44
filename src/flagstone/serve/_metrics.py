"""Prometheus metrics of the scoring service, on a registry of its own (not the global one).

Request counts and latencies are observed per request; what the writer counts (events, alerts by
rule, state size) is read from ``ScoringService.counters`` when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from flagstone.serve._service import ScoringService

# Finer than the default buckets at the low end, where a decision's latency lives.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _ServiceCollector(Collector):
    def __init__(self, service: ScoringService) -> None:
        self.service = service

    def collect(self) -> Iterator[Any]:
        c = self.service.counters
        yield CounterMetricFamily("flagstone_events_scored", "Events accepted and scored (or stored as late)", c.events)
        yield CounterMetricFamily("flagstone_events_late", "Accepted events too late to be tested", c.late)
        yield CounterMetricFamily(
            "flagstone_events_retried", "Events sent again and answered from the store", c.retries
        )
        alerts = CounterMetricFamily("flagstone_alerts", "Alerts fired, by rule", labels=["rule"])
        for rule_id in self.service.rules:
            alerts.add_metric([rule_id], c.alerts.get(rule_id, 0))
        yield alerts
        yield GaugeMetricFamily(
            "flagstone_events_in_state", "Events held in rule windows and open episodes", c.state_events
        )
        yield GaugeMetricFamily("flagstone_groups_in_state", "Groups (accounts, cards ...) with state", c.state_groups)
        yield CounterMetricFamily("flagstone_commits", "Group commits (one store transaction each)", c.groups)


class Metrics:
    def __init__(self, service: ScoringService) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "flagstone_requests",
            "HTTP requests, by endpoint and status",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "flagstone_request_seconds",
            "Time from request to response, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ServiceCollector(service))

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
