"""Prometheus metrics (prometheus-client), one registry per server. The controller updates them;
the HTTP app serves ``generate_latest(metrics.registry)`` at /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("jobsched_jobs", "Jobs by phase and queue", ["phase", "queue"],
                          registry=self.registry)
        self.admission_latency = Histogram(
            "jobsched_admission_latency_seconds", "Submission to admission",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600),
            registry=self.registry)
        self.cycle_duration = Histogram(
            "jobsched_scheduling_cycle_duration_seconds", "Duration of one scheduling cycle",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry)
        self.oom_kills = Counter("jobsched_oom_kills_total", "Replicas killed for exceeding memory",
                                 ["queue"], registry=self.registry)
        self.attempts = Counter("jobsched_attempts_total", "Finished attempts by reason", ["reason"],
                                registry=self.registry)
        self.preemptions = Counter("jobsched_preemptions_total", "Gangs preempted",
                                   registry=self.registry)
