"""The machine capability's commands on the router: argument checks, then the service.

A mixin of :class:`~gateway.machine.service.MachineService`: each handler checks
what the caller sent, puts starts, resumes and console commands to the access
capability first (the presence rule, :meth:`_authorise`), and calls the service's
own actions.  Nothing here keeps state of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.config import MachineConfig, SerialConfig, line_limit
from gateway.machine.files import FileLibrary, FileRejected
from gateway.machine.gcode import GcodeError, clean_line
from gateway.machine.job import Job, JobState, JobStateError

if TYPE_CHECKING:
    from enum import StrEnum

    from gateway.machine.streamer import Streamer


class MachineCommands:
    """Command handlers of the machine service (start, pause, resume, cancel, e-stop,
    reset, queue, console)."""

    queue: list[str]
    files: FileLibrary
    commands: CommandRouter
    require_power: bool
    serial: SerialConfig
    machine: MachineConfig
    job: Job | None

    if TYPE_CHECKING:

        @property
        def state(self) -> StrEnum: ...

        async def start_job(
            self, file: str, *, origin: str = ..., discard_interrupted: bool = ...
        ) -> Job: ...

        def pause(self) -> Job: ...

        def resume(self) -> Job: ...

        async def cancel(self) -> Job: ...

        def emergency_stop(self, origin: str) -> None: ...

        def reset(self) -> None: ...

        def _current(self, *states: JobState) -> Job: ...

        def _mark_dirty(self) -> None: ...

        def _require_connected(self) -> Streamer: ...

    def _register_commands(self, commands: CommandRouter) -> None:
        for name, handler in (
            ("start_job", self._cmd_start),
            ("pause", self._cmd_pause),
            ("resume", self._cmd_resume),
            ("cancel", self._cmd_cancel),
            ("estop", self._cmd_estop),
            ("reset", self._cmd_reset),
            ("queue_job", self._cmd_queue),
            ("send_gcode", self._cmd_send),
        ):
            commands.register(name, handler)

    async def _cmd_start(self, req: CommandRequest) -> dict[str, Any]:
        file = req.args.get("file")
        if file is None and self.queue:
            file = self.queue[0]
        if not isinstance(file, str):
            raise CommandError("bad_args", "start_job needs a 'file' name")
        discard = req.args.get("discard_interrupted", False)
        if not isinstance(discard, bool):
            raise CommandError("bad_args", "'discard_interrupted' is true or false")
        await self._authorise("start", req)
        job = await self.start_job(file, origin=req.origin, discard_interrupted=discard)
        return job.as_dict(time.monotonic())

    async def _cmd_queue(self, req: CommandRequest) -> dict[str, Any]:
        file = req.args.get("file")
        if not isinstance(file, str):
            raise CommandError("bad_args", "queue_job needs a 'file' name")
        try:
            name = self.files.get(file).name
        except FileRejected as err:
            raise CommandError(err.code, str(err)) from err
        self.queue.append(name)
        self._mark_dirty()
        return {"queue": list(self.queue)}

    async def _cmd_pause(self, req: CommandRequest) -> dict[str, Any]:
        return self._wrap(self.pause)

    async def _cmd_resume(self, req: CommandRequest) -> dict[str, Any]:
        self._current(JobState.PAUSED)
        await self._authorise("resume", req)
        return self._wrap(self.resume)

    async def _authorise(self, action: str, req: CommandRequest) -> None:
        """The presence rule, answered by the access capability (which records it);
        pause, cancel and e-stop never ask."""
        if self.require_power:
            await self.commands.call(
                "authorise_start", {"action": action, "origin": req.origin, "actor": req.actor}
            )

    async def _cmd_cancel(self, req: CommandRequest) -> dict[str, Any]:
        try:
            job = await self.cancel()
        except JobStateError as err:
            raise CommandError("bad_state", str(err)) from err
        return job.as_dict(time.monotonic())

    async def _cmd_estop(self, req: CommandRequest) -> dict[str, Any]:
        self.emergency_stop(req.actor or req.origin)
        return {"state": self.state.value}

    async def _cmd_reset(self, req: CommandRequest) -> dict[str, Any]:
        self.reset()
        return {"state": self.state.value}

    async def _cmd_send(self, req: CommandRequest) -> dict[str, Any]:
        line = req.args.get("line")
        limit = line_limit(self.serial, self.machine.firmware)
        if not isinstance(line, str) or not line.strip() or len(line) > limit:
            raise CommandError("bad_args", "send_gcode needs a 'line' of G-code")
        if self.job is not None and not self.job.finished:
            raise CommandError("busy", "a job is running; console commands wait until it ends")
        try:
            cleaned = clean_line(line, firmware=self.machine.firmware)
        except GcodeError as err:
            raise CommandError("bad_gcode", str(err)) from err
        if not cleaned:
            raise CommandError("bad_args", "the line is empty after removing comments")
        await self._authorise("gcode", req)  # a console move is motion like a job
        self._require_connected().send_command(cleaned)
        return {"sent": cleaned}

    def _wrap(self, fn: Callable[[], Job]) -> dict[str, Any]:
        try:
            return fn().as_dict(time.monotonic())
        except JobStateError as err:
            raise CommandError("bad_state", str(err)) from err
