"""The server's Prometheus metrics, in a registry of its own per app (two apps in one process,
as in tests, never share counts). With several workers each process counts its own requests:
a scrape sees the worker that answered it."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# The paths the app answers; anything else is counted as "other", so that scanners probing
# random paths cannot grow the number of series without bound.
ENDPOINTS = frozenset({"/", "/predict", "/health", "/ready", "/model", "/metrics", "/docs", "/redoc",
                       "/openapi.json", "/docs/oauth2-redirect"})
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServeMetrics:
    """Requests by endpoint and status, latency, batch sizes, texts predicted, queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("textlstm_requests", "HTTP requests answered, by endpoint and status code.",
                                ["endpoint", "method", "code"], registry=r)
        self.latency = Histogram("textlstm_request_duration_seconds", "Time from request to response, by endpoint.",
                                 ["endpoint"], buckets=_SECONDS, registry=r)
        self.batch_texts = Histogram("textlstm_batch_texts", "Texts per forward pass.", buckets=_SIZES, registry=r)
        self.batch_requests = Histogram("textlstm_batch_requests", "Requests gathered into one forward pass.",
                                        buckets=_SIZES, registry=r)
        self.batch_seconds = Histogram("textlstm_batch_duration_seconds", "Time a forward pass (with tokenizing) takes.",
                                       buckets=_SECONDS, registry=r)
        self.texts = Counter("textlstm_texts_predicted", "Texts predicted.", registry=r)
        self.queue_depth = Gauge("textlstm_queue_depth", "Texts waiting for the model.", registry=r)
        self.rejected = Counter("textlstm_queue_rejected", "Requests refused because the queue was full.", registry=r)

    def observe_request(self, path: str, method: str, code: int, seconds: float) -> None:
        endpoint = path if path in ENDPOINTS else "other"
        self.requests.labels(endpoint, method, str(code)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_batch(self, texts: int, requests: int, seconds: float) -> None:
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)
        self.batch_seconds.observe(seconds)
        self.texts.inc(texts)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
