"""What the service counts, for Prometheus: the only module that touches `prometheus_client`.

Labels are route templates (`/api/listeners/{listener}/history`), never the paths asked for: a
listener ID must not become a label, and a label per path would grow without bound. Each app
has its own registry (tests build several apps in one process). With `processes: N` each worker
process counts its own requests: scrape the pod (one process) or sum over processes.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 12, 16)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
__all__ = ["CONTENT_TYPE", "ServiceMetrics"]


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("cadenza_requests", "HTTP requests answered, by route and status "
                                "(errors: status >= 400)", ["route", "method", "status"],
                                registry=r)  # fmt: skip
        self.latency = Histogram("cadenza_request_seconds", "Time to answer a request, by route",
                                 ["route", "method"], buckets=LATENCY_BUCKETS,
                                 registry=r)  # fmt: skip
        self.queued = Gauge("cadenza_queue_depth", "Requests waiting for a model worker",
                            registry=r)  # fmt: skip
        self.busy = Gauge("cadenza_workers_busy", "Model workers running a job", registry=r)
        self.jobs = Counter("cadenza_jobs", "Model requests answered (generate, interpolate, "
                            "render, recommend, classify)", ["kind"], registry=r)  # fmt: skip
        self.expired = Counter("cadenza_expired_folders", "Job and upload folders deleted for "
                               "age (keep_hours)", registry=r)  # fmt: skip
        self.tasks = Counter("cadenza_background_jobs", "Background jobs finished, by kind and "
                             "status (done, failed, cancelled)", ["kind", "status"],
                             registry=r)  # fmt: skip
        self.tasks_queued = Gauge("cadenza_background_jobs_queued", "Background jobs waiting to "
                                  "start", registry=r)  # fmt: skip
        self.batch_rows = Histogram("cadenza_batch_rows", "Pieces drawn by one batched sampling "
                                    "loop of POST /api/generate", buckets=BATCH_BUCKETS,
                                    registry=r)  # fmt: skip
        self.batch_requests = Histogram("cadenza_batch_requests", "Generate requests sharing one "
                                        "sampling loop", buckets=BATCH_BUCKETS,
                                        registry=r)  # fmt: skip
        self.forgotten = Counter("cadenza_listeners_forgotten", "DELETE /api/listeners/{id} done",
                                 registry=r)  # fmt: skip

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
