"""Prometheus metrics for any of our ASGI servers: requests and latency per route and status,
and a ``GET /metrics`` route, added with one call::

    metrics = install_metrics(app, namespace="data_platform")
    tasks = Gauge("tasks", "Tasks by state", ["state"], namespace="data_platform",
                  registry=metrics.registry)      # a server's own metrics, same registry

Each app gets its own registry (not prometheus-client's global one), so several apps in one
process (tests, Ray Serve replicas) never collide. The route label is the matched route's
template (``/v2/models/{name}/infer``), never the raw path, so label cardinality stays bounded.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

UNMATCHED = "<unmatched>"  # the route label of a request no route took (404, refused early)
# Seconds: from a cached health check (~100 us) to a large batch (seconds).
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class Metrics:
    """A registry with the HTTP request metrics every server shares.

    Args:
        namespace: the metric names' prefix, e.g. ``model_server``.
    """

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["method", "route", "status"]
        self.requests = Counter(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            labels,
            namespace=namespace,
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time from request to the end of the response, by method, route and status",
            labels,
            namespace=namespace,
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )

        # The labelled children, by (method, route, status): ``labels()`` takes a lock and
        # builds its key on every call, a good part of what timing a request costs.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = (method, route, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus' text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (microseconds a request) that times every HTTP request.

    Add it outermost, so that requests other middleware refuse (401, 413) are counted too.
    """

    def __init__(self, app: Any, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless the app starts a response

        async def timed_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # The router stores the matched route in the scope it was given: this one.
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe(scope["method"], template, status, time.perf_counter() - started)


def install_metrics(app: FastAPI, namespace: str, path: str = "/metrics") -> Metrics:
    """Count and time every request of ``app`` and serve the registry at ``path``.

    Args:
        app: the FastAPI app; call before it starts serving.
        namespace: the metric names' prefix, e.g. ``ai_platform``.
        path: where Prometheus scrapes.

    Returns:
        The metrics, whose ``registry`` takes the server's own metrics too.
    """
    metrics = Metrics(namespace)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    async def scrape() -> Response:
        """Prometheus metrics (text exposition format)."""
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route(path, scrape, methods=["GET"], include_in_schema=False)
    return metrics
