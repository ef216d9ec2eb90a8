"""The supervisor: owns every service's task, restarts failed ones, shuts down cleanly.

A service is a long-running coroutine (:meth:`Service.run`) that opens its
resources, sets :attr:`Service.ready`, and runs until cancelled, releasing its
resources in ``finally`` (the relay goes off there).  If ``run`` raises, the
supervisor reports it on the bus and restarts it after a backoff delay.  An
optional service (camera, MQTT) that keeps failing is only a warning; the
daemon and the relay never depend on it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from gateway.backoff import Backoff
from gateway.bus import Event, EventBus
from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceFailed(Event):
    """A service raised; it will be restarted after ``retry_in`` seconds."""

    service: str
    error: str
    retry_in: float
    optional: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceStarted(Event):
    service: str


class Service(ABC):
    """Base of every supervised service.

    The constructor only validates config and registers handlers; all I/O
    happens in :meth:`run`.
    """

    name: str = "service"
    #: An optional service's failures are warnings; the daemon runs on without it.
    optional: bool = False

    def __init__(self) -> None:
        self.ready = asyncio.Event()

    @abstractmethod
    async def run(self) -> None:
        """Open resources, call ``self.ready.set()``, serve until cancelled."""


class Supervisor:
    """Starts services in order, restarts them with backoff, stops them in reverse."""

    def __init__(self, bus: EventBus, *, shutdown_timeout: float = 5.0) -> None:
        self.bus = bus
        self.services: list[Service] = []
        self.shutdown_timeout = shutdown_timeout
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stop = asyncio.Event()
        self.failures: dict[str, int] = {}

    def add(self, service: Service) -> Service:
        if any(s.name == service.name for s in self.services):
            raise ValueError(f"two services are named {service.name!r}")
        self.services.append(service)
        return service

    def request_stop(self) -> None:
        self._stop.set()

    async def _keep_running(self, service: Service, settled: asyncio.Event) -> None:
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            try:
                await service.run()
                log.info("service %s ended", service.name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = backoff.next_delay()
                self.failures[service.name] = self.failures.get(service.name, 0) + 1
                level = logging.WARNING if service.optional else logging.ERROR
                log.log(
                    level,
                    "service %s failed: %s; restarting in %.1f s",
                    service.name,
                    err,
                    delay,
                    exc_info=err,
                )
                self.bus.publish(
                    ServiceFailed(
                        service=service.name,
                        error=str(err),
                        retry_in=delay,
                        optional=service.optional,
                    )
                )
                service.ready.clear()
                settled.set()
                await asyncio.sleep(delay)

    async def start(self) -> None:
        """Start every service; returns once each is ready (or has failed once)."""
        for service in self.services:
            settled = asyncio.Event()
            task = asyncio.create_task(
                self._keep_running(service, settled), name=f"service:{service.name}"
            )
            self._tasks[service.name] = task
            waiters = [
                asyncio.create_task(service.ready.wait()),
                asyncio.create_task(settled.wait()),
            ]
            await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
            await cancel_and_wait(waiters)
            if service.ready.is_set():
                self.bus.publish(ServiceStarted(service=service.name))

    async def stop(self) -> None:
        """Cancel services in reverse start order, each given the shutdown timeout."""
        for service in reversed(self.services):
            task = self._tasks.pop(service.name, None)
            if task is None:
                continue
            if not await cancel_and_wait([task], timeout=self.shutdown_timeout):
                log.error(
                    "service %s did not stop within %.1f s", service.name, self.shutdown_timeout
                )

    async def run_until_signalled(self, on_started: Callable[[], None] | None = None) -> None:
        """Start everything, wait for SIGTERM/SIGINT (or :meth:`request_stop`), stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.start()
            if on_started is not None:
                on_started()
            await self._stop.wait()
            log.info("stopping")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    async def __aenter__(self) -> Supervisor:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
