"""The camera capability's service: live view, snapshots, per-job timelapses, alerts.

Data flow::

    camera ──JPEG──> pump ──> FrameFanout ──newest frame──> each MJPEG viewer
                                  │  ├──> snapshot command / snapshot.jpg
                                  │  └──> timelapse frames ──JobFinished──> ffmpeg ──> MP4
                                  └──every sample_interval_s──> frame statistics
    bus: MachineStatus, Job*, AccessState ──> AlertMonitor <──┘
                                                  └──> CameraAlert (MQTT event/camera_alert)

Every frame is encoded once, by the camera (the Pi's hardware encoder, or the
synthetic twin in a thread); viewers, snapshots and timelapses share it.  The
service is optional: a camera that cannot be opened is a warning from the
supervisor, which retries it with backoff; the rest of the daemon never waits
on it.  A camera that stops sending frames for ``reopen_after_s`` is reopened
the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from PIL import Image

from gateway.access.events import AccessState
from gateway.bus import Event, EventBus, Subscription
from gateway.camera.alerts import AlertChange, AlertMonitor, job_phase
from gateway.camera.config import CameraConfig
from gateway.camera.errors import CameraUnavailable, TimelapseError
from gateway.camera.events import CameraAlert, TimelapseRendered
from gateway.camera.fanout import FanoutClosed, Frame, FrameFanout
from gateway.camera.frames import measure
from gateway.camera.render import render_video
from gateway.camera.sources import FrameSource, make_source
from gateway.camera.timelapse import (
    Begin,
    Capture,
    Finish,
    Step,
    TimelapseInfo,
    TimelapseRecorder,
    TimelapseState,
    TimelapseStore,
)
from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.machine.events import (
    JobFinished,
    JobPaused,
    JobResumed,
    JobStarted,
    LayerChanged,
    MachineStatus,
)
from gateway.supervisor import Service

log = logging.getLogger(__name__)

#: Where the web app serves this capability (:func:`gateway.camera.routes.camera_router`).
PREFIX = "/api/camera"
#: Access states in which nobody is allowed to use the machine.
LOCKED_STATES = frozenset({"locked", "lockout"})
DISABLED = "the camera is disabled ([camera] enabled = false)"
SWEEP_INTERVAL = 3600.0  # timelapse retention runs at least this often
SNAPSHOT_WAIT = 3.0  # seconds a snapshot waits for a fresh frame
MACHINE_EVENTS = (MachineStatus, JobStarted, JobPaused, JobResumed, JobFinished, AccessState)
TIMELAPSE_EVENTS = (MachineStatus, JobStarted, LayerChanged, JobFinished)
SNAPSHOT_NAME = re.compile(r"^snapshot-\d{8}T\d{6}Z-\d+\.jpg$")


def video_url(job_id: int) -> str:
    return f"{PREFIX}/timelapses/{job_id}.mp4"


def snapshot_url(name: str) -> str:
    return f"{PREFIX}/snapshots/{name}"


class CameraService(Service):
    """The camera beside the machine; see the module docstring.

    ``source`` replaces the backend ``config.backend`` names (tests pass a twin).
    """

    name = "camera"
    optional = True

    def __init__(
        self,
        config: CameraConfig,
        state_dir: Path,
        bus: EventBus,
        commands: CommandRouter,
        *,
        source: FrameSource | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.bus = bus
        self.source = source if source is not None else make_source(config)
        self.fanout = FrameFanout()
        self.timelapses = TimelapseStore(state_dir / "timelapse")
        self.snapshots_dir = state_dir / "snapshots"
        self.monitor = AlertMonitor(config.alerts, time.monotonic())
        #: Active alerts by kind, as they were published.
        self.alerts: dict[str, CameraAlert] = {}
        self.running = False
        #: Why the camera is not running, for the status API.
        self.error: str | None = None if config.enabled else DISABLED
        tl = config.timelapse
        self._recorder = TimelapseRecorder(tl.mode, tl.interval_s)
        self._renders: asyncio.Queue[int] = asyncio.Queue()
        self._pending_renders: set[int] = set()
        self._rendering: int | None = None
        self._captured: tuple[int, int] | None = None  # (job id, frame seq) last stored
        self._orphans_checked = False
        commands.register("snapshot", self._snapshot_command)

    # ------------------------------------------------------------------ lifetime

    async def run(self) -> None:
        if not self.config.enabled:
            log.info("%s", DISABLED)
            self.ready.set()
            return
        await asyncio.to_thread(self._make_folders)
        self.fanout.reopen()
        self._orphans_checked = False
        # Subscribed before the camera opens, so no job event is missed while it does.
        machine = self.bus.subscribe(*MACHINE_EVENTS, maxsize=200)
        jobs = self.bus.subscribe(*TIMELAPSE_EVENTS, maxsize=2000)
        # Ready before the camera opens: start-up never waits on a slow or missing camera.
        self.ready.set()
        try:
            async with self.source.open() as frames:
                self.running = True
                self.error = None
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._pump(frames), name="camera:frames")
                    tg.create_task(self._watch_frames(), name="camera:alerts")
                    tg.create_task(self._follow_machine(machine), name="camera:machine")
                    tg.create_task(self._record_timelapses(jobs), name="camera:timelapse")
                    tg.create_task(self._render_timelapses(), name="camera:render")
        except ExceptionGroup as group:
            # One task's error says more to the log and the status API than the group's.
            first = group.exceptions[0]
            self.error = str(first)
            raise first from group
        except CameraUnavailable as err:
            self.error = str(err)
            self._publish_alerts(self.monitor.tick(time.monotonic()))
            raise
        finally:
            machine.close()
            jobs.close()
            self.running = False
            self.fanout.close()

    def _make_folders(self) -> None:
        self.timelapses.root.mkdir(parents=True, exist_ok=True)
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)

    async def _pump(self, frames: AsyncIterator[bytes]) -> None:
        """Camera to fan-out; a camera silent for ``reopen_after_s`` is reopened."""
        limit = self.config.reopen_after_s
        iterator = aiter(frames)
        while True:
            try:
                async with asyncio.timeout(limit):
                    jpeg = await anext(iterator)
            except TimeoutError as err:
                raise CameraUnavailable(
                    f"no frame from the {self.source.name} camera for {limit:.0f} s; reopening it"
                ) from err
            except StopAsyncIteration as err:
                raise CameraUnavailable(
                    f"the {self.source.name} camera stopped sending frames; reopening it"
                ) from err
            self.fanout.publish(jpeg)

    # ------------------------------------------------------------------ alerts

    def _publish_alerts(self, changes: list[AlertChange]) -> None:
        for change in changes:
            event = CameraAlert(
                kind=change.kind.value, message=change.message, active=change.active
            )
            if change.active:
                self.alerts[event.kind] = event
                log.warning("camera alert %s: %s", event.kind, event.message)
            else:
                self.alerts.pop(event.kind, None)
                log.info("camera alert %s cleared: %s", event.kind, event.message)
            self.bus.publish(event)

    async def _watch_frames(self) -> None:
        cfg = self.config.alerts
        if not cfg.enabled:
            return
        thumb: Image.Image | None = None
        seen = 0
        while True:
            frame = self.fanout.latest
            if frame is not None and frame.seq != seen:
                seen = frame.seq
                try:
                    stats, thumb = await asyncio.to_thread(
                        measure, frame.jpeg, thumb, frame.at, cfg.pixel_threshold
                    )
                except OSError as err:  # not a JPEG Pillow can read
                    log.debug("frame %d could not be measured: %s", frame.seq, err)
                else:
                    self._publish_alerts(self.monitor.observe(stats))
            self._publish_alerts(self.monitor.tick(time.monotonic()))
            await asyncio.sleep(cfg.sample_interval_s)

    async def _follow_machine(self, events: Subscription[Event]) -> None:
        if not self.config.alerts.enabled:
            return
        async for event in events:
            now = time.monotonic()
            if isinstance(event, AccessState):
                changes = self.monitor.set_locked(event.state in LOCKED_STATES, now)
            else:
                changes = self.monitor.set_job(job_phase(event, self.monitor.job), now)
            self._publish_alerts(changes)

    # ------------------------------------------------------------------ timelapse

    async def _record_timelapses(self, events: Subscription[Event]) -> None:
        if self.config.timelapse.mode == "off":
            return
        while True:
            event: Event | None = None
            due = self._recorder.next_due()
            wait = None if due is None else max(0.0, due - time.monotonic())
            try:
                async with asyncio.timeout(wait):
                    event = await events.get()
            except TimeoutError:
                steps = self._recorder.due(time.monotonic())
            else:
                steps = self._recorder.on_event(event, time.monotonic(), time.time())
            for step in steps:
                await self._apply(step)
            if isinstance(event, MachineStatus) and not self._orphans_checked:
                self._orphans_checked = True
                await self._finish_orphans()

    async def _apply(self, step: Step) -> None:
        store = self.timelapses
        try:
            match step:
                case Begin(job_id=job_id, file=file, started_at=started_at):
                    info = await asyncio.to_thread(store.begin, job_id, file, started_at)
                    log.info(
                        "timelapse of job %d: recording (%d frames so far)", job_id, info.frames
                    )
                case Capture(job_id=job_id):
                    await self._capture(job_id)
                case Finish(job_id=job_id, outcome=outcome, ended_at=ended_at):
                    info = await asyncio.to_thread(store.finish, job_id, outcome, ended_at)
                    await self._finished(info)
        except (TimelapseError, OSError) as err:
            log.warning("timelapse of job %d: %s", step.job_id, err)

    async def _capture(self, job_id: int) -> None:
        frame = self.fanout.latest
        fresh = max(2.0, 3.0 / self.config.fps)
        if not self.running or frame is None or time.monotonic() - frame.at > fresh:
            log.debug("timelapse of job %d: no current picture to store", job_id)
            return
        if self._captured == (job_id, frame.seq):
            return  # two layers within one frame: one picture is enough
        self._captured = (job_id, frame.seq)
        await asyncio.to_thread(self.timelapses.add_frame, job_id, frame.jpeg)

    async def _finished(self, info: TimelapseInfo) -> None:
        if info.state is TimelapseState.EMPTY:
            log.info("timelapse of job %d: no frames were taken", info.job_id)
            await asyncio.to_thread(self.timelapses.remove, info.job_id)
            return
        log.info("timelapse of job %d: %d frames", info.job_id, info.frames)
        if self.config.timelapse.render:
            self._queue_render(info.job_id)

    async def _finish_orphans(self) -> None:
        """Recordings cut short by a restart, that the machine no longer runs, are finished."""
        for info in await asyncio.to_thread(self.timelapses.listing):
            if info.state is TimelapseState.RECORDING and info.job_id != self._recorder.job_id:
                await self._apply(Finish(info.job_id, "interrupted", time.time()))

    def _queue_render(self, job_id: int) -> None:
        if job_id not in self._pending_renders:
            self._pending_renders.add(job_id)
            self._renders.put_nowait(job_id)

    async def _render_timelapses(self) -> None:
        if self.config.timelapse.render:
            for info in await asyncio.to_thread(self.timelapses.listing):
                if info.state in (TimelapseState.FINISHED, TimelapseState.RENDERING):
                    self._queue_render(info.job_id)
        await self._sweep()
        while True:
            try:
                async with asyncio.timeout(SWEEP_INTERVAL):
                    job_id = await self._renders.get()
            except TimeoutError:
                await self._sweep()
                continue
            self._pending_renders.discard(job_id)
            await self._render(job_id)
            await self._sweep()

    async def _render(self, job_id: int) -> None:
        store = self.timelapses
        tl = self.config.timelapse
        self._rendering = job_id
        try:
            await asyncio.to_thread(store.mark, job_id, TimelapseState.RENDERING)
            started = time.monotonic()
            video = await render_video(
                store.job_dir(job_id), store.video_path(job_id), tl.render_fps, tl.render_timeout_s
            )
            if not tl.keep_frames:
                await asyncio.to_thread(store.remove_frames, job_id)
            info = await asyncio.to_thread(store.mark, job_id, TimelapseState.READY)
            size = (await asyncio.to_thread(video.stat)).st_size
            log.info(
                "timelapse of job %d: %d frames made into %s (%d kB) in %.1f s",
                job_id,
                info.frames,
                video.name,
                size // 1024,
                time.monotonic() - started,
            )
            self.bus.publish(
                TimelapseRendered(
                    job_id=job_id, frames=info.frames, size_bytes=size, url=video_url(job_id)
                )
            )
        except (TimelapseError, OSError) as err:
            log.warning("timelapse of job %d: %s", job_id, err)
            # The folder may be gone (retention, or removed by hand).
            with contextlib.suppress(TimelapseError, OSError):
                await asyncio.to_thread(store.mark, job_id, TimelapseState.FAILED, str(err))
        finally:
            self._rendering = None

    async def _sweep(self) -> None:
        tl = self.config.timelapse
        keep = {j for j in (self._recorder.job_id, self._rendering) if j is not None}
        keep |= self._pending_renders
        try:
            removed = await asyncio.to_thread(
                self.timelapses.sweep,
                time.time(),
                tl.max_disk_mb * 1024 * 1024,
                tl.max_age_days * 86400,
                keep,
            )
        except OSError as err:
            log.warning("timelapse retention failed: %s", err)
            return
        if removed:
            log.info("timelapse retention removed jobs %s", ", ".join(map(str, removed)))

    # ------------------------------------------------------------------ read surface

    async def current_frame(self, wait: float = SNAPSHOT_WAIT) -> Frame:
        """A frame at most a few frame periods old, waiting up to ``wait`` seconds for one
        (the camera may be opening); raises :class:`CameraUnavailable`."""
        if not self.running and self.error is not None:
            raise CameraUnavailable(self.error)
        frame = self.fanout.latest
        if frame is not None and time.monotonic() - frame.at < max(1.0, 3.0 / self.config.fps):
            return frame
        try:
            async with asyncio.timeout(wait):
                return await self.fanout.next_frame(frame.seq if frame is not None else 0)
        except (TimeoutError, FanoutClosed) as err:
            raise CameraUnavailable(
                f"the camera has sent no picture for over {wait:.0f} s; see /api/camera/status"
            ) from err

    async def snapshot(self) -> dict[str, Any]:
        """Save the current picture under ``<state_dir>/snapshots/``."""
        frame = await self.current_frame()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(frame.wall))
        name = f"snapshot-{stamp}-{frame.seq}.jpg"
        path = self.snapshots_dir / name
        await asyncio.to_thread(self._save_snapshot, path, frame.jpeg)
        return {
            "name": name,
            "path": str(path),
            "url": snapshot_url(name),
            "size_bytes": len(frame.jpeg),
            "taken_at": frame.wall,
        }

    def _save_snapshot(self, path: Path, jpeg: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)
        saved = sorted(path.parent.glob("snapshot-*.jpg"), key=lambda p: p.stat().st_mtime)
        for old in saved[: max(0, len(saved) - self.config.max_snapshots)]:
            old.unlink(missing_ok=True)

    async def _snapshot_command(self, request: CommandRequest) -> dict[str, Any]:
        try:
            return await self.snapshot()
        except CameraUnavailable as err:
            raise CommandError("not_running", str(err)) from err
        except OSError as err:
            raise CommandError("failed", f"the snapshot could not be saved: {err}") from err

    def snapshot_path(self, name: str) -> Path | None:
        """The saved snapshot called ``name``, if the name is one this service makes."""
        if not SNAPSHOT_NAME.fullmatch(name):
            return None
        return self.snapshots_dir / name

    async def timelapse_list(self) -> list[dict[str, Any]]:
        """Every timelapse, newest first, with its video's URL once there is one."""
        infos = await asyncio.to_thread(self.timelapses.listing)
        out = []
        for info in infos:
            item = info.meta()
            item["size_bytes"] = info.size_bytes
            ready = info.state is TimelapseState.READY
            item["video_url"] = video_url(info.job_id) if ready else None
            out.append(item)
        return out

    def video_path(self, job_id: int) -> Path:
        return self.timelapses.video_path(job_id)

    def status(self) -> dict[str, Any]:
        cfg = self.config
        latest = self.fanout.latest
        return {
            "enabled": cfg.enabled,
            "running": self.running,
            "backend": self.source.name,
            "error": self.error,
            "width": cfg.width,
            "height": cfg.height,
            "fps": cfg.fps,
            "measured_fps": round(self.fanout.rate(), 1),
            "frames": self.fanout.published,
            "last_frame_age_s": None if latest is None else round(time.monotonic() - latest.at, 2),
            "viewers": self.fanout.viewers,
            "max_viewers": cfg.max_viewers,
            "alerts": [
                {"kind": a.kind, "message": a.message, "since": a.ts} for a in self.alerts.values()
            ],
            "timelapse": {
                "mode": cfg.timelapse.mode,
                "recording_job_id": self._recorder.job_id,
                "rendering_job_id": self._rendering,
            },
        }
