"""``/metrics``: Prometheus text format from a registry private to one app.

Machine state, job progress, temperatures and the access state are read from
the services at scrape time; bus events are counted by a task the app's
lifespan owns; HTTP requests are counted by :class:`HttpMetrics`, a plain ASGI
middleware (it never buffers a response, so live streams pass straight through).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.bus import Event
from gateway.machine.service import MachineState

if TYPE_CHECKING:
    from gateway.daemon import Gateway

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _GatewayCollector(Collector):
    """Reads the services' public status at scrape time."""

    def __init__(self, gw: Gateway, metrics: WebMetrics) -> None:
        self.gw = gw
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        status = self.gw.machine.status()
        state = GaugeMetricFamily(
            "gateway_machine_state", "1 for the machine's current state", labels=["state"]
        )
        for s in MachineState:
            state.add_metric([s.value], 1.0 if status["state"] == s.value else 0.0)
        yield state
        info = GaugeMetricFamily(
            "gateway_machine_info",
            "The machine and its controller",
            labels=["machine_id", "kind", "firmware", "firmware_version"],
        )
        info.add_metric(
            [status["machine_id"], status["kind"], status["firmware"], status["firmware_version"]],
            1.0,
        )
        yield info
        job = status["job"]
        active = job is not None and job["state"] in ("running", "paused")
        yield GaugeMetricFamily(
            "gateway_job_active", "1 while a job is running or paused", value=float(active)
        )
        if job is not None:
            for name, key, doc in (
                ("gateway_job_progress_ratio", "fraction", "Share of the job's lines done"),
                ("gateway_job_elapsed_seconds", "elapsed", "Running time of the job"),
                ("gateway_job_lines_done", "lines_done", "Lines acknowledged"),
                ("gateway_job_lines_total", "lines_total", "Lines in the job"),
                ("gateway_job_eta_seconds", "eta_seconds", "Estimated seconds left"),
            ):
                if job.get(key) is not None:
                    yield GaugeMetricFamily(name, doc, value=float(job[key]))
        temps = GaugeMetricFamily(
            "gateway_temperature_celsius",
            "Controller temperatures (Marlin)",
            labels=["sensor", "kind"],
        )
        for sensor, (actual, target) in status["temperatures"].items():
            temps.add_metric([sensor, "actual"], float(actual))
            if target is not None:
                temps.add_metric([sensor, "target"], float(target))
        yield temps
        access = self.gw.access
        if access is not None and access.config.enabled:
            a = access.status()
            yield GaugeMetricFamily(
                "gateway_access_relay_on",
                "1 while the machine is powered",
                value=float(bool(a["relay_on"])),
            )
            yield GaugeMetricFamily(
                "gateway_access_session_open",
                "1 while a member is badged in",
                value=float(a["session"] is not None),
            )
            yield GaugeMetricFamily(
                "gateway_access_lockout",
                "1 while locked out",
                value=float(a["lockout"] is not None),
            )
            yield GaugeMetricFamily(
                "gateway_access_list_members",
                "Members in the access list",
                value=float(a["access_list"]["members"]),
            )
        yield CounterMetricFamily(
            "gateway_bus_events_published",
            "Events published on the bus",
            value=float(self.gw.bus.published),
        )
        yield GaugeMetricFamily(
            "gateway_bus_subscribers",
            "Subscriptions to the bus",
            value=float(self.gw.bus.subscriber_count),
        )
        yield GaugeMetricFamily(
            "gateway_live_streams",
            "Open /api/events streams",
            value=float(self.metrics.live_streams),
        )


class WebMetrics:
    """The app's private registry and the series the web layer itself keeps."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.registry = CollectorRegistry(auto_describe=False)
        self.live_streams = 0
        self.requests = Counter(
            "gateway_http_requests",
            "HTTP requests answered",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gateway_http_request_duration_seconds",
            "Time to the end of the response",
            ["route"],
            registry=self.registry,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
        )
        self.auth_failures = Counter(
            "gateway_http_auth_failures", "Requests with a refused token", registry=self.registry
        )
        self.bus_events = Counter(
            "gateway_bus_events",
            "Bus events seen by the web layer, by type",
            ["event"],
            registry=self.registry,
        )
        self.registry.register(_GatewayCollector(gw, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def count_events(self) -> None:
        with self.gw.bus.subscribe(Event, maxsize=10_000) as events:
            async for event in events:
                self.bus_events.labels(type(event).__name__).inc()


class HttpMetrics:
    """ASGI middleware counting requests by method, route template and status."""

    def __init__(self, app: ASGIApp, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(path).observe(time.perf_counter() - start)
