"""The machine capability's coordinator: serial connection, jobs, status on the bus.

It owns the connection (reopened with the shared backoff after an unplug), one
:class:`~gateway.machine.streamer.Streamer` per connection, the current job
and its record, and publishes :class:`~gateway.machine.events.MachineStatus`
snapshots.  It registers the job commands (start, pause, resume, cancel,
e-stop, reset) on the command router; the web UI and MQTT reach it only that
way or through its small read-only surface (:meth:`status`, :attr:`files`,
:meth:`job_history`).

Safety rules kept here: a job only starts while the machine is powered for a
badge session (when access control is on), and a start or resume command is
first put to the access capability's ``authorise_start`` command (the presence
rule: a member must be in session at the machine); a job interrupted by an unplugged
port, a firmware halt or a reset is failed and never resumed by itself; e-stop
goes to the controller ahead of everything queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from gateway.access.events import RelayChanged
from gateway.backoff import Backoff
from gateway.bus import EventBus
from gateway.commands import CommandError, CommandRouter
from gateway.config import JobsConfig, MachineConfig, SerialConfig, line_limit
from gateway.machine import events as ev
from gateway.machine import records
from gateway.machine.cores import make_core
from gateway.machine.files import FileLibrary, FileRejected
from gateway.machine.grbl import GrblProtocol
from gateway.machine.job import Job, JobAction, JobState
from gateway.machine.progress import ProgressClock, TimeProfile, profile_lines
from gateway.machine.protocol import (
    Alarm,
    CommunicationTimeout,
    ControllerProtocol,
    ControllerReady,
    FirmwareError,
    FirmwareMessage,
    FirmwareReset,
    GrblStatus,
    LinesAcked,
    MotionFinished,
    ProtocolEvent,
    ResendRequested,
    Temperatures,
    UnparsedLine,
)
from gateway.machine.resume_config import ResumeConfig
from gateway.machine.resumer import ResumedFrom, Resumer
from gateway.machine.serial_port import SerialPortError, open_port
from gateway.machine.service_commands import MachineCommands
from gateway.machine.streamer import FileLines, Streamer, StreamFinished
from gateway.store import Store
from gateway.supervisor import Service
from gateway.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# Moves assumed waiting in the planner when the firmware does not say (Marlin
# without ADVANCED_OK): BLOCK_BUFFER_SIZE 16 less one, full while a job streams.
ASSUMED_PLANNED = 15
PROGRESS_EVERY = 0.2  # seconds between updates of what the machine executed


def read_profile(path: Path, lines: int, firmware: str) -> TimeProfile:
    """Blocking: the per-line time model of a prepared file (run in a thread)."""
    with path.open("r", encoding="ascii", errors="replace") as fh:
        return profile_lines(fh, lines, firmware=firmware)


CANCEL_GCODE = {
    "marlin": ("M104 S0", "M140 S0", "M107", "M84"),
    "grbl": ("M5", "M9"),
}


class MachineState(StrEnum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    IDLE = "idle"
    RUNNING = "running"
    PAUSED = "paused"
    ERROR = "error"
    ESTOP = "estop"


class MachineService(MachineCommands, Service):
    name = "machine"

    def __init__(
        self,
        *,
        machine: MachineConfig,
        serial: SerialConfig,
        jobs: JobsConfig,
        db_path: Path,
        files_dir: Path,
        bus: EventBus,
        commands: CommandRouter,
        port: Callable[[], str] | None = None,
        dtr_reset: Callable[[], None] | None = None,
        require_power: bool = False,
        resume: ResumeConfig | None = None,
    ) -> None:
        super().__init__()
        self.machine = machine
        self.serial = serial
        self.jobs_cfg = jobs
        self.db_path = db_path
        self.bus = bus
        self.commands = commands
        self._port = port or (lambda: serial.port)
        # Reopening a real port pulses DTR, which resets Marlin boards; a pty has no
        # DTR line, so the simulator is reset through this hook instead.
        self._dtr_reset = dtr_reset
        self.files = FileLibrary(
            files_dir,
            firmware=machine.firmware,
            max_line_length=line_limit(serial, machine.firmware),
            max_bytes=jobs.max_upload_bytes,
        )
        #: When access control is on, jobs start only while the relay powers the machine.
        self.require_power = require_power
        self.powered = not require_power
        self.link = MachineState.DISCONNECTED
        self.fault = ""  # why the machine is in error/estop; cleared by reset
        self.firmware_version = ""
        self.message = ""
        self.temperatures: dict[str, tuple[float, float | None]] = {}
        self.position: dict[str, float] = {}
        self.grbl_state = ""
        self.job: Job | None = None
        self.queue: list[str] = []
        self.garbage_lines = 0
        self._streamer: Streamer | None = None
        self._store: Store | None = None
        self._persist: asyncio.Queue[Job] = asyncio.Queue()
        self._profiles: asyncio.Queue[tuple[Job, Path]] = asyncio.Queue()
        self._tracked = 0.0
        self._status_dirty = asyncio.Event()
        self._last_progress = 0.0
        self._layer = 0
        self._reconnect = asyncio.Event()
        #: Checkpoints of the running job; offers an interrupted one back (resumer.py).
        self.resumer = Resumer(
            machine=machine,
            config=resume or ResumeConfig(),
            files=self.files,
            db_path=db_path,
            bus=bus,
            commands=commands,
            firmware_version=self._connected_version,
            start_job=self.start_job,
            require_member=require_power,
        )
        self._register_commands(commands)

    # -- read-only surface ------------------------------------------------------------

    def _connected_version(self) -> str | None:
        """The controller's firmware version, None until it has said it."""
        return self.firmware_version if self.link is MachineState.IDLE else None

    @property
    def state(self) -> MachineState:
        if self.link is not MachineState.IDLE:
            return self.link
        if self.job is not None and self.job.state in (JobState.RUNNING, JobState.FINISHING):
            return MachineState.RUNNING
        if self.job is not None and self.job.state is JobState.PAUSED:
            return MachineState.PAUSED
        if self.fault:
            return MachineState.ESTOP if self.fault.startswith("emergency") else MachineState.ERROR
        return MachineState.IDLE

    def status(self) -> dict[str, Any]:
        mono = time.monotonic()
        return {
            "machine_id": self.machine.id,
            "name": self.machine.name,
            "kind": self.machine.kind,
            "state": self.state.value,
            "firmware": self.machine.firmware,
            "firmware_version": self.firmware_version,
            "job": self.job.as_dict(mono) if self.job is not None else None,
            "queue": list(self.queue),
            "temperatures": {k: list(v) for k, v in self.temperatures.items()},
            "position": dict(self.position),
            "grbl_state": self.grbl_state,
            "fault": self.fault,
            "message": self.message,
            "powered": self.powered,
        }

    async def job_history(self, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        if self._store is None:
            return []
        return await self._store.run(records.history, self._store.db, limit, offset)

    # -- lifetime -----------------------------------------------------------------------

    async def run(self) -> None:
        # Opening creates the file and switches it to WAL: SD-card I/O, off the loop.
        self._store = store = await asyncio.to_thread(Store, self.db_path, "machine")
        try:
            await store.run(records.ensure_schema, store.db)
            closed = await store.run(records.close_interrupted, store.db)
            if closed:
                log.warning("%d job(s) were interrupted by the last stop; marked failed", closed)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._persist_jobs(), name="machine:persist")
                tg.create_task(self.resumer.run(), name="machine:resume")
                tg.create_task(self._profile_jobs(), name="machine:profile")
                tg.create_task(self._publish_status_loop(), name="machine:status")
                tg.create_task(self._connection_loop(), name="machine:serial")
                if self.require_power:
                    tg.create_task(self._watch_power(), name="machine:power")
        finally:
            if self.job is not None and not self.job.finished:
                self._finish(JobAction.FAIL, "the gateway stopped during the job")
            while not self._persist.empty():
                job = self._persist.get_nowait()
                with contextlib.suppress(Exception):
                    await store.run(records.update_job, store.db, job, self.machine.id)
            store.close()
            self._store = None

    async def _connection_loop(self) -> None:
        backoff = Backoff(initial=0.5, maximum=self.serial.reconnect_max_delay)
        last_failure = ""  # logged once per kind, so the journal names a denied port
        while True:
            self.link = MachineState.CONNECTING
            self._mark_dirty()
            try:
                port = self._port()
                core = make_core(
                    self.machine.firmware,
                    rx_buffer_size=self.serial.rx_buffer_size,
                    response_timeout=self.serial.response_timeout,
                    status_interval=self.serial.status_interval,
                    max_line_length=line_limit(self.serial, self.machine.firmware),
                )
                streamer = await open_port(
                    port,
                    self.serial.baud,
                    lambda core=core: Streamer(  # type: ignore[misc]
                        core, on_event=self._on_protocol_event, baud=self.serial.baud
                    ),
                )
            except SerialPortError as err:
                if str(err) != last_failure:
                    last_failure = str(err)
                    log.warning("%s", err)
                self._connection_lost(str(err))
                self.ready.set()
                await asyncio.sleep(backoff.next_delay())
                continue
            last_failure = ""
            log.info("serial port %s open at %d baud", port, self.serial.baud)
            self._streamer = streamer
            self.ready.set()
            self._reconnect.clear()
            run = asyncio.create_task(self._streamer.run(), name="machine:streamer")
            wait_reset = asyncio.create_task(self._reconnect.wait())
            try:
                done, _ = await asyncio.wait({run, wait_reset}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await cancel_and_wait([run, wait_reset])
            self._streamer = None
            failure = run.exception() if run in done else None
            if failure is not None:
                self._connection_lost(str(failure))
                await asyncio.sleep(backoff.next_delay())
            else:
                log.info("reconnecting to the controller")
                self._connection_lost("")
                if self._dtr_reset is not None:
                    self._dtr_reset()
                backoff.reset()

    def _connection_lost(self, reason: str) -> None:
        was_connected = self.link is MachineState.IDLE
        self.link = MachineState.DISCONNECTED
        self.firmware_version = ""
        if self.job is not None and not self.job.finished:
            self._finish(JobAction.FAIL, f"serial connection lost: {reason}")
        if reason and was_connected:
            log.error("%s", reason)
            self.bus.publish(ev.MachineError(message=reason, fatal=False))
        if reason:
            self.message = reason
        self._mark_dirty()

    # -- protocol events (synchronous, on the hot path) ---------------------------------

    def _on_protocol_event(self, e: ProtocolEvent) -> None:
        job = self.job
        match e:
            case LinesAcked():
                if job is not None and self._streamer is not None and not job.finished:
                    job.lines_done = self._streamer.lines_done
                    job.bytes_done = self._streamer.bytes_done
                    self.resumer.lines_confirmed(job.lines_done)
                    self._track(job, time.monotonic())
                    self._progress(job)
            case StreamFinished():
                if job is not None and job.state is JobState.RUNNING:
                    self._finishing(job)
            case MotionFinished():
                if job is not None and job.state is JobState.FINISHING:
                    self._finish(JobAction.COMPLETE, "")
            case ControllerReady(version=version):
                self.link = MachineState.IDLE
                self.firmware_version = version
                self.message = f"connected to {version or self.machine.firmware}"
                log.info("controller ready: %s", version or self.machine.firmware)
                self._mark_dirty()
            case Temperatures(readings=readings):
                self.temperatures = dict(readings)
                self._mark_dirty()
            case GrblStatus():
                self._grbl_status(e)
            case ResendRequested():
                if job is not None and self._streamer is not None:
                    job.resends = self._streamer.core.resends
            case Alarm(code=code, message=message):
                self._fault(f"ALARM:{code} {message}", code)
            case FirmwareError(fatal=True, message=message, code=code):
                self._fault(message, code)
            case FirmwareError(message=message, code=code, job_line=line):
                if job is not None and self._streamer is not None:
                    job.errors = self._streamer.core.errors
                where = f" (line {line})" if line else ""
                self.message = f"{message}{where}"
                self.bus.publish(ev.MachineError(message=self.message, code=code))
                self._mark_dirty()
            case FirmwareReset(banner=banner):
                log.warning("controller reset: %s", banner)
                if job is not None and not job.finished:
                    self._finish(JobAction.FAIL, "the controller reset during the job")
                ready = self._streamer is not None and self._streamer.core.ready
                self.link = MachineState.IDLE if ready else MachineState.CONNECTING
                self._mark_dirty()
            case CommunicationTimeout(waited=waited, action=action):
                msg = f"no reply from the controller for {waited:.1f} s; {action}"
                if waited < self.serial.response_timeout:
                    # A quick probe (lost ok, line error without Resend): routine
                    # recovery, safe whatever happened; not worth a screen message.
                    log.info("%s", msg)
                else:
                    log.warning("%s", msg)
                    self.bus.publish(ev.MachineError(message=msg))
            case FirmwareMessage(kind="msg" | "feedback", text=text):
                self.message = text
                self._mark_dirty()
            case UnparsedLine():
                self.garbage_lines += 1
            case _:
                pass

    def _grbl_status(self, e: GrblStatus) -> None:
        self.grbl_state = e.state if e.substate is None else f"{e.state}:{e.substate}"
        pos = e.wpos or e.mpos
        if pos is not None:
            self.position = dict(zip("xyzabc", pos, strict=False))
        job = self.job
        if job is not None and not job.finished:
            self._track(job, time.monotonic())
            if e.mpos is not None and len(e.mpos) > 2:
                self._z_moved(job, e.mpos[2])
        self._mark_dirty()

    def _z_moved(self, job: Job, z: float) -> None:
        if job.z is None or z > job.z + 1e-6:
            if job.z is not None:
                self._layer += 1
                self.bus.publish(ev.LayerChanged(job_id=job.id, z=z, layer=self._layer))
            job.z = z

    def _track(self, job: Job, mono: float, *, force: bool = False) -> None:
        """Move the job's progress to the line the machine has executed: the last
        acknowledged one less the moves its planner still holds."""
        progress, streamer = job.progress, self._streamer
        if progress is None or streamer is None:
            return
        if not force and mono - self._tracked < PROGRESS_EVERY:
            return
        self._tracked = mono
        planned = streamer.core.planned
        waiting = ASSUMED_PLANNED if planned is None else planned
        progress.update(streamer.lines_done - waiting, job.elapsed(mono))

    def _progress(self, job: Job) -> None:
        mono = time.monotonic()
        if self._streamer is not None and self._streamer.z is not None:
            self._z_moved(job, self._streamer.z)
        if mono - self._last_progress < 1.0:
            return
        self._last_progress = mono
        self.bus.publish(
            ev.JobProgress(
                job_id=job.id,
                lines_done=job.lines_done,
                lines_total=job.lines_total,
                bytes_done=job.bytes_done,
                bytes_total=job.bytes_total,
                fraction=job.fraction(),
                elapsed=job.elapsed(mono),
                eta_seconds=job.eta(mono),
                z=job.z,
            )
        )
        self._mark_dirty()

    def _fault(self, message: str, code: int | None) -> None:
        if self.fault.startswith("emergency"):
            # The firmware's own report of our e-stop (Marlin: "Printer halted. kill()
            # called!"); the machine stays in e-stop, which says what to do next.
            log.info("controller after emergency stop: %s", message)
            return
        log.error("controller fault: %s", message)
        self.fault = message
        self.message = message
        if self.job is not None and not self.job.finished:
            self._finish(JobAction.FAIL, message)
        self.bus.publish(ev.MachineError(message=message, code=code, fatal=True))
        self._mark_dirty()

    def _finishing(self, job: Job) -> None:
        """Every line was accepted; the job ends when the controller has stopped."""
        job.apply(JobAction.FINISH, now=time.time(), mono=time.monotonic())
        if self._streamer is not None:
            job.lines_done = self._streamer.lines_done
            job.bytes_done = self._streamer.bytes_done
        log.info("job %d (%s): all lines sent, waiting for the machine", job.id, job.file)
        self.bus.publish(ev.JobFinishing(job_id=job.id, file=job.file, lines_done=job.lines_done))
        self._persist.put_nowait(job)
        self._mark_dirty()

    def _finish(self, action: JobAction, reason: str) -> None:
        job = self.job
        if job is None or job.finished:
            return
        if self._streamer is not None:
            self._streamer.end()
            job.resends = self._streamer.core.resends
            job.errors = self._streamer.core.errors
        job.apply(action, now=time.time(), mono=time.monotonic(), reason=reason)
        if action is JobAction.COMPLETE:
            job.lines_done = job.lines_total
            job.bytes_done = job.bytes_total
            if job.progress is not None:
                job.progress.finish()
        self.resumer.job_finished(job)
        log.info("job %d (%s) %s %s", job.id, job.file, job.state.value, reason)
        self.bus.publish(
            ev.JobFinished(
                job_id=job.id,
                file=job.file,
                outcome=job.state.value,
                lines_done=job.lines_done,
                seconds=job.elapsed(time.monotonic()),
                resends=job.resends,
                errors=job.errors,
                reason=job.reason,
                filament_mm=job.filament_mm if action is JobAction.COMPLETE else None,
            )
        )
        self._persist.put_nowait(job)
        self._mark_dirty()

    # -- background tasks ----------------------------------------------------------------

    def _mark_dirty(self) -> None:
        self._status_dirty.set()

    async def _publish_status_loop(self) -> None:
        while True:
            await self._status_dirty.wait()
            self._status_dirty.clear()
            s = self.status()
            self.bus.publish(
                ev.MachineStatus(
                    machine_id=self.machine.id,
                    state=s["state"],
                    firmware=self.machine.firmware,
                    firmware_version=self.firmware_version,
                    job=s["job"],
                    temperatures=dict(self.temperatures),
                    position=dict(self.position),
                    grbl_state=self.grbl_state,
                    message=self.message,
                )
            )
            await asyncio.sleep(0.25)

    async def _profile_jobs(self) -> None:
        """Build each started job's time model off the loop; progress counts lines
        (scaled to the estimate) until it is ready."""
        while True:
            job, path = await self._profiles.get()
            try:
                profile = await asyncio.to_thread(
                    read_profile, path, job.lines_total, self.machine.firmware
                )
            except Exception as err:  # a model bug must not take the machine down
                log.warning("no time model for job %d (%s): %s", job.id, job.file, err)
                continue
            if job.progress is not None and not job.finished:
                job.progress.use_profile(profile)
                self._track(job, time.monotonic(), force=True)

    async def _persist_jobs(self) -> None:
        while True:
            job = await self._persist.get()
            store = self._store
            if store is None:
                continue
            try:
                await store.run(records.update_job, store.db, job, self.machine.id)
            except Exception:
                log.exception("could not save the record of job %d", job.id)

    # -- actions ---------------------------------------------------------------------------

    def _require_connected(self) -> Streamer:
        if self._streamer is None or self.link is not MachineState.IDLE:
            raise CommandError(
                "not_connected",
                f"the {self.machine.firmware} controller is {self.link.value}; "
                "check its USB cable and power",
            )
        return self._streamer

    def _current(self, *states: JobState) -> Job:
        job = self.job
        if job is None or job.finished:
            raise CommandError("no_job", "no job is running")
        if states and job.state not in states:
            raise CommandError("bad_state", f"the job is {job.state.value}")
        return job

    async def start_job(
        self,
        file: str,
        *,
        source: Path | None = None,
        lines_total: int | None = None,
        resumed: ResumedFrom | None = None,
        origin: str = "internal",
        discard_interrupted: bool = False,
    ) -> Job:
        """Start ``file``; a resume (:mod:`gateway.machine.resumer`) streams ``source``
        instead, ``lines_total`` lines: the preamble, then the file from a layer.  While
        an interrupted job is offered for resume, a new job starts only with
        ``discard_interrupted`` (the member confirmed the bed is clear)."""
        streamer = self._require_connected()
        if self.job is not None and not self.job.finished:
            raise CommandError("busy", f"job {self.job.id} ({self.job.file}) is still running")
        if resumed is None and not discard_interrupted:
            held = await self.resumer.held_back_by()
            if held is not None:
                raise CommandError("interrupted_pending", held)
        if self.fault:
            raise CommandError("fault", f"{self.fault}; reset the controller first")
        if not self.powered:
            raise CommandError("not_powered", "badge in at the machine before starting a job")
        try:
            stored = self.files.get(file)
            path = self.files.prepared_path(file)
        except FileRejected as err:
            raise CommandError(err.code, str(err)) from err
        job = Job(
            id=0,
            file=stored.name,
            lines_total=stored.lines,
            bytes_total=stored.bytes,
            estimated_seconds=stored.estimated_seconds,
            filament_mm=stored.filament_mm,
            queued_at=time.time(),
            origin=origin,
        )
        if source is not None and lines_total is not None:
            try:
                size = await asyncio.to_thread(lambda: source.stat().st_size)
            except OSError as err:
                raise CommandError("not_found", f"cannot read the resumed job: {err}") from err
            left = lines_total / max(1, stored.lines)
            job.lines_total, job.bytes_total = lines_total, size
            if job.estimated_seconds is not None:
                job.estimated_seconds *= min(1.0, left)
            if job.filament_mm is not None:
                job.filament_mm *= min(1.0, left)
        assert self._store is not None
        job.id = await self._store.run(records.insert_job, self._store.db, job, self.machine.id)
        if streamer is not self._streamer or self.link is not MachineState.IDLE:
            raise CommandError("not_connected", "the controller disconnected")
        job.apply(JobAction.START, now=time.time(), mono=time.monotonic())
        job.progress = ProgressClock(job.lines_total, job.estimated_seconds)
        self.job = job
        self._tracked = 0.0
        self._layer = 0
        self._last_progress = 0.0
        if stored.name in self.queue:
            self.queue.remove(stored.name)
        self.bus.publish(
            ev.JobStarted(
                job_id=job.id,
                file=job.file,
                lines=job.lines_total,
                estimated_seconds=job.estimated_seconds,
                filament_mm=job.filament_mm,
                origin=job.origin,
            )
        )
        self._persist.put_nowait(job)
        self.resumer.job_started(job, path, resumed)
        streamed = path if source is None else source
        streamer.begin(FileLines(streamed))
        self._profiles.put_nowait((job, streamed))
        self._mark_dirty()
        return job

    def pause(self) -> Job:
        job = self._current(JobState.RUNNING)
        streamer = self._require_connected()
        job.apply(JobAction.PAUSE, now=time.time(), mono=time.monotonic())
        streamer.paused = True
        if isinstance(streamer.core, GrblProtocol):
            streamer.control(_feed_hold)
        self.bus.publish(ev.JobPaused(job_id=job.id))
        self._persist.put_nowait(job)
        self._mark_dirty()
        return job

    def resume(self) -> Job:
        job = self._current(JobState.PAUSED)
        streamer = self._require_connected()
        job.apply(JobAction.RESUME, now=time.time(), mono=time.monotonic())
        streamer.paused = False
        if isinstance(streamer.core, GrblProtocol):
            streamer.control(_cycle_start)
        streamer.pump()
        self.bus.publish(ev.JobResumed(job_id=job.id))
        self._mark_dirty()
        return job

    async def cancel(self) -> Job:
        job = self._current(
            JobState.RUNNING, JobState.PAUSED, JobState.FINISHING, JobState.QUEUED
        )
        await self._stop_job(JobAction.CANCEL, "cancelled")
        return job

    async def _stop_job(self, action: JobAction, reason: str) -> None:
        """End the current job now and stop the machine's motion without an e-stop."""
        streamer = self._streamer
        self._finish(action, reason)
        if streamer is None:
            return
        if isinstance(streamer.core, GrblProtocol):
            # Stop motion at once: hold, then a soft reset flushes GRBL's planner
            # (after the hold has stopped the axes, so no ALARM 3).
            streamer.control(_feed_hold)
            await self._wait_grbl_held(2.0)
            streamer.control(lambda core: core.emergency_stop())
        else:
            streamer.send_command("M410")  # quickstop: flush Marlin's planner
        script = self.jobs_cfg.cancel_gcode
        if script is None:
            script = list(CANCEL_GCODE[self.machine.firmware])
        for line in script:
            streamer.send_command(line)

    async def _watch_power(self) -> None:
        """Follow the access relay: jobs start only while it is on, and a safety cut
        (interlock, e-stop, lockout) mid-job stops the job."""
        with self.bus.subscribe(RelayChanged) as changes:
            async for change in changes:
                self.powered = change.on
                self._mark_dirty()
                job = self.job
                if not change.on and job is not None and not job.finished:
                    log.warning("machine power cut during job %d: %s", job.id, change.reason)
                    await self._stop_job(JobAction.FAIL, f"machine power was cut: {change.reason}")

    async def _wait_grbl_held(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.grbl_state not in ("Hold:0", "Idle", "Alarm"):
                    await asyncio.sleep(0.05)

    def emergency_stop(self, origin: str) -> None:
        log.warning("EMERGENCY STOP from %s", origin)
        if self._streamer is not None:
            self._streamer.emergency_stop()
        self.fault = f"emergency stop from {origin}"
        self.message = "Emergency stop: the machine is disabled until it is reset"
        if self.job is not None and not self.job.finished:
            self._finish(JobAction.ESTOP, f"emergency stop from {origin}")
        self.bus.publish(ev.EmergencyStop(origin=origin))
        self._mark_dirty()

    def reset(self) -> None:
        """Clear a fault: reopen the port (DTR resets Marlin boards), unlock GRBL."""
        if self.job is not None and not self.job.finished:
            raise CommandError("busy", "cancel the job before resetting the controller")
        self.fault = ""
        self.message = "resetting the controller"
        if self._streamer is not None and isinstance(self._streamer.core, GrblProtocol):
            self._streamer.send_command("$X")
        else:
            self._reconnect.set()
        self._mark_dirty()


def _feed_hold(core: ControllerProtocol) -> None:
    if isinstance(core, GrblProtocol):
        core.feed_hold()


def _cycle_start(core: ControllerProtocol) -> None:
    if isinstance(core, GrblProtocol):
        core.cycle_start()
