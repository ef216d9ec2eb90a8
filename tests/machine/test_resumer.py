"""Resuming an interrupted job through the machine service, against simulated
controllers on real pseudo-terminals, with the checkpoint in a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.bus import EventBus
from gateway.commands import CommandError, CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig, SimulationConfig
from gateway.machine.checkpoint import Checkpoint, load
from gateway.machine.gcode import clean_line
from gateway.machine.service import MachineService
from gateway.machine.sim.service import SimulatorService
from gateway.supervisor import Supervisor


@dataclass
class Rig:
    commands: CommandRouter
    machine: MachineService
    sim: SimulatorService


@asynccontextmanager
async def running(tmp_path: Path, firmware: str, time_scale: float) -> AsyncIterator[Rig]:
    bus = EventBus()
    commands = CommandRouter()
    sup = Supervisor(bus)
    sim = SimulatorService(
        firmware, SimulationConfig(enabled=True, baud=250000, time_scale=time_scale)
    )
    sup.add(sim)
    machine = MachineService(
        machine=MachineConfig(
            id="m1", firmware=firmware, kind="printer" if firmware == "marlin" else "cnc"
        ),
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
    await sup.start()
    try:
        await wait_for(lambda: machine.state.value == "idle")
        yield Rig(commands, machine, sim)
    finally:
        await sup.stop()


async def wait_for(cond: object, timeout: float = 20.0) -> None:
    assert callable(cond)
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


def layered_job(path: Path, firmware: str, layers: int = 12, per_layer: int = 40) -> Path:
    lines = ["G21", "G90"]
    if firmware == "marlin":
        lines += ["M140 S60", "M104 S210", "M83", "M106 S200"]
    else:
        lines += ["G54", "M3 S9000", "G0 Z5"]
    for n in range(1, layers + 1):
        z = 0.2 * n if firmware == "marlin" else -0.5 * n
        lines.append(f"G1 Z{z:.2f} F600")
        for i in range(per_layer):
            x, y = 10 + (i * 7) % 50, 10 + (i * 3) % 40
            extrude = " E0.05" if firmware == "marlin" else ""
            lines.append(f"G1 X{x} Y{y}{extrude} F{1800 + n}")
    lines.append("M107" if firmware == "marlin" else "M5")
    path.write_text("\n".join(lines) + "\n")
    return path


def checkpoint(tmp_path: Path) -> Checkpoint | None:
    conn = sqlite3.connect(tmp_path / "gw.db")
    try:
        got = load(conn, "m1")
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return got if isinstance(got, Checkpoint) else None


def moves(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith(("G0", "G1", "G2", "G3"))]


@pytest.mark.parametrize("firmware", ["marlin", "grbl"])
async def test_interrupted_job_resumes_from_its_layer(tmp_path: Path, firmware: str) -> None:
    src = layered_job(tmp_path / "part.gcode", firmware)
    cleaned = (clean_line(x, firmware=firmware) for x in src.read_text().splitlines())  # type: ignore[arg-type]
    original = [c for c in cleaned if c]
    async with running(tmp_path, firmware, time_scale=0.05) as rig:
        rig.machine.files.add_path(src)
        await rig.commands.call("start_job", {"file": "part.gcode"})
        await wait_for(lambda: (cp := checkpoint(tmp_path)) is not None and cp.layer >= 4, 60)
        job_id = rig.machine.job.id if rig.machine.job else 0
    # The gateway stopped mid-job; a new one on the same files and database.
    async with running(tmp_path, firmware, time_scale=0.0) as rig:
        offer = (await rig.commands.call("resume_offer"))["interrupted"]
        assert offer["job_id"] == job_id and offer["resumable"], offer
        layers = offer["layers"]
        assert layers[0]["layer"] >= 4 and [la["layer"] for la in layers] == sorted(
            (la["layer"] for la in layers), reverse=True
        )
        chosen = layers[1]  # an earlier layer than the one offered first
        with pytest.raises(CommandError) as err:
            beyond = {"job_id": job_id, "layer": layers[0]["layer"] + 1}
            await rig.commands.call("resume_job", beyond)
        assert err.value.code == "bad_layer"
        with pytest.raises(CommandError) as err:
            await rig.commands.call("resume_preview", {"job_id": job_id + 1, "layer": 1})
        assert err.value.code == "not_found"
        args = {"job_id": job_id, "layer": chosen["layer"]}
        preview = await rig.commands.call("resume_preview", args)
        assert preview["line"] == chosen["line"] and preview["preamble"]
        fw = rig.sim.controller.firmware if rig.sim.controller else None
        assert fw is not None
        before = len(fw.executed)
        started = await rig.commands.call("resume_job", args)
        assert started["resumed_from"] == job_id
        await wait_for(lambda: rig.machine.job is not None and rig.machine.job.finished, 60)
        assert rig.machine.job is not None and rig.machine.job.state.value == "completed"
        ran = fw.executed[before:]
        pre = preview["preamble"]
        assert ran[: len(pre)] == pre
        assert moves(ran[len(pre) :]) == moves(original[chosen["line"] - 1 :])
        await wait_for(lambda: not list((tmp_path / "files" / ".resume").glob("*.gcode")))
        history = await rig.machine.job_history()
        assert history[0]["resumed_from"] == job_id
        assert history[0]["resumed_at_line"] == chosen["line"]
        # Completed: nothing left to offer.
        assert (await rig.commands.call("resume_offer"))["interrupted"] is None


async def test_a_new_job_discards_an_interrupted_one_only_when_asked(tmp_path: Path) -> None:
    """Starting another job means the interrupted print leaves the bed: the start is
    refused with which job and where it stopped, until the member confirms."""
    src = layered_job(tmp_path / "part.gcode", "marlin")
    other = layered_job(tmp_path / "other.gcode", "marlin", layers=2, per_layer=5)
    async with running(tmp_path, "marlin", time_scale=0.05) as rig:
        rig.machine.files.add_path(src)
        rig.machine.files.add_path(other)
        await rig.commands.call("start_job", {"file": "part.gcode"})
        await wait_for(lambda: (cp := checkpoint(tmp_path)) is not None and cp.layer >= 3, 60)
        job_id = rig.machine.job.id if rig.machine.job else 0
    async with running(tmp_path, "marlin", time_scale=0.0) as rig:
        with pytest.raises(CommandError) as err:
            await rig.commands.call("start_job", {"file": "other.gcode"})
        assert err.value.code == "interrupted_pending"
        assert f"Job {job_id} (part.gcode)" in err.value.message
        assert "clear the bed" in err.value.message
        with pytest.raises(CommandError) as err:
            await rig.commands.call("start_job", {"file": "other.gcode", "discard_interrupted": 1})
        assert err.value.code == "bad_args"
        assert (await rig.commands.call("resume_offer"))["interrupted"]["job_id"] == job_id
        args = {"file": "other.gcode", "discard_interrupted": True}
        started = await rig.commands.call("start_job", args)
        assert started["file"] == "other.gcode"
        await wait_for(lambda: rig.machine.job is not None and rig.machine.job.finished, 60)
        assert rig.machine.job is not None and rig.machine.job.state.value == "completed"
        assert (await rig.commands.call("resume_offer"))["interrupted"] is None
        # The discarded job stays in the records as it ended.
        history = await rig.machine.job_history()
        assert [j["id"] for j in history][:2] == [started["id"], job_id]
    # And it is not offered again after a restart.
    async with running(tmp_path, "marlin", time_scale=0.0) as rig:
        assert (await rig.commands.call("resume_offer"))["interrupted"] is None


async def test_a_changed_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    src = layered_job(tmp_path / "part.gcode", "marlin")
    async with running(tmp_path, "marlin", time_scale=0.05) as rig:
        rig.machine.files.add_path(src)
        await rig.commands.call("start_job", {"file": "part.gcode"})
        await wait_for(lambda: (cp := checkpoint(tmp_path)) is not None and cp.layer >= 3, 60)
    layered_job(src, "marlin", layers=13)
    async with running(tmp_path, "marlin", time_scale=0.0) as rig:
        rig.machine.files.add_path(src)
        offer = (await rig.commands.call("resume_offer"))["interrupted"]
        assert not offer["resumable"] and offer["code"] == "file_changed"
        assert "changed" in offer["reason"]
        with pytest.raises(CommandError) as err:
            await rig.commands.call("resume_job", {"job_id": offer["job_id"], "layer": 1})
        assert err.value.code == "file_changed"
        await rig.commands.call("resume_discard", {"job_id": offer["job_id"]})
        assert (await rig.commands.call("resume_offer"))["interrupted"] is None


async def test_a_damaged_record_says_where_without_a_resume(tmp_path: Path) -> None:
    src = layered_job(tmp_path / "part.gcode", "marlin")
    async with running(tmp_path, "marlin", time_scale=0.05) as rig:
        rig.machine.files.add_path(src)
        await rig.commands.call("start_job", {"file": "part.gcode"})
        await wait_for(lambda: (cp := checkpoint(tmp_path)) is not None and cp.layer >= 2, 60)
    conn = sqlite3.connect(tmp_path / "gw.db")
    record = conn.execute("SELECT record FROM resume_checkpoints").fetchone()[0]
    damaged = record.replace('"layer":', '"layer": 1')
    conn.execute("UPDATE resume_checkpoints SET record = ?", (damaged,))
    conn.commit()
    conn.close()
    async with running(tmp_path, "marlin", time_scale=0.0) as rig:
        offer = (await rig.commands.call("resume_offer"))["interrupted"]
        assert not offer["resumable"] and offer["code"] == "damaged"
        assert offer["layers"] == [] and offer["file"] == "part.gcode"
        assert isinstance(offer["line"], int)
        # Nothing can be resumed, so a new job need not discard it first.
        started = await rig.commands.call("start_job", {"file": "part.gcode"})
        assert started["file"] == "part.gcode"
        await rig.commands.call("cancel")
        await wait_for(lambda: rig.machine.job is not None and rig.machine.job.finished, 60)
        assert (await rig.commands.call("resume_offer"))["interrupted"] is None


def test_layer_index_is_kept_per_file_hash(tmp_path: Path) -> None:
    from gateway.machine.interrupted import index_file

    src = layered_job(tmp_path / "part.gcode", "marlin", layers=3)
    cache = tmp_path / "index"
    first = index_file(src, "marlin", cache)
    assert [la.number for la in first.layers] == [1, 2, 3]
    (entry,) = cache.glob("*.json")
    assert entry.name.startswith(first.sha256)
    assert index_file(src, "marlin", cache) == first
    entry.write_text("{damaged")
    assert index_file(src, "marlin", cache) == first  # recomputed
    layered_job(src, "marlin", layers=4)
    assert len(index_file(src, "marlin", cache).layers) == 4
