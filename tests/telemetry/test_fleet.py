"""The fleet table: pure view, and ``run_fleet(once=True)`` against a broker."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from gateway.bus import EventBus
from gateway.machine.events import JobStarted, MachineStatus
from gateway.telemetry.fleet import FleetError, FleetView, parse_broker_url, run_fleet


def test_view_collects_status_state_and_events_per_machine() -> None:
    view = FleetView("gateway")
    state = {"state": "printing", "job": {"progress": 42.5}, "session": {"member": "Ada"}}
    assert view.update("gateway/m1/status", b"online", 100.0)
    assert view.update("gateway/m1/state", json.dumps(state).encode(), 101.0)
    assert view.update("gateway/m1/event/job_started", b'{"type": "job_started"}', 102.0)
    assert view.update("gateway/laser/status", b"offline", 50.0)
    assert not view.update("gateway/m1/state", b"{not json", 103.0)
    assert not view.update("other/m1/status", b"online", 103.0)
    text = view.render(110.0)
    lines = text.splitlines()
    assert lines[0].split() == [
        "MACHINE",
        "STATUS",
        "STATE",
        "JOB",
        "MEMBER",
        "LAST",
        "SEEN",
        "LAST",
        "EVENT",
    ]
    assert lines[1].split()[:2] == ["laser", "offline"]
    assert lines[2].split() == [
        "m1",
        "online",
        "printing",
        "42.5%",
        "Ada",
        "8s",
        "ago",
        "job_started",
    ]


def test_empty_view_says_so() -> None:
    assert "no gateways under gateway/" in FleetView().render(0.0)


def test_broker_urls() -> None:
    a = parse_broker_url("mqtt://admin:p%40ss@broker.lan:1884")
    assert (a.host, a.port, a.username, a.password, a.tls) == (
        "broker.lan",
        1884,
        "admin",
        "p@ss",
        False,
    )
    assert parse_broker_url("mqtts://broker.lan").port == 8883
    assert parse_broker_url("localhost").port == 1883
    with pytest.raises(FleetError):
        parse_broker_url("http://broker.lan")


async def test_once_lists_a_running_gateway(harness: Any) -> None:
    bus = EventBus()
    service = harness.service(bus=bus)
    async with harness.running(service):
        bus.publish(
            MachineStatus(
                machine_id="m1",
                state="printing",
                firmware="marlin",
                job={"id": 1, "file": "a.gcode", "fraction": 0.125},
            )
        )
        bus.publish(JobStarted(job_id=1, file="a.gcode", lines=10, estimated_seconds=None))
        await asyncio.sleep(0.3)
        out = io.StringIO()
        await run_fleet(harness.broker.url, once=True, out=out, settle=0.5)
    row = next(line for line in out.getvalue().splitlines() if line.startswith("m1 "))
    assert row.split()[:4] == ["m1", "online", "printing", "12.5%"]
    assert "\x1b[" not in out.getvalue()


async def test_once_with_no_broker_is_a_clear_error(harness: Any) -> None:
    harness.broker.stop()
    with pytest.raises(FleetError, match="cannot read the fleet"):
        await run_fleet(harness.broker.url, once=True, out=io.StringIO(), settle=0.2)


async def test_live_view_redraws_until_cancelled(harness: Any) -> None:
    service = harness.service()
    out = io.StringIO()
    async with harness.running(service):
        task = asyncio.create_task(run_fleet(harness.broker.url, out=out))
        await asyncio.sleep(1.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    frames = out.getvalue().split("\x1b[H\x1b[2J")
    assert len(frames) >= 2
    assert any(line.startswith("m1 ") and "online" in line for line in frames[-1].splitlines())
