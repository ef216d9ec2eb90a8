import asyncio

import pytest

from gateway.bus import EventBus
from gateway.supervisor import Service, ServiceFailed, Supervisor


class Flaky(Service):
    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.runs = 0
        self.closed = 0

    async def run(self) -> None:
        self.runs += 1
        try:
            if self.runs <= self.failures:
                raise RuntimeError(f"boom {self.runs}")
            self.ready.set()
            await asyncio.Event().wait()
        finally:
            self.closed += 1


class Stubborn(Service):
    """Ignores the first cancellation for a while, like a wedged driver."""

    name = "stubborn"

    async def run(self) -> None:
        self.ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)


async def test_failed_service_is_restarted_with_backoff_and_reported() -> None:
    bus = EventBus()
    sup = Supervisor(bus)
    svc = Flaky(failures=2)
    sup.add(svc)
    with bus.subscribe(ServiceFailed) as failures:
        await sup.start()
        async with asyncio.timeout(5):
            await svc.ready.wait()
        assert svc.runs == 3
        reported = [failures.get_nowait(), failures.get_nowait()]
        assert all(r is not None and r.service == "flaky" for r in reported)
        await sup.stop()
    assert svc.closed == 3


async def test_stop_runs_cleanup_in_reverse_order() -> None:
    order: list[str] = []

    class Named(Service):
        def __init__(self, name: str) -> None:
            super().__init__()
            self.name = name

        async def run(self) -> None:
            self.ready.set()
            try:
                await asyncio.Event().wait()
            finally:
                order.append(self.name)

    sup = Supervisor(EventBus())
    for n in ("a", "b", "c"):
        sup.add(Named(n))
    async with sup:
        pass
    assert order == ["c", "b", "a"]


async def test_duplicate_names_are_refused() -> None:
    sup = Supervisor(EventBus())
    sup.add(Flaky(0))
    with pytest.raises(ValueError, match="flaky"):
        sup.add(Flaky(0))


async def test_shutdown_is_bounded_by_the_timeout() -> None:
    sup = Supervisor(EventBus(), shutdown_timeout=1.0)
    sup.add(Stubborn())
    await sup.start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await sup.stop()
    assert loop.time() - t0 < 1.0


async def test_start_does_not_wait_forever_for_a_service_that_keeps_failing() -> None:
    class Broken(Service):
        name = "broken"
        optional = True

        async def run(self) -> None:
            raise OSError("no camera")

    sup = Supervisor(EventBus())
    sup.add(Broken())
    later = Flaky(0)
    sup.add(later)
    async with asyncio.timeout(3):
        await sup.start()
    assert later.ready.is_set()
    await sup.stop()
