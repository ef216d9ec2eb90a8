"""Runs a simulated controller on a pseudo-terminal inside the daemon (simulation mode)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.config import SimulationConfig
from gateway.machine.serial_port import SerialPortError
from gateway.machine.sim.firmware import SimulatedFirmware
from gateway.machine.sim.grbl import SimulatedGrbl
from gateway.machine.sim.link import Faults
from gateway.machine.sim.marlin import SimulatedMarlin
from gateway.machine.sim.pty import PtyController
from gateway.supervisor import Service

log = logging.getLogger(__name__)

#: The simulated controller's recorded history (lines executed, status reports,
#: real-time bytes) is cut to this many entries every HISTORY_TRIM_SECONDS.
HISTORY_KEEP = 1000
HISTORY_TRIM_SECONDS = 10.0


def make_firmware(firmware: str, *, time_scale: float = 0.0) -> SimulatedFirmware:
    if firmware == "grbl":
        return SimulatedGrbl(time_scale=time_scale)
    return SimulatedMarlin(time_scale=time_scale)


class SimulatorService(Service):
    """The simulated Marlin or GRBL controller the machine service connects to."""

    name = "simulator"

    def __init__(
        self, firmware: str, config: SimulationConfig, commands: CommandRouter | None = None
    ) -> None:
        super().__init__()
        self.firmware = firmware
        self.config = config
        self.controller: PtyController | None = None
        if commands is not None:
            commands.register("sim_controller", self._cmd_controller)

    @property
    def path(self) -> str:
        return self.port_path()

    def port_path(self) -> str:
        if self.controller is None:
            raise SerialPortError("the simulated controller is not running")
        if not self.controller.plugged:
            raise SerialPortError(
                "the simulated controller is unplugged; plug it back in with "
                "`gateway controller plug`"
            )
        return self.controller.path

    async def _cmd_controller(self, req: CommandRequest) -> dict[str, Any]:
        """``{"action": "unplug" | "plug"}``: pull or put back the simulated
        controller's USB cable (the pty goes away and comes back)."""
        action = req.args.get("action")
        if action not in ("plug", "unplug"):
            raise CommandError("bad_action", "action must be 'plug' or 'unplug'")
        controller = self.controller
        if controller is None:
            raise CommandError(
                "not_running", "the simulated controller is not running; try again in a moment"
            )
        if action == "unplug":
            if controller.plugged:
                log.warning("simulated controller unplugged from %s", controller.path)
            controller.unplug()
        else:
            if not controller.plugged:
                controller.replug()
                log.warning("simulated controller plugged back in on %s", controller.path)
        return {"plugged": controller.plugged, "path": controller.path}

    def power_cycle(self) -> None:
        """Reset the simulated board, as DTR does when a real port is reopened."""
        if self.controller is not None:
            self.controller.power_cycle()

    async def run(self) -> None:
        fw = make_firmware(self.firmware, time_scale=self.config.time_scale)
        faults = Faults(corrupt=self.config.error_rate, seed=0)
        async with PtyController(fw, baud=self.config.baud, faults=faults) as controller:
            self.controller = controller
            log.info("simulated %s controller on %s", self.firmware, controller.path)
            self.ready.set()
            try:
                async with asyncio.TaskGroup() as tasks:
                    if self.config.executed_log is not None:
                        tasks.create_task(self._record(fw, self.config.executed_log))
                    tasks.create_task(self._trim(fw))
            finally:
                self.controller = None

    @staticmethod
    async def _trim(fw: SimulatedFirmware) -> None:
        while True:
            # The model records every line for tests; here it runs for days.
            await asyncio.sleep(HISTORY_TRIM_SECONDS)
            fw.forget_history(HISTORY_KEEP)

    @staticmethod
    async def _record(fw: SimulatedFirmware, path: Path) -> None:
        """Append what the firmware executes to ``path``, a few times a second, so it
        survives the daemon being killed (the tests' view of the machine from outside).
        What is written is taken out of the firmware's history, so trimming the history
        never drops a line before it reached the file."""
        with path.open("a", encoding="latin-1") as fh:
            while True:
                done = fw.executed
                count = len(done)
                if count:
                    fh.write("".join(line + "\n" for line in done[:count]))
                    fh.flush()
                    del done[:count]
                await asyncio.sleep(0.05)
