"""Assembles the daemon from its configuration: bus, command router, supervisor, services.

The :class:`Gateway` holds each capability's service; the web app is given the
whole :class:`Gateway` and uses only each service's public read surface plus the
command router.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gateway
from gateway.access.service import AccessService
from gateway.access.store import AccessStore
from gateway.bus import EventBus
from gateway.camera.service import CameraService
from gateway.commands import CommandRouter
from gateway.config import GatewayConfig
from gateway.ledger import store as ledger_store
from gateway.ledger.service import LedgerService
from gateway.machine import checkpoint, records
from gateway.machine.service import MachineService
from gateway.machine.sim.service import SimulatorService
from gateway.metering.service import MeteringService
from gateway.ops.notify import Notifier, SystemdService
from gateway.slicer import records as slicer_records
from gateway.slicer.advertise import Advertiser, should_advertise
from gateway.slicer.service import SlicerService
from gateway.store import prepare, schema_step
from gateway.supervisor import Supervisor
from gateway.telemetry.outbox import Outbox
from gateway.telemetry.service import TelemetryService
from gateway.web import auth
from gateway.web.server import WebService

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    config: GatewayConfig
    bus: EventBus
    commands: CommandRouter
    supervisor: Supervisor
    machine: MachineService
    simulator: SimulatorService | None = None
    access: AccessService | None = None
    telemetry: TelemetryService | None = None
    camera: CameraService | None = None
    metering: MeteringService | None = None
    ledger: LedgerService | None = None
    slicer: SlicerService | None = None
    web: WebService | None = None

    @property
    def web_url(self) -> str:
        return self.web.url if self.web is not None else ""


def build(config: GatewayConfig) -> Gateway:
    """Create every service (constructors only validate; nothing is opened yet)."""
    from gateway.web.app import create_app

    bus = EventBus()
    commands = CommandRouter()
    supervisor = Supervisor(bus)
    simulator: SimulatorService | None = None
    port: Callable[[], str] | None = None
    dtr_reset: Callable[[], None] | None = None
    if config.simulation.enabled:
        simulator = SimulatorService(config.machine.firmware, config.simulation, commands)
        supervisor.add(simulator)
        port = simulator.port_path
        dtr_reset = simulator.power_cycle

    machine = MachineService(
        machine=config.machine,
        serial=config.serial,
        jobs=config.jobs,
        db_path=config.storage.database,
        files_dir=config.storage.files_dir,
        bus=bus,
        commands=commands,
        port=port,
        dtr_reset=dtr_reset,
        require_power=config.access.enabled,
        resume=config.resume,
    )
    gw = Gateway(config, bus, commands, supervisor, machine, simulator)
    if config.access.enabled:
        # Access starts before the machine so the relay is known to be off first.
        gw.access = AccessService(
            config.access,
            machine_id=config.machine.id,
            db_path=config.storage.database,
            bus=bus,
            commands=commands,
        )
        supervisor.add(gw.access)
    supervisor.add(machine)
    if config.telemetry.enabled:
        gw.telemetry = TelemetryService(
            config.telemetry,
            machine_id=config.machine.id,
            machine_name=config.machine.name,
            db_path=config.storage.database,
            state_dir=config.storage.state_dir,
            bus=bus,
            commands=commands,
            version=gateway.__version__,
        )
        supervisor.add(gw.telemetry)
    if config.camera.enabled:
        gw.camera = CameraService(config.camera, config.storage.state_dir, bus, commands)
        supervisor.add(gw.camera)
    if config.metering.enabled and config.ledger.enabled:
        # Before metering, so that it listens before the first usage record is closed.
        gw.ledger = LedgerService(
            config.ledger,
            machine_id=config.machine.id,
            db_path=config.storage.database,
            state_dir=config.storage.state_dir,
            bus=bus,
            commands=commands,
            telemetry=config.telemetry,
        )
        supervisor.add(gw.ledger)
    if config.metering.enabled:
        gw.metering = MeteringService(
            config.metering,
            bus=bus,
            commands=commands,
            simulation=config.simulation.enabled,
            telemetry=config.telemetry,
            machine_id=config.machine.id,
        )
        supervisor.add(gw.metering)
    if config.slicer.enabled:
        gw.slicer = SlicerService(
            config.slicer,
            db_path=config.storage.database,
            bus=bus,
            commands=commands,
            files=machine.files,
            simulated_usb=(config.slicer.usb_root or config.storage.state_dir / "usb-sim")
            if config.simulation.enabled
            else None,
        )
        supervisor.add(gw.slicer)
    gw.web = WebService(config.web, create_app(gw))
    supervisor.add(gw.web)
    if config.slicer.enabled and should_advertise(config.slicer.zeroconf, config.web.host):
        web = gw.web
        supervisor.add(
            Advertiser(
                machine_name=config.machine.name,
                machine_id=config.machine.id,
                kind=config.machine.kind,
                host=config.web.host,
                port=lambda: web.port,
            )
        )
    # Last, so that READY=1 goes to systemd once every other service has started.
    notifier = Notifier.from_environ(os.environ)
    if notifier is not None:
        supervisor.add(SystemdService(notifier, bus))
    return gw


def prepare_database(config: GatewayConfig) -> None:
    """Create every capability's tables in the shared file, one after another.

    Runs before the supervisor starts any service, so no two services ever
    change the schema at once (SQLite answers that race with an immediate
    "database is locked").  Each step is the capability's own idempotent
    schema code; the services still run it again, then as a no-op.
    """
    steps: list[Callable[[Path], object]] = [
        schema_step(records.ensure_schema),
        schema_step(auth.ensure_schema),
        schema_step(lambda db: checkpoint.ensure_schema(db.conn)),
    ]
    if config.slicer.enabled:
        steps.append(schema_step(slicer_records.ensure_schema))
    if config.metering.enabled and config.ledger.enabled:
        steps.append(schema_step(lambda db: db.conn.executescript(ledger_store.SCHEMA)))
    if config.access.enabled:
        steps.append(lambda path: AccessStore.open(path, config.machine.id).close())
    if config.telemetry.enabled:
        telemetry = config.telemetry
        steps.append(
            lambda path: Outbox(
                path,
                max_events=telemetry.outbox_max_events,
                max_age=telemetry.outbox_max_age.total_seconds(),
            ).close()
        )
    prepare(config.storage.database, steps)


async def run(config: GatewayConfig, *, announce: Callable[[Gateway], None] | None = None) -> None:
    """Run until SIGTERM/SIGINT; ``announce`` is called once every service has started."""
    try:
        await asyncio.to_thread(prepare_database, config)
    except Exception as err:
        # The services open the file themselves and report (and retry) what is wrong;
        # the relay and the web UI do not wait on the database being right.
        log.warning("could not prepare the database before start-up: %s", err)
    gw = build(config)
    await gw.supervisor.run_until_signalled(
        on_started=None if announce is None else lambda: announce(gw)
    )
