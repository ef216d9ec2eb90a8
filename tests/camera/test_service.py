"""The camera service end to end with the synthetic camera: timelapses of simulated jobs,
snapshots, alerts from the camera's scenes, retention, and failing cameras."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access.events import AccessState
from gateway.backoff import Backoff
from gateway.bus import EventBus, Subscription
from gateway.camera.errors import CameraUnavailable
from gateway.camera.events import CameraAlert, TimelapseRendered
from gateway.camera.service import CameraService
from gateway.camera.sources import FrameSource, Scene, SyntheticCamera
from gateway.camera.timelapse import TimelapseState, TimelapseStore
from gateway.commands import CommandError, CommandRouter
from gateway.machine.events import JobFinished, JobStarted, LayerChanged, MachineStatus
from gateway.supervisor import ServiceFailed, Supervisor


def job_started(job_id: int) -> JobStarted:
    return JobStarted(job_id=job_id, file="benchy.gcode", lines=1000, estimated_seconds=60)


def job_finished(job_id: int, outcome: str = "completed") -> JobFinished:
    return JobFinished(
        job_id=job_id,
        file="benchy.gcode",
        outcome=outcome,
        lines_done=1000,
        seconds=3,
        resends=0,
        errors=0,
    )


def access(state: str) -> AccessState:
    return AccessState(
        state=state,
        relay_on=state != "locked",
        member_id=None,
        member_name=None,
        job_running=False,
        lockout_reason=None,
        interlocks_tripped=(),
        last_denial=None,
    )


async def next_event(sub: Subscription[Any], timeout: float = 10.0) -> Any:
    async with asyncio.timeout(timeout):
        return await sub.get()


# ---------------------------------------------------------------------- timelapse


async def test_a_simulated_job_gets_a_listed_downloadable_mp4(
    camera_config: Callable[..., Any],
    camera_service: Callable[..., Any],
    live_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    bus = EventBus()
    config = camera_config(timelapse={"mode": "layer", "render_fps": 10})
    async with (
        camera_service(config, bus=bus) as service,
        live_server(service) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as client,
    ):
        await asyncio.sleep(0.3)
        with bus.subscribe(TimelapseRendered) as rendered:
            bus.publish(job_started(42))
            for layer in range(1, 8):
                await asyncio.sleep(0.15)
                bus.publish(LayerChanged(job_id=42, z=0.2 * layer, layer=layer))
            await asyncio.sleep(0.15)
            listing = (await client.get("/api/camera/timelapses")).json()
            assert listing[0]["state"] == "recording" and listing[0]["video_url"] is None
            assert (await client.get("/api/camera/status")).json()["timelapse"][
                "recording_job_id"
            ] == 42
            bus.publish(job_finished(42))
            event = await next_event(rendered, 30)

        assert event.job_id == 42 and event.url == "/api/camera/timelapses/42.mp4"
        assert 8 <= event.frames <= 9  # start, seven layers, end (unless it was the same frame)
        [item] = (await client.get("/api/camera/timelapses")).json()
        assert item["job_id"] == 42 and item["state"] == "ready"
        assert item["frames"] == event.frames and item["outcome"] == "completed"
        assert item["file"] == "benchy.gcode" and item["video_url"] == event.url
        video = await client.get(item["video_url"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        assert video.content[4:8] == b"ftyp"
        assert len(video.content) == event.size_bytes
        path = tmp_path / "download.mp4"
        await asyncio.to_thread(path.write_bytes, video.content)
        probe = await asyncio.to_thread(
            subprocess.run,
            ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
             "format=format_name:stream=nb_read_frames", "-of", "json", str(path)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        info = json.loads(probe.stdout)
        assert "mp4" in info["format"]["format_name"]
        assert int(info["streams"][0]["nb_read_frames"]) == event.frames
    # The frames went once the video was made; the folder holds the video and its record.
    folder = tmp_path / "timelapse" / "42"
    assert sorted(p.name for p in folder.iterdir()) == ["timelapse.json", "timelapse.mp4"]


async def test_interval_mode_records_while_the_job_runs(
    camera_config: Callable[..., Any], camera_service: Callable[..., Any]
) -> None:
    bus = EventBus()
    config = camera_config(timelapse={"mode": "interval", "interval_s": 0.2, "keep_frames": True})
    async with camera_service(config, bus=bus) as service:
        await asyncio.sleep(0.3)
        with bus.subscribe(TimelapseRendered) as rendered:
            bus.publish(job_started(7))
            await asyncio.sleep(1.1)
            bus.publish(job_finished(7, "cancelled"))
            event = await next_event(rendered, 30)
        assert 6 <= event.frames <= 8  # start, about five intervals, end
        [item] = await service.timelapse_list()
        assert item["outcome"] == "cancelled" and item["state"] == "ready"
        assert len(list(service.timelapses.job_dir(7).glob("frame_*.jpg"))) == event.frames


async def test_a_job_without_pictures_leaves_no_timelapse(
    camera_config: Callable[..., Any], camera_service: Callable[..., Any]
) -> None:
    bus = EventBus()
    async with camera_service(camera_config(), bus=bus) as service:
        camera = service.source
        assert isinstance(camera, SyntheticCamera)
        camera.set_scene(Scene.LOST)
        await asyncio.sleep(2.2)  # older than a frame may be to go into a timelapse
        bus.publish(job_started(3))
        bus.publish(LayerChanged(job_id=3, z=0.4, layer=1))
        bus.publish(job_finished(3))
        await asyncio.sleep(0.3)
        assert await service.timelapse_list() == []


async def test_a_recording_cut_short_by_a_restart_is_finished_and_rendered(
    camera_config: Callable[..., Any], camera_service: Callable[..., Any], tmp_path: Path
) -> None:
    store = TimelapseStore(tmp_path / "timelapse")
    store.begin(5, "old.gcode", time.time() - 600)
    camera = SyntheticCamera(320, 240, 10, 80)
    for n in range(3):
        store.add_frame(5, camera.render(Scene.MOVING, n, n * 0.5, time.time()))
    bus = EventBus()
    async with camera_service(camera_config(), bus=bus) as service:
        with bus.subscribe(TimelapseRendered) as rendered:
            bus.publish(MachineStatus(machine_id="m", state="idle", firmware="marlin"))
            event = await next_event(rendered, 30)
        assert event.job_id == 5 and event.frames == 3
        [item] = await service.timelapse_list()
        assert item["outcome"] == "interrupted" and item["state"] == "ready"


async def test_retention_runs_at_start_by_age_and_by_size(
    camera_config: Callable[..., Any], camera_service: Callable[..., Any], tmp_path: Path
) -> None:
    store = TimelapseStore(tmp_path / "timelapse")
    now = time.time()
    for job_id, age_days in ((1, 45), (2, 3), (3, 2), (4, 1)):
        store.begin(job_id, "x.gcode", now - age_days * 86400)
        store.add_frame(job_id, b"\0" * 60_000)
        store.finish(job_id, "completed", now - age_days * 86400 + 10)
        store.mark(job_id, TimelapseState.READY)
    config = camera_config(
        timelapse={"max_age_days": 30, "max_disk_mb": 0.13, "render": False}
    )  # 0.13 MB holds two
    async with camera_service(config) as service:
        deadline = time.monotonic() + 5
        while len(service.timelapses.job_ids()) > 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert service.timelapses.job_ids() == [3, 4]


# ---------------------------------------------------------------------- snapshots


async def test_the_snapshot_command_saves_a_jpeg(
    camera_config: Callable[..., Any],
    camera_service: Callable[..., Any],
    live_server: Callable[..., Any],
    tmp_path: Path,
) -> None:
    commands = CommandRouter()
    async with camera_service(camera_config(max_snapshots=3), commands=commands) as service:
        answer = await commands.call("snapshot", origin="mqtt")
        path = Path(answer["path"])
        assert path.parent == tmp_path / "snapshots"
        saved = await asyncio.to_thread(path.read_bytes)
        assert saved[:2] == b"\xff\xd8" and answer["size_bytes"] == len(saved)
        assert answer["url"] == f"/api/camera/snapshots/{answer['name']}"
        async with live_server(service) as url, httpx.AsyncClient(base_url=url) as client:
            got = await client.get(answer["url"])
            assert got.status_code == 200 and got.content == saved
        for _ in range(5):
            await asyncio.sleep(0.08)
            await commands.call("snapshot")
        assert len(list((tmp_path / "snapshots").glob("*.jpg"))) == 3


async def test_a_snapshot_without_a_camera_is_refused(
    camera_config: Callable[..., Any], tmp_path: Path
) -> None:
    commands = CommandRouter()
    CameraService(camera_config(enabled=False), tmp_path, EventBus(), commands)
    with pytest.raises(CommandError) as refused:
        await commands.call("snapshot")
    assert refused.value.code == "not_running"


# ---------------------------------------------------------------------- alerts

FAST_ALERTS = {
    "sample_interval_s": 0.25,
    "lost_after_s": 1.0,
    "frozen_after_s": 1.0,
    "black_after_s": 1.0,
    "stall_minutes": 1.5 / 60,
    "motion_while_locked_minutes": 1.5 / 60,
    "motion_gap_s": 1.0,
}


async def expect_alert(sub: Subscription[CameraAlert], kind: str, active: bool) -> CameraAlert:
    event = await next_event(sub, 6)
    assert isinstance(event, CameraAlert)
    assert (event.kind, event.active) == (kind, active), event
    return event


async def test_the_camera_scenes_raise_and_clear_health_alerts(
    camera_config: Callable[..., Any], camera_service: Callable[..., Any]
) -> None:
    bus = EventBus()
    config = camera_config(alerts=FAST_ALERTS, timelapse={"mode": "off"}, reopen_after_s=30)
    async with camera_service(config, bus=bus) as service:
        camera = service.source
        assert isinstance(camera, SyntheticCamera)
        bus.publish(access("in_use"))  # a member is working: motion is fine
        with bus.subscribe(CameraAlert) as alerts:
            await asyncio.sleep(1.5)
            assert alerts.pending() == 0 and service.alerts == {}
            for scene, kind in ((Scene.FROZEN, "frozen"), (Scene.BLACK, "black"),
                                (Scene.LOST, "camera_lost")):  # fmt: skip
                camera.set_scene(scene)
                raised = await expect_alert(alerts, kind, True)
                assert service.status()["alerts"] == [
                    {"kind": kind, "message": raised.message, "since": raised.ts}
                ]
                camera.set_scene(Scene.MOVING)
                await expect_alert(alerts, kind, False)
                assert service.alerts == {}


async def test_stall_and_motion_while_locked_through_the_service(
    camera_config: Callable[..., Any], camera_service: Callable[..., Any]
) -> None:
    bus = EventBus()
    config = camera_config(alerts=FAST_ALERTS, timelapse={"mode": "off"})
    async with camera_service(config, bus=bus) as service:
        camera = service.source
        assert isinstance(camera, SyntheticCamera)
        with bus.subscribe(CameraAlert) as alerts:
            bus.publish(access("in_use"))
            bus.publish(job_started(1))
            camera.set_scene(Scene.STILL)  # the printer stopped moving
            raised = await expect_alert(alerts, "stall", True)
            assert "job runs" in raised.message
            camera.set_scene(Scene.MOVING)
            await expect_alert(alerts, "stall", False)
            bus.publish(job_finished(1))
            bus.publish(access("locked"))  # badged out; someone keeps working
            raised = await expect_alert(alerts, "motion_while_locked", True)
            assert "locked" in raised.message
            bus.publish(access("authorised"))
            await expect_alert(alerts, "motion_while_locked", False)
            await asyncio.sleep(1.0)
            assert alerts.pending() == 0


# ---------------------------------------------------------------------- failing cameras


class BrokenCamera(FrameSource):
    """A camera that cannot be opened."""

    name = "broken"

    def __init__(self) -> None:
        self.attempts = 0

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterator[bytes]]:
        self.attempts += 1
        raise CameraUnavailable("camera 0 cannot be opened (no camera); check the cable")
        yield self._nothing()  # pragma: no cover

    async def _nothing(self) -> AsyncIterator[bytes]:  # pragma: no cover
        yield b""


class FlakyCamera(SyntheticCamera):
    """Sends a few frames per opening, then its stream ends (a USB camera unplugged)."""

    @contextlib.asynccontextmanager
    async def open(self) -> AsyncIterator[AsyncIterator[bytes]]:
        async with super().open() as frames:
            yield self._few(frames)

    async def _few(self, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        n = 0
        async for jpeg in frames:
            yield jpeg
            n += 1
            if n == 3:
                return


async def test_a_camera_that_cannot_open_is_a_warning_not_a_crash(
    camera_config: Callable[..., Any], tmp_path: Path
) -> None:
    bus = EventBus()
    broken = BrokenCamera()
    service = CameraService(camera_config(), tmp_path, bus, CommandRouter(), source=broken)
    supervisor = Supervisor(bus)
    supervisor.add(service)
    with bus.subscribe(ServiceFailed) as failures:
        async with supervisor:
            failed = await next_event(failures)
            assert failed.service == "camera" and failed.optional is True
            assert "cannot be opened" in failed.error
            assert service.status()["running"] is False
            assert "check the cable" in (service.status()["error"] or "")
            with pytest.raises(CameraUnavailable):
                await service.current_frame()
            await next_event(failures)  # retried
    assert broken.attempts >= 2


async def test_a_camera_that_stops_sending_is_reopened(
    camera_config: Callable[..., Any], tmp_path: Path
) -> None:
    bus = EventBus()
    flaky = FlakyCamera(320, 240, 30, 70)
    service = CameraService(camera_config(), tmp_path, bus, CommandRouter(), source=flaky)
    supervisor = Supervisor(bus)
    supervisor.add(service)
    with bus.subscribe(ServiceFailed) as failures:
        async with supervisor:
            failed = await next_event(failures)
            assert "stopped sending frames" in failed.error
            deadline = time.monotonic() + 5
            while service.fanout.published < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
    assert flaky.opened >= 2 and service.fanout.published >= 6


def test_supervisor_backoff_is_short_enough_for_these_tests() -> None:
    assert Backoff(initial=0.5).next_delay() < 1.0
