"""The systemd notification protocol (``sd_notify``) without extra dependencies.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET``, a unix datagram socket
(a path, or an abstract name starting with ``@``).  Each datagram is a few
``KEY=VALUE`` lines: ``READY=1`` once the daemon serves, ``STATUS=...`` for
``systemctl status``, ``WATCHDOG=1`` at least every ``$WATCHDOG_USEC``
microseconds when ``WatchdogSec=`` is set, and ``STOPPING=1`` when shutting
down.  Reference: sd_notify(3) and "The Watchdog" in systemd.service(5).

:class:`SystemdService` sends them from the event loop, so a loop that hangs
stops the heartbeat and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from gateway.bus import Event, EventBus, Subscription
from gateway.machine.events import MachineStatus
from gateway.supervisor import Service, ServiceFailed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notifier:
    """Sends notifications to one ``$NOTIFY_SOCKET``; never raises."""

    address: str
    #: Seconds between ``WATCHDOG=1`` heartbeats (half of ``$WATCHDOG_USEC``), or None.
    watchdog_interval: float | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Notifier | None:
        """The notifier systemd asked for, or None when not started by systemd."""
        address = environ.get("NOTIFY_SOCKET", "")
        if not address:
            return None
        interval: float | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        # WATCHDOG_PID names the process the watchdog is meant for (sd_watchdog_enabled(3)).
        pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            interval = int(usec) / 2_000_000
        return cls(address, interval)

    def _socket_address(self) -> str | bytes:
        if self.address.startswith("@"):
            return b"\0" + self.address[1:].encode()
        return self.address

    def send(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines, e.g. ``send(READY=1, STATUS="idle")``."""
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, self._socket_address())
        except OSError as err:
            log.warning("could not notify systemd at %s: %s", self.address, err)
            return False
        return True


def describe(status: MachineStatus) -> str:
    """One line for ``systemctl status``: the machine's state and its job."""
    text = f"{status.machine_id}: {status.state}"
    job = status.job
    if job:
        name = job.get("name") or job.get("filename") or "job"
        progress = job.get("progress")
        text += f", {name}"
        if isinstance(progress, int | float):
            text += f" {progress * 100 if progress <= 1 else progress:.0f}%"
    if status.message:
        text += f" ({status.message})"
    return text


class SystemdService(Service):
    """Tells systemd the daemon is ready, what the machine is doing, and that the
    event loop is alive.

    Added to the supervisor last, so its :meth:`run` starts once every other
    service has started (or failed once): that is when ``READY=1`` goes out.
    """

    name = "systemd"
    optional = True

    def __init__(self, notifier: Notifier, bus: EventBus) -> None:
        super().__init__()
        self.notifier = notifier
        self.bus = bus

    async def run(self) -> None:
        with self.bus.subscribe(MachineStatus, ServiceFailed) as events:
            self.notifier.send(READY=1, STATUS="running")
            self.ready.set()
            log.info(
                "systemd notified: ready%s",
                ""
                if self.notifier.watchdog_interval is None
                else f", watchdog heartbeat every {self.notifier.watchdog_interval:.1f} s",
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    if self.notifier.watchdog_interval is not None:
                        tg.create_task(self._heartbeat(self.notifier.watchdog_interval))
                    tg.create_task(self._report(events))
            finally:
                self.notifier.send(STOPPING=1, STATUS="stopping")

    async def _heartbeat(self, interval: float) -> None:
        while True:
            self.notifier.send(WATCHDOG=1)
            await asyncio.sleep(interval)

    async def _report(self, events: Subscription[Event]) -> None:
        last = ""
        async for event in events:
            if isinstance(event, MachineStatus):
                text = describe(event)
            elif isinstance(event, ServiceFailed):
                text = f"service {event.service} failed: {event.error}"
            else:
                continue
            if text != last:
                self.notifier.send(STATUS=text)
                last = text
