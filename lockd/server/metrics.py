"""Prometheus metrics of the server (its own registry, not the global one).

Counters and the latency histogram count what the server did since it
started: in one process, in memory; with ``--workers N``, in prometheus-client's
multiprocess files (``PROMETHEUS_MULTIPROC_DIR``), summed over the workers at
each scrape. ``lockd_deployments`` is read from the database at each scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..drift import DriftReport

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Deployments(Collector):
    def __init__(self, counts: Callable[[datetime], dict[str, int]], stale: timedelta) -> None:
        self.counts = counts
        self.stale = stale

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "lockd_deployments",
            "Deployments by status (stale: not seen lately).",
            labels=["status"],
        )
        for status, count in self.counts(datetime.now(UTC) - self.stale).items():
            family.add_metric([status], count)
        yield family


class Metrics:
    def __init__(self, counts: Callable[[datetime], dict[str, int]], stale: timedelta) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.snapshots = Counter(
            "lockd_snapshots_ingested",
            "Snapshots checked and recorded, by the status of their report.",
            ["status"],
            registry=self.registry,
        )
        self.findings = Counter(
            "lockd_findings",
            "Findings in ingested snapshots' reports, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "lockd_http_request_duration_seconds",
            "Time to answer a request, by route template and status code.",
            ["method", "route", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.deployments = _Deployments(counts, stale)
        self.registry.register(self.deployments)

    def ingested(self, report: DriftReport) -> None:
        self.snapshots.labels(report.status).inc()
        for finding in report.findings:
            self.findings.labels(finding.kind).inc()

    def render(self) -> bytes:
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        merged = CollectorRegistry()
        MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        merged.register(self.deployments)
        return generate_latest(merged)
