"""The machine service against simulated controllers on real pseudo-terminals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.bus import Event, EventBus
from gateway.commands import CommandError, CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig, SimulationConfig
from gateway.machine import events as ev
from gateway.machine.service import MachineService
from gateway.machine.sim.service import SimulatorService
from gateway.supervisor import Supervisor


@dataclass
class Rig:
    bus: EventBus
    commands: CommandRouter
    machine: MachineService
    sim: SimulatorService
    events: list[Event]


def write_job(path: Path, lines: int) -> Path:
    with path.open("w") as fh:
        fh.write("G21\nG90\nM83\n")
        for i in range(lines - 3):
            fh.write(
                f"G1 X{i % 100}.{i % 10} Y{(i * 3) % 100} Z{0.2 * (i // 50):.1f} E0.02 F3000\n"
            )
    return path


async def wait_for(cond: object, timeout: float = 10.0) -> None:
    assert callable(cond)
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


@pytest.fixture(params=["marlin", "grbl"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    firmware = request.param
    bus = EventBus()
    commands = CommandRouter()
    sup = Supervisor(bus)
    # time_scale makes moves take (scaled) real time, so a job is still running when we act.
    sim = SimulatorService(firmware, SimulationConfig(enabled=True, baud=250000, time_scale=0.02))
    sup.add(sim)
    machine = MachineService(
        machine=MachineConfig(id="m1", firmware=firmware),
        serial=SerialConfig(max_line_length=80, response_timeout=2.0, status_interval=0.1),
        jobs=JobsConfig(),
        db_path=tmp_path / "gw.db",
        files_dir=tmp_path / "files",
        bus=bus,
        commands=commands,
        port=sim.port_path,
        dtr_reset=sim.power_cycle,
    )
    sup.add(machine)
    collected: list[Event] = []
    sub = bus.subscribe(Event, maxsize=100_000)

    async def collect() -> None:
        async for e in sub:
            collected.append(e)

    task = asyncio.create_task(collect())
    await sup.start()
    await wait_for(lambda: machine.state.value == "idle")
    yield Rig(bus, commands, machine, sim, collected)
    await sup.stop()
    task.cancel()
    sub.close()


def of(events: list[Event], kind: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, kind)]


async def test_job_runs_to_completion_and_is_recorded(rig: Rig, tmp_path: Path) -> None:
    rig.machine.files.add_path(write_job(tmp_path / "part.gcode", 300))
    result = await rig.commands.call("start_job", {"file": "part.gcode"})
    assert result["state"] == "running"
    await wait_for(lambda: rig.machine.job is not None and rig.machine.job.finished, 30)
    job = rig.machine.job
    assert job is not None and job.state.value == "completed"
    assert job.lines_done == job.lines_total == 300
    await wait_for(lambda: bool(of(rig.events, ev.JobFinished)))
    finished = of(rig.events, ev.JobFinished)
    assert finished[-1].outcome == "completed"  # type: ignore[attr-defined]
    await wait_for(lambda: bool(of(rig.events, ev.MachineStatus)))
    history = await rig.machine.job_history()
    assert history[0]["state"] == "completed" and history[0]["lines_done"] == 300
    assert rig.machine.status()["state"] == "idle"


async def test_pause_resume_cancel(rig: Rig, tmp_path: Path) -> None:
    rig.machine.files.add_path(write_job(tmp_path / "long.gcode", 3000))
    await rig.commands.call("start_job", {"file": "long.gcode"})
    await wait_for(lambda: rig.machine.job is not None and rig.machine.job.lines_done > 20)
    await rig.commands.call("pause")
    assert rig.machine.state.value == "paused"
    await asyncio.sleep(0.5)
    job = rig.machine.job
    assert job is not None
    held = job.lines_done
    await asyncio.sleep(0.5)
    assert job.lines_done == held, "no lines may be acknowledged while paused"
    await rig.commands.call("resume")
    await wait_for(lambda: job.lines_done > held + 10)
    await rig.commands.call("cancel")
    assert job.state.value == "cancelled"
    with pytest.raises(CommandError) as err:
        await rig.commands.call("pause")
    assert err.value.code == "no_job"
    await wait_for(lambda: rig.machine.state.value == "idle")


async def test_emergency_stop_goes_first_and_blocks_new_jobs(rig: Rig, tmp_path: Path) -> None:
    rig.machine.files.add_path(write_job(tmp_path / "long.gcode", 3000))
    await rig.commands.call("start_job", {"file": "long.gcode"})
    await wait_for(lambda: rig.machine.job is not None and rig.machine.job.lines_done > 10)
    await rig.commands.call("estop", origin="kiosk")
    job = rig.machine.job
    assert job is not None and job.state.value == "estop"
    assert rig.machine.state.value == "estop"
    await wait_for(lambda: bool(of(rig.events, ev.EmergencyStop)))
    fw = rig.sim.controller.firmware if rig.sim.controller else None
    await asyncio.sleep(0.2)
    assert fw is not None
    if rig.machine.machine.firmware == "marlin":
        assert "M112" in fw.executed
    else:
        assert 0x18 in fw.realtime
    await asyncio.sleep(0.3)  # the firmware's own halt report must not hide the e-stop
    assert rig.machine.state.value == "estop"
    with pytest.raises(CommandError) as err:
        await rig.commands.call("start_job", {"file": "long.gcode"})
    assert err.value.code == "fault"
    await rig.commands.call("reset")
    await wait_for(lambda: rig.machine.state.value == "idle", 15)


async def test_unplugged_port_fails_the_job_and_never_resumes(rig: Rig, tmp_path: Path) -> None:
    rig.machine.files.add_path(write_job(tmp_path / "long.gcode", 3000))
    await rig.commands.call("start_job", {"file": "long.gcode"})
    await wait_for(lambda: rig.machine.job is not None and rig.machine.job.lines_done > 10)
    assert rig.sim.controller is not None
    await rig.sim.controller.close()  # the USB cable is pulled
    await wait_for(lambda: rig.machine.job is not None and rig.machine.job.finished)
    job = rig.machine.job
    assert job is not None and job.state.value == "failed"
    assert "serial" in job.reason
    await wait_for(lambda: rig.machine.state.value in ("disconnected", "connecting"))
    await wait_for(lambda: any(isinstance(e, ev.MachineError) for e in rig.events))


async def test_garbage_on_the_line_does_not_stop_a_job(rig: Rig, tmp_path: Path) -> None:
    rig.machine.files.add_path(write_job(tmp_path / "part.gcode", 400))
    await rig.commands.call("start_job", {"file": "part.gcode"})
    assert rig.sim.controller is not None
    for noise in (b"\xff\xfe\x00garbage\r\n", b"#@!%\n", b"\x1b[2J\n"):
        rig.sim.controller.inject_noise(noise)
        await asyncio.sleep(0.05)
    await wait_for(lambda: rig.machine.job is not None and rig.machine.job.finished, 30)
    assert rig.machine.job is not None and rig.machine.job.state.value == "completed"
    assert rig.machine.garbage_lines >= 1


async def test_commands_check_their_arguments(rig: Rig) -> None:
    for name, args, code in (
        ("start_job", {}, "bad_args"),
        ("start_job", {"file": "../x.gcode"}, "bad_name"),
        ("start_job", {"file": "missing.gcode"}, "not_found"),
        ("send_gcode", {"line": "\x00"}, "bad_gcode"),
        ("resume", {}, "no_job"),
    ):
        with pytest.raises(CommandError) as err:
            await rig.commands.call(name, args)
        assert err.value.code == code, (name, err.value)
