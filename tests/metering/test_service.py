"""The metering service with the PZEM twin on a real pty, driven by bus events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from gateway.access.events import SessionEnded, SessionStarted
from gateway.bus import EventBus
from gateway.commands import CommandRouter
from gateway.machine.events import JobFinished, JobStarted, MachineStatus
from gateway.metering.config import MeteringConfig
from gateway.metering.events import JobUsageClosed, SessionUsageClosed
from gateway.metering.service import MeteringService

PRINTING = {"T0": (210.0, 210.0), "B": (60.0, 60.0)}


def config(**kw: Any) -> MeteringConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "meter": "simulated",
        "sample_interval": 0.05,
        "read_timeout": 0.3,
        "prices": {"per_busy_minute": "0.05", "per_kwh": "0.40", "per_gram": "0.03"},
    }
    values.update(kw)
    return MeteringConfig(**values)


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while not check():
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(cfg: MeteringConfig) -> AsyncIterator[tuple[MeteringService, EventBus]]:
    bus = EventBus()
    service = MeteringService(cfg, bus=bus, commands=CommandRouter(), simulation=True)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(10):
            await service.ready.wait()
        await until(lambda: service.last_reading is not None)
        yield service, bus
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _power(service: MeteringService) -> float:
    return service.last_reading.power_w if service.last_reading is not None else 0.0


def status(state: str, temps: dict[str, tuple[float, float | None]]) -> MachineStatus:
    return MachineStatus(machine_id="m1", state=state, firmware="marlin", temperatures=temps)


def start_session(bus: EventBus) -> None:
    bus.publish(
        SessionStarted(session_id="s1", member_id="m-ada", member_name="Ada", role="user")
    )


async def test_a_jobs_kwh_matches_the_twins_integral_within_1_percent() -> None:
    prices = {"per_busy_minute": "6", "per_kwh": "0.40"}
    async with running(config(prices=prices)) as (service, bus):
        twin = service.twin
        assert twin is not None
        with bus.subscribe(JobUsageClosed, SessionUsageClosed) as closed:
            start_session(bus)
            bus.publish(status("printing", PRINTING))
            await until(lambda: twin.counter.power_w > 100)
            at_start = twin.energy_wh
            bus.publish(JobStarted(job_id=1, file="cube.gcode", lines=100, estimated_seconds=3))
            await asyncio.sleep(3.0)
            bus.publish(
                JobFinished(
                    job_id=1, file="cube.gcode", outcome="completed", lines_done=100,
                    seconds=3.0, resends=0, errors=0,
                )
            )
            at_end = twin.energy_wh
            job = await asyncio.wait_for(closed.get(), 5)
            bus.publish(status("idle", {}))
            bus.publish(SessionEnded(session_id="s1", member_id="m-ada", reason="badge_out",
                                     duration=4.0, jobs=1))
            session = await asyncio.wait_for(closed.get(), 5)
    assert isinstance(job, JobUsageClosed) and isinstance(session, SessionUsageClosed)
    truth = at_end - at_start
    assert truth > 0.1
    assert job.energy_wh == pytest.approx(truth, rel=0.01)
    assert not job.estimated
    assert session.energy_wh >= job.energy_wh
    assert session.busy_seconds == pytest.approx(job.busy_seconds, abs=0.2)
    expected = session.busy_seconds / 60 * 6 + session.energy_wh / 1000 * 0.4
    assert float(session.cost) == pytest.approx(expected, abs=0.006)
    assert session.currency == "EUR"


async def test_unplugging_the_meter_mid_session_gives_an_estimated_interval() -> None:
    async with running(config(max_gap=0.4)) as (service, bus):
        twin = service.twin
        assert twin is not None
        with bus.subscribe(SessionUsageClosed) as closed:
            start_session(bus)
            await asyncio.sleep(0.3)
            twin.unplug()
            await until(lambda: service.integrator.stats.failures.get("timeout", 0) >= 2)
            await asyncio.sleep(0.5)
            twin.plug_in()
            good = service.integrator.stats.samples
            await until(lambda: service.integrator.stats.samples > good + 2)
            bus.publish(SessionEnded(session_id="s1", member_id="m-ada", reason="badge_out",
                                     duration=2.0, jobs=0))
            session = await asyncio.wait_for(closed.get(), 5)
        assert session.estimated
        assert service.integrator.stats.estimated_seconds > 0.4
        assert service.usage()["failures"]["timeout"] >= 2


async def test_a_counter_reset_is_counted_and_energy_keeps_adding_up() -> None:
    async with running(config()) as (service, bus):
        twin = service.twin
        assert twin is not None
        twin.counter_offset_wh = 5000.0
        with bus.subscribe(SessionUsageClosed) as closed:
            twin.set_extra_power(1000.0)
            await until(lambda: service.integrator.total_wh > 0 and _power(service) > 1000)
            at_start = twin.energy_wh
            start_session(bus)
            await asyncio.sleep(1.0)
            before_reset = twin.energy_wh
            twin.reset_counter()
            await asyncio.sleep(1.0)
            at_end = before_reset + twin.energy_wh
            bus.publish(SessionEnded(session_id="s1", member_id="m-ada", reason="badge_out",
                                     duration=2.0, jobs=0))
            session = await asyncio.wait_for(closed.get(), 5)
        assert service.integrator.stats.resets == 1
        assert session.estimated  # the interval across the reset could not be cross-checked
        assert session.energy_wh == pytest.approx(at_end - at_start, rel=0.05)


async def test_a_shelly_over_http_meters_a_session() -> None:
    from gateway.metering.meters.networked_twins import ShellyHttpTwin

    async with ShellyHttpTwin() as twin:
        twin.set_extra_power(592.0)
        cfg = config(meter="shelly_http", url=twin.url, sample_interval=0.1)
        bus = EventBus()
        service = MeteringService(cfg, bus=bus, commands=CommandRouter())
        task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(service.ready.wait(), 10)
            await until(lambda: service.last_reading is not None)
            with bus.subscribe(SessionUsageClosed) as closed:
                at_start = twin.energy_wh
                start_session(bus)
                await asyncio.sleep(1.5)
                bus.publish(SessionEnded(session_id="s1", member_id="m-ada", reason="badge_out",
                                         duration=1.5, jobs=0))
                at_end = twin.energy_wh
                session = await asyncio.wait_for(closed.get(), 5)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert session.energy_wh == pytest.approx(at_end - at_start, rel=0.05)
    assert service.usage()["power_w"] == pytest.approx(600.0)
    assert not service.usage()["counter_mismatch"]


async def test_absurd_readings_are_rejected_counted_and_reported_once() -> None:
    from gateway.metering.events import MeterProblem

    async with running(config(max_power_w=1000.0)) as (service, bus):
        twin = service.twin
        assert twin is not None
        with bus.subscribe(MeterProblem) as problems, bus.subscribe(SessionUsageClosed) as closed:
            start_session(bus)
            twin.set_extra_power(5000.0)  # a meter gone mad, or on the wrong circuit
            await until(lambda: service.integrator.stats.rejected >= 3)
            twin.set_extra_power(0.0)
            good = service.integrator.stats.samples
            await until(lambda: service.integrator.stats.samples > good + 2)
            bus.publish(SessionEnded(session_id="s1", member_id="m-ada", reason="badge_out",
                                     duration=1.0, jobs=0))
            session = await asyncio.wait_for(closed.get(), 5)
            reports = []
            while (p := problems.get_nowait()) is not None:
                reports.append(p)
    assert session.estimated
    assert [p.reason for p in reports] == ["rejected"]
    assert service.usage()["meter_ok"]


async def test_the_pzem_counter_wrapping_at_32_bits_is_taken_across() -> None:
    async with running(config()) as (service, _bus):
        twin = service.twin
        assert twin is not None
        twin.set_extra_power(3000.0)
        twin.counter_offset_wh = 2**32 - 1.5 - twin.energy_wh  # 1.5 Wh before the wrap
        await until(lambda: service.integrator.stats.counter_jumps >= 1)
        await until(lambda: service.integrator.stats.wraps == 1, within=15)
        assert service.integrator.stats.resets == 0


async def test_stopping_the_daemon_closes_the_open_session_for_the_ledger() -> None:
    bus = EventBus()
    service = MeteringService(config(), bus=bus, commands=CommandRouter(), simulation=True)
    task = asyncio.create_task(service.run())
    with bus.subscribe(SessionUsageClosed, JobUsageClosed) as closed:
        await asyncio.wait_for(service.ready.wait(), 10)
        await until(lambda: service.last_reading is not None)
        start_session(bus)
        bus.publish(JobStarted(job_id=3, file="a.gcode", lines=10, estimated_seconds=None))
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        job = closed.get_nowait()
        session = closed.get_nowait()
    assert isinstance(job, JobUsageClosed) and job.outcome == "interrupted"
    assert isinstance(session, SessionUsageClosed) and session.reason == "shutdown"
    assert session.jobs == ((3, "interrupted"),)
