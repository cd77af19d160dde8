"""Prometheus metrics of one service: requests by status, latency, batch sizes, queue depth.
Each app has its own registry, so two apps in one process (tests) do not share counters."""

from __future__ import annotations

from collections.abc import Callable


class Metrics:
    def __init__(self, *, queue_depth: Callable[[], float]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        self.registry = CollectorRegistry()
        self.requests = Counter("mask2former_requests", "POST /v1/predict requests by HTTP status", ["status"],
                                registry=self.registry)
        self.latency = Histogram("mask2former_request_seconds", "POST /v1/predict latency (all statuses)",
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=self.registry)
        self.batch_size = Histogram("mask2former_batch_size", "images per model call",
                                    buckets=(1, 2, 4, 8, 16, 32), registry=self.registry)
        depth = Gauge("mask2former_queue_depth", "requests waiting or running", registry=self.registry)
        depth.set_function(queue_depth)
        self.content_type = CONTENT_TYPE_LATEST

    def observe(self, status: int, seconds: float) -> None:
        self.requests.labels(status=str(status)).inc()
        self.latency.observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
