"""The metering service: polls the meter, accounts usage per session and job, prices it.

Data flow::

    meter ──read──> integrator ──interval──> usage book <── session/job events (bus)
                                                 │
                          SessionUsageClosed / JobUsageClosed / UsageUpdated (bus)

* The sampler reads the meter every ``sample_interval`` seconds, and once more at
  every session or job boundary so that energy is split where the session
  ended, not at the next tick.  Failed reads are counted, logged once per
  outage and published as ``MeterProblem``; the session goes on.
* Metering is optional: the relay and the session rules never depend on it.
* ``usage`` (command router; the web API and MQTT ``cmd/usage`` call it) answers
  the running session's usage and cost and the last closed session's total.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from gateway.access.events import SessionEnded, SessionStarted
from gateway.backoff import Backoff
from gateway.bus import Event, EventBus, Subscription
from gateway.commands import CommandRequest, CommandRouter
from gateway.machine.events import JobFinished, JobPaused, JobProgress, JobResumed, JobStarted
from gateway.metering import summary
from gateway.metering.config import MeteringConfig
from gateway.metering.errors import MeterError
from gateway.metering.events import (
    JobUsageClosed,
    MeterProblem,
    SessionUsageClosed,
    UsageUpdated,
)
from gateway.metering.integrator import EnergyIntegrator, Interval, Sample
from gateway.metering.meters.base import Meter, Reading
from gateway.metering.meters.pzem import PzemMeter
from gateway.metering.meters.pzem_twin import PzemTwin
from gateway.metering.usage import JobUsage, SessionUsage, UsageBook
from gateway.supervisor import Service
from gateway.telemetry.config import TelemetryConfig

log = logging.getLogger(__name__)

USAGE_EVENT_INTERVAL = 10.0  # seconds between UsageUpdated events during a session

BOOK_EVENTS = (
    SessionStarted,
    SessionEnded,
    JobStarted,
    JobPaused,
    JobResumed,
    JobProgress,
    JobFinished,
)


class MeteringService(Service):
    """Runs the meter and the usage book; see the module docstring."""

    name = "metering"
    optional = True

    def __init__(
        self,
        config: MeteringConfig,
        *,
        bus: EventBus,
        commands: CommandRouter,
        simulation: bool = False,
        telemetry: TelemetryConfig | None = None,
        machine_id: str = "machine-1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.config = config
        self._bus = bus
        self._simulation = simulation
        self._telemetry = telemetry
        self._machine_id = machine_id
        self._clock = clock
        self.integrator = EnergyIntegrator(max_gap=config.max_gap, max_power_w=config.max_power_w)
        self.book = UsageBook(
            busy_source=config.busy_source,
            busy_threshold_w=config.busy_threshold_w,
            grams_per_mm=config.material.grams_per_mm,
        )
        self.twin: PzemTwin | None = None
        self.meter: Meter | None = None
        self.last_reading: Reading | None = None
        self.last_session: dict[str, Any] | None = None
        self._read_lock = asyncio.Lock()
        self._problem_since: str | None = None
        self._mismatch_reported = False
        self._last_usage_event = -math.inf
        commands.register("usage", self._usage_command)

    # ------------------------------------------------------------------ lifetime

    async def run(self) -> None:
        if not self.config.enabled:
            self.ready.set()
            return
        sub: Subscription[Event] = self._bus.subscribe(*BOOK_EVENTS, maxsize=1000)
        try:
            async with self._meter() as meter, asyncio.TaskGroup() as tg:
                self.meter = meter
                if self.twin is not None:
                    tg.create_task(self.twin.follow(self._bus))
                tg.create_task(self._sample_loop())
                tg.create_task(self._event_loop(sub))
                self.ready.set()
        finally:
            sub.close()
            self.meter = None
            # Stopping: events already queued still count, then what is open is closed
            # here, because the ledger (stopped after this service) must still get it.
            while (event := sub.get_nowait()) is not None:
                self.handle(event)
            self.close_open(reason="shutdown")

    @contextlib.asynccontextmanager
    async def _meter(self) -> AsyncIterator[Meter]:
        c = self.config
        if c.meter == "simulated":
            async with PzemTwin(c.simulated_load, address=c.address) as twin:
                self.twin = twin
                try:
                    yield PzemMeter(twin.path, address=c.address, timeout=c.read_timeout)
                finally:
                    self.twin = None
            return
        if c.meter == "pzem":
            yield PzemMeter(c.port, address=c.address, timeout=c.read_timeout)
            return
        from gateway.metering.meters.networked import networked_meter

        async with networked_meter(c, self._telemetry, self._machine_id) as meter:
            yield meter

    # ------------------------------------------------------------------ sampling

    async def _sample_loop(self) -> None:
        assert self.meter is not None
        meter = self.meter
        backoff = Backoff(initial=self.config.sample_interval, maximum=30.0)
        opened = False
        try:
            while True:
                if not opened:
                    try:
                        await meter.open()
                        opened = True
                        backoff.reset()
                    except MeterError as err:
                        self._failed(err)
                        await asyncio.sleep(backoff.next_delay())
                        continue
                await self.sample()
                await asyncio.sleep(self.config.sample_interval)
        finally:
            if opened:
                await meter.close()

    async def sample(self, boundary: Event | None = None) -> None:
        """Read the meter once and account the interval it closes.

        With a ``boundary`` (a session or job starting or ending), the interval is
        split at the event's time: the part before it is accounted, then the event,
        then the rest, so a session's energy ends where the session ended and not
        where the next reading happened to be taken.
        """
        interval = await self._read()
        if (
            interval is not None
            and boundary is not None
            and interval.t0 < boundary.ts < interval.t1
        ):
            share = (boundary.ts - interval.t0) / interval.seconds
            self.book.energy(
                interval.t0, boundary.ts, interval.wh * share, estimated=interval.estimated
            )
            self.handle(boundary)
            self.book.energy(
                boundary.ts, interval.t1, interval.wh * (1 - share), estimated=interval.estimated
            )
        else:
            if interval is not None:
                self.book.energy(
                    interval.t0, interval.t1, interval.wh, estimated=interval.estimated
                )
            if boundary is not None:
                self.handle(boundary)
        self._publish_progress()

    async def _read(self) -> Interval | None:
        """One reading through the integrator; failures are counted, never raised."""
        meter = self.meter
        if meter is None:
            return None
        async with self._read_lock:
            try:
                reading = await meter.read()
            except MeterError as err:
                self._failed(err)
                return None
            now = self._clock()
        self.last_reading = reading
        before = self.integrator.stats.rejected
        interval = self.integrator.add(Sample(now, reading.power_w, reading.energy_wh))
        if self.integrator.stats.rejected != before:
            self._failed(
                MeterError(
                    "rejected",
                    f"the meter reported {reading.power_w} W, outside 0 to "
                    f"{self.config.max_power_w} W (metering.max_power_w)",
                )
            )
            return None
        if self._problem_since is not None:
            log.info("metering: the meter answers again (%s)", meter.kind)
            self._problem_since = None
        if self.integrator.mismatch and not self._mismatch_reported:
            self._mismatch_reported = True
            s = self.integrator.stats
            log.warning(
                "metering: the meter's counter (%.1f Wh) and its integrated power (%.1f Wh) "
                "disagree by more than 5 %%; check the meter (a second load on its circuit, "
                "a failing current transformer)",
                s.counted_wh,
                s.integrated_wh,
            )
        if interval is not None and interval.estimated:
            log.info("metering: %.0f s of energy estimated (%s)", interval.seconds, interval.reason)
        return interval

    def _failed(self, err: MeterError) -> None:
        self.integrator.failed(err.reason)
        count = self.integrator.stats.failures.get(err.reason, 0)
        # Once per outage (or change of cause): a meter unplugged for a day must not
        # fill the log and the telemetry outbox with one line per sample.
        if self._problem_since != err.reason:
            log.warning("metering: %s (the session goes on; energy will be estimated)", err)
            self._problem_since = err.reason
            self._bus.publish(MeterProblem(reason=err.reason, message=str(err), count=count))

    # ------------------------------------------------------------------ events

    async def _event_loop(self, sub: Subscription[Event]) -> None:
        async for event in sub:
            if isinstance(event, SessionEnded | JobFinished | SessionStarted | JobStarted):
                await self.sample(boundary=event)  # split the energy where it happened
            else:
                self.handle(event)

    def handle(self, event: Event) -> None:
        """Feed one session/job event to the book; publish what it closes."""
        book, t = self.book, event.ts
        closed: list[SessionUsage | JobUsage | None] = []
        if isinstance(event, SessionStarted):
            closed.append(
                book.session_started(
                    t,
                    session_id=event.session_id,
                    member_id=event.member_id,
                    member_name=event.member_name,
                    role=event.role,
                    inducted_by=event.inducted_by,
                )
            )
        elif isinstance(event, SessionEnded):
            closed.append(book.session_ended(t, reason=event.reason))
        elif isinstance(event, JobStarted):
            closed.append(
                book.job_started(
                    t,
                    job_id=event.job_id,
                    file=event.file,
                    lines=event.lines,
                    filament_mm=event.filament_mm,
                )
            )
        elif isinstance(event, JobPaused | JobResumed):
            book.job_paused(t, job_id=event.job_id, paused=isinstance(event, JobPaused))
        elif isinstance(event, JobProgress):
            book.job_progress(t, job_id=event.job_id, lines_done=event.lines_done)
        elif isinstance(event, JobFinished):
            closed.append(
                book.job_finished(
                    t, job_id=event.job_id, outcome=event.outcome, lines_done=event.lines_done
                )
            )
        for record in closed:
            if isinstance(record, SessionUsage):
                self._publish_session(record)
            elif isinstance(record, JobUsage):
                self._publish_job(record)

    def close_open(self, *, reason: str) -> None:
        """Close the open job (``interrupted``) and session, and publish both."""
        now = self._clock()
        job = self.book.current_job()
        if job is not None:
            closed_job = self.book.job_finished(
                now, job_id=job.job_id, outcome="interrupted", lines_done=job.lines_done
            )
            if closed_job is not None:
                self._publish_job(closed_job)
        session = self.book.session_ended(now, reason=reason)
        if session is not None:
            self._publish_session(session)

    def _publish_session(self, s: SessionUsage) -> None:
        rules = self.config.prices
        quote = summary.session_quote(s, rules)
        self.last_session = summary.session_view(s, rules)
        self._bus.publish(
            SessionUsageClosed(
                session_id=s.session_id,
                member_id=s.member_id,
                member_name=s.member_name,
                role=s.role,
                inducted_by=s.inducted_by,
                started=s.started,
                ended=s.ended if s.ended is not None else s.started,
                reason=s.reason or "",
                powered_seconds=round(s.powered_seconds, 3),
                busy_seconds=round(s.busy_seconds, 3),
                idle_seconds=round(s.idle_seconds, 3),
                energy_wh=round(s.energy_wh, 4),
                estimated=s.estimated,
                grams=round(s.grams, 3),
                jobs=s.jobs,
                cost=f"{quote.total:.2f}",
                currency=quote.currency,
                free_minutes=round(quote.free_minutes, 3),
            )
        )

    def _publish_job(self, j: JobUsage) -> None:
        quote = summary.job_quote(j, self.config.prices)
        self._bus.publish(
            JobUsageClosed(
                job_id=j.job_id,
                file=j.file,
                outcome=j.outcome,
                started=j.started,
                ended=j.ended if j.ended is not None else j.started,
                busy_seconds=round(j.busy_seconds, 3),
                energy_wh=round(j.energy_wh, 4),
                estimated=j.estimated,
                grams=round(j.grams, 3),
                lines_done=j.lines_done,
                lines_total=j.lines_total,
                session_id=j.session_id,
                member_id=j.member_id,
                cost=f"{quote.total:.2f}",
                currency=quote.currency,
            )
        )

    def _publish_progress(self) -> None:
        s = self.book.current_session()
        if s is None:
            return
        now = self._clock()
        if now - self._last_usage_event < USAGE_EVENT_INTERVAL:
            return  # screens poll GET /api/metering/usage; this is for MQTT subscribers
        self._last_usage_event = now
        view = summary.session_view(s, self.config.prices)
        self._bus.publish(
            UsageUpdated(
                session_id=s.session_id,
                minutes=view["minutes"],
                energy_wh=round(s.energy_wh, 3),
                grams=view["grams"],
                cost=view["cost"],
                currency=view["currency"],
                text=view["text"],
                estimated=s.estimated,
            )
        )

    # ------------------------------------------------------------------ read surface

    def usage(self) -> dict[str, Any]:
        """The running session so far, the last closed one, and the meter's health."""
        self.book.advance(self._clock())
        s = self.book.current_session()
        reading = self.last_reading
        stats = self.integrator.stats
        return {
            "enabled": self.config.enabled,
            "meter": self.config.meter,
            "session": None if s is None else summary.session_view(s, self.config.prices),
            "last_session": self.last_session,
            "power_w": None if reading is None else reading.power_w,
            "meter_ok": self._problem_since is None and reading is not None,
            "failures": dict(stats.failures),
            "estimated_seconds": round(stats.estimated_seconds, 1),
            "counter_resets": stats.resets,
            "counter_mismatch": self.integrator.mismatch,
        }

    async def _usage_command(self, request: CommandRequest) -> dict[str, Any]:
        return self.usage()
