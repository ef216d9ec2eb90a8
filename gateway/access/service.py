"""The access service: badge readers, interlocks and machine events in; the relay out.

It wires the pure pieces together: readers produce :class:`BadgeRead` s, which
:func:`~gateway.access.members.decide` judges against the access list; those
decisions, machine events, interlocks and a one-second tick drive the
:class:`~gateway.access.session.AccessMachine`, and the service carries out the
effects it returns: the relay and lights at once, records in the store, events
on the bus.

Store writes go, in order, to one worker thread (a session's close can never
overtake its open); reads for the web UI use :func:`asyncio.to_thread`.  When
``run`` ends for any reason the relay goes off and an open session is closed
with reason ``shutdown``.  No command can switch the relay on: only a badge can.

The presence rule is answered here for the machine capability, through the
``authorise_start`` command: a job starts or resumes only while a member is in
session (see :func:`~gateway.access.session.may_start`), and each allowed start
is recorded with the caller and the member present.  Every new access list is
checked against the open session (live re-check); ``cut_power`` is the admin's
"cut now" for a job that would otherwise finish.  Other capabilities read a
member's standing (suspended, expired, ...) through the read-only
``member_standing`` command (see :mod:`gateway.access.standing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from gateway.access import policy_effects
from gateway.access import session as core
from gateway.access.config import AccessConfig, load_site_secret
from gateway.access.errors import AccessError
from gateway.access.events import (
    AccessDenied,
    AccessListReceived,
    AccessListUpdated,
    AccessState,
    LockoutChanged,
    NextBooking,
    RelayChanged,
    SessionEnded,
    SessionStarted,
    SupervisionChanged,
)
from gateway.access.grants import GrantPusher, announce_pending
from gateway.access.interlocks import Interlock
from gateway.access.members import (
    AccessList,
    Decision,
    Denied,
    Role,
    badge_hash,
    decide,
)
from gateway.access.outputs import BuzzerPattern, Outputs
from gateway.access.pins import make_pin_factory
from gateway.access.policy_commands import register_policy_commands
from gateway.access.policy_state import PolicyState, grants_from_records
from gateway.access.readers.base import BadgeRead, BadgeReader
from gateway.access.readers.config import open_reader
from gateway.access.readers.simulated import SimulatedReader
from gateway.access.sources import (
    AccessListSource,
    ListFailed,
    ListFetched,
    SourceResult,
    make_source,
)
from gateway.access.standing import standing
from gateway.access.store import AccessStore, LockoutRecord
from gateway.backoff import Backoff
from gateway.bus import Event, EventBus, Subscription
from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.machine.events import (
    EmergencyStop,
    JobFinished,
    JobPaused,
    JobResumed,
    JobStarted,
    MachineStatus,
)
from gateway.supervisor import Service

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 60.0
_IDLE_MACHINE_STATES = frozenset({"idle", "disconnected", "error"})

StoreWrite = Callable[[AccessStore], object]


def _wall() -> float:
    return time.time()


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


class AccessService(Service):
    """Badge access for one machine.  The constructor registers commands; ``run`` does I/O."""

    name = "access"

    def __init__(
        self,
        config: AccessConfig,
        machine_id: str,
        db_path: Path,
        bus: EventBus,
        commands: CommandRouter,
    ) -> None:
        super().__init__()
        self.config = config
        self.machine_id = machine_id
        self.db_path = db_path
        self.bus = bus
        self.policy = PolicyState(machine_id, config.policy)
        self.machine = core.AccessMachine(config.rules, policy=self.policy.session_policy())
        self._store: AccessStore | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._outputs: Outputs | None = None
        self._readers: dict[str, BadgeReader] = {}
        self._source: AccessListSource | None = None
        self._secret = b""
        self._list = AccessList.empty()
        self._effective = self._list
        self._list_source: str | None = None
        self._list_error: str | None = None
        self._next_booking: NextBooking | None = None
        self._notice: str | None = None
        self._supervision: SupervisionChanged | None = None
        self._pusher = GrantPusher(config.policy.grants, machine_id)
        self._session_id: str | None = None
        self._session_since: float | None = None
        self._job_session: str | None = None
        self._last_denial: str | None = None
        self._last_state: AccessState | None = None
        self._buzzes: asyncio.Queue[BuzzerPattern] = asyncio.Queue(maxsize=4)
        self._commands = commands
        self._job_stops: asyncio.Queue[str] = asyncio.Queue(maxsize=4)
        # Subscribed now, before telemetry connects, so the retained list is not missed.
        # Only the newest list matters: one waiting at most (the bus drops the older),
        # so a burst of large payloads cannot pile up in memory.
        self._list_events: Subscription[AccessListReceived] | None = (
            bus.subscribe(AccessListReceived, maxsize=1)
            if config.enabled and config.source.type == "mqtt"
            else None
        )
        for name, handler in (
            ("lockout", self._cmd_lockout),
            ("clear_lockout", self._cmd_clear_lockout),
            ("refresh_access_list", self._cmd_refresh),
            ("badge_out", self._cmd_badge_out),
            ("access_status", self._cmd_status),
            ("member_standing", self._cmd_member_standing),
            ("authorise_start", self._cmd_authorise_start),
            ("cut_power", self._cmd_cut_power),
        ):
            commands.register(name, handler)
        if config.enabled and config.simulated_readers:
            commands.register("present_badge", self._cmd_present_badge)
        register_policy_commands(self, commands)
        if config.enabled and config.rules.remote_start == "always":
            log.warning(
                'access.rules.remote_start = "always": jobs may start from the web API or '
                "MQTT with nobody badged in at the machine; use \"with_session\" unless "
                "someone is always watching it"
            )

    # -- lifetime ------------------------------------------------------------------------

    async def run(self) -> None:
        if not self.config.enabled:
            log.info("access control is disabled in the configuration")
            self.ready.set()
            await asyncio.Future()  # serve commands until cancelled
        self._secret = await asyncio.to_thread(load_site_secret, self.config)
        store = await asyncio.to_thread(AccessStore.open, self.db_path, self.machine_id)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="access-store")
        try:
            await self._restore(store)
            self._store = store
            factory = make_pin_factory(self.config.gpio, state_dir=self.db_path.parent)
            outputs = Outputs.from_config(self.config.outputs, factory)
            self._outputs = outputs
            try:
                async with contextlib.AsyncExitStack() as stack:
                    readers = [
                        await stack.enter_async_context(open_reader(rc, factory))
                        for rc in self.config.readers
                    ]
                    interlocks = [
                        await stack.enter_async_context(Interlock(ic, pin_factory=factory))
                        for ic in self.config.interlocks
                    ]
                    machine_events = stack.enter_context(
                        self.bus.subscribe(
                            JobStarted,
                            JobFinished,
                            JobPaused,
                            JobResumed,
                            EmergencyStop,
                            MachineStatus,
                        )
                    )
                    meta = await asyncio.to_thread(store.list_meta)
                    etag = meta.etag if meta.source and meta.source.startswith("http:") else None
                    self._source = make_source(
                        self.config.source, self._secret, etag=etag, subscription=self._list_events
                    )
                    self._readers = {r.name: r for r in readers}
                    for interlock in interlocks:
                        if interlock.tripped:
                            self._feed(
                                core.InterlockTripped(
                                    interlock.name, interlock.kind, time.monotonic()
                                )
                            )
                    outputs.show(self.machine.snapshot.indicator)
                    self._publish_state()
                    self.ready.set()
                    log.info(
                        "access control ready: %d reader(s), %d member(s) in the list",
                        len(readers),
                        len(self._list),
                    )
                    async with asyncio.TaskGroup() as tg:
                        for reader in readers:
                            tg.create_task(self._read_badges(reader), name=f"reader:{reader.name}")
                        for interlock in interlocks:
                            tg.create_task(self._watch_interlock(interlock))
                        tg.create_task(self._watch_machine(machine_events))
                        tg.create_task(self._tick())
                        tg.create_task(self._follow_source(self._source))
                        tg.create_task(self._play_buzzes(outputs))
                        if self._pusher.enabled:
                            tg.create_task(self._pusher.run(store), name="grant-webhook")
                        tg.create_task(
                            announce_pending(
                                store,
                                self.bus,
                                self.machine_id,
                                self.config.policy.grants.resend_interval,
                            )
                        )
                        tg.create_task(self._stop_unattended_jobs())
            finally:
                self._readers = {}
                self._source = None
                self._shut_down(outputs)
        finally:
            self._store = None
            if self._writer is not None:
                # Waits (milliseconds) for the last records, the shutdown close included.
                self._writer.shutdown(wait=True)
                self._writer = None
            store.close()
            gc.unfreeze()  # what was frozen with the lists may be collected again

    async def _restore(self, store: AccessStore) -> None:
        def read() -> tuple[list[str], AccessList | None, LockoutRecord | None, dict[str, Any]]:
            crashed = store.close_crashed_sessions(_wall())
            stored = store.load_access_list()
            lockout = store.load_lockout()
            grants = {
                i.member_id: (i.level, i.at)
                for i in store.unsynced_inductions()
                if i.machine_id == self.machine_id
            }
            extra = {"grants": grants, "bookings": store.bookings(), "used": store.last_used()}
            return crashed, stored, lockout, extra

        _crashed, stored, lockout, extra = await asyncio.to_thread(read)
        self.policy.grants = grants_from_records(extra["grants"])
        self.policy.set_local_bookings(extra["bookings"])
        self.policy.last_used = extra["used"]
        meta = await asyncio.to_thread(store.list_meta)
        self._list_source, self._list_error = meta.source, meta.last_error
        self._set_list(stored or AccessList.empty())
        if stored is None:
            log.warning(
                "no access list stored yet: every badge is refused until %s delivers one",
                self.config.source.type,
            )
        self.machine = core.AccessMachine(
            self.config.rules,
            lockout=core.Lockout(lockout.reason, lockout.by) if lockout else None,
            policy=self.policy.session_policy(),
        )
        self._session_id = self._job_session = None

    def _shut_down(self, outputs: Outputs) -> None:
        try:
            self._feed(core.Shutdown(time.monotonic()))
        except Exception:
            log.exception("error while ending the session at shutdown")
        finally:
            outputs.relay.off()
            outputs.close()
            self._outputs = None

    # -- the tasks -----------------------------------------------------------------------

    async def _read_badges(self, reader: BadgeReader) -> None:
        async for read in reader.reads():
            self._on_badge(read)

    async def _watch_interlock(self, interlock: Interlock) -> None:
        async for change in interlock.changes():
            now = time.monotonic()
            if change.tripped:
                log.warning("interlock %s (%s) tripped", change.name, change.kind)
                self._feed(core.InterlockTripped(change.name, change.kind, now))
            else:
                log.info("interlock %s closed again", change.name)
                self._feed(core.InterlockCleared(change.name, now))

    async def _watch_machine(self, events: Subscription[Event]) -> None:
        async for event in events:
            now = time.monotonic()
            match event:
                case JobStarted():
                    self._job_session = self._session_id
                    if (sid := self._session_id) is not None:
                        self._write(partial(AccessStore.job_started, session_id=sid))
                    self._feed(core.JobStarted(now))
                case JobFinished(seconds=seconds, filament_mm=filament):
                    if (sid := self._job_session) is not None:
                        self._write(
                            partial(
                                AccessStore.job_finished,
                                session_id=sid,
                                seconds=seconds,
                                filament_mm=filament or 0.0,
                            )
                        )
                    self._job_session = None
                    self._feed(core.JobEnded(now))
                case JobPaused():
                    self._feed(core.JobPaused(now))
                case JobResumed():
                    self._feed(core.JobResumed(now))
                case EmergencyStop(origin=origin):
                    log.warning("e-stop (%s): relay off", origin)
                    self._feed(core.EStop(now))
                case MachineStatus(state=state, job=None) if (
                    state in _IDLE_MACHINE_STATES and self.machine.snapshot.job_running
                ):
                    # A JobFinished was lost (the controller lost power, say): catch up.
                    self._job_session = None
                    self._feed(core.JobEnded(now))
                case _:
                    pass

    async def _tick(self) -> None:
        last_heartbeat = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            self._feed(core.Tick(now))
            self._publish_next_booking()
            if now - last_heartbeat >= HEARTBEAT_INTERVAL:
                last_heartbeat = now
                if (sid := self._session_id) is not None:
                    self._write(partial(AccessStore.heartbeat, session_id=sid, at=_wall()))
                # A membership that ends mid-session ends the session too.
                policy_effects.recheck(self)

    async def _follow_source(self, source: AccessListSource) -> None:
        """Apply each list a source delivers.  Nothing a source does - a hostile body, a
        bug, an exception - may end the service (its shutdown would cut the relay under
        an open session): the source is restarted after a pause and the last good list
        keeps working."""
        backoff = Backoff(initial=5.0, maximum=300.0)
        while True:
            try:
                async for result in source.updates():
                    self._on_source_result(result)
                    backoff.reset()
            except Exception as err:
                error = f"the access list source failed ({type(err).__name__}); it restarts"
                log.exception("access list source %s failed; restarting it", source.description)
                self._on_source_result(ListFailed(source.description, error))
            await asyncio.sleep(backoff.next_delay())

    def _on_source_result(self, result: SourceResult) -> None:
        if isinstance(result, ListFetched) and (
            problem := self.policy.contradiction(result.access_list)
        ):
            result = ListFailed(result.source, problem)
        match result:
            case ListFetched(access_list=access_list, source=name, etag=etag):
                log.info("access list from %s applied: %d members", name, len(access_list))
                self._set_list(access_list)
                # A large list is hundreds of thousands of long-lived objects; left in the
                # collector's generations, each full collection walks them all and stalls
                # the loop (a badge waits).  Frozen, they are skipped; they hold no
                # reference cycles, so a replaced list is still freed by reference counting.
                gc.freeze()
                self._list_source, self._list_error = name, None
                self._write(
                    partial(
                        AccessStore.save_access_list,
                        access_list=access_list,
                        source=name,
                        etag=etag,
                        fetched_at=_wall(),
                    )
                )
                self.bus.publish(AccessListUpdated(source=name, members=len(access_list), ok=True))
                policy_effects.recheck(self)
            case ListFailed(source=name, error=error):
                log.warning(
                    "access list from %s refused, keeping the last good one (%d members): %s",
                    name,
                    len(self._list),
                    error,
                )
                self._list_error = error
                self._write(
                    partial(AccessStore.record_list_error, source=name, error=error, at=_wall())
                )
                self.bus.publish(
                    AccessListUpdated(source=name, members=len(self._list), ok=False, error=error)
                )

    async def _stop_unattended_jobs(self) -> None:
        """Carry out :class:`~gateway.access.session.StopJob` through the machine's command."""
        while True:
            reason = await self._job_stops.get()
            log.warning("a job started with nobody badged in at the machine; stopping it")
            self._last_denial = reason
            self._publish_state()
            try:
                await self._commands.call("cancel", origin="internal", actor="access:presence")
            except CommandError as err:
                log.warning("could not stop the unattended job: %s", err.message)

    async def _play_buzzes(self, outputs: Outputs) -> None:
        while True:
            await outputs.play(await self._buzzes.get())

    # -- decisions and effects -------------------------------------------------------------

    def _set_list(self, access_list: AccessList) -> None:
        self._list = access_list
        self.policy.set_list_bookings(access_list.bookings)
        if confirmed := self.policy.confirmed(access_list):
            log.info("the access list now has %d induction(s) granted here", len(confirmed))
            confirm = partial(
                policy_effects.mark_confirmed, machine_id=self.machine_id, members=confirmed
            )
            self._write(confirm)
        self._effective = access_list.with_inductions(self.machine_id, self.policy.grants)
        self._publish_next_booking()

    def _publish_next_booking(self) -> None:
        # What the screens show of bookings must never stop the tick that ends sessions.
        try:
            policy_effects.publish_next_booking(self)
        except Exception:
            log.exception("could not work out the next booking; the screens may be stale")

    def _decide(self, uid: str) -> Decision:
        try:
            uid_hash = badge_hash(uid, self._secret)
        except ValueError:
            return Denied("unknown_badge", "Badge not recognised. Ask staff to register it.")
        lockout = self.machine.snapshot.lockout
        now = datetime.now(UTC)
        decision = decide(
            self._effective,
            uid_hash,
            self.machine_id,
            now,
            lockout.reason if lockout else None,
        )
        return self.policy.judge(decision, now)

    def _on_badge(self, read: BadgeRead) -> None:
        now = time.monotonic()
        decision = self._decide(read.uid)
        wait = self.machine.retry_after(now)
        if wait is not None:
            # The machine refuses without looking at the decision; neither do the logs.
            log.info(
                "badge on reader %s refused unread: rate-limited for %.0f s", read.reader, wait
            )
        else:
            outcome = (
                f"refused ({decision.reason})"
                if isinstance(decision, Denied)
                else f"granted as {decision.role.label}"
            )
            member = decision.member.id if decision.member else "unknown member"
            log.info("badge on reader %s: %s, %s", read.reader, member, outcome)
            policy_effects.note_booked_supervisor(self, decision, now)
        self._feed(core.BadgePresented(decision, now))

    def _feed(self, event: core.Input) -> list[core.Effect]:
        effects = self.machine.handle(event)
        # The relay first: nothing else may delay switching it.
        for effect in effects:
            if isinstance(effect, core.RelayOn | core.RelayOff):
                self._apply(effect)
        for effect in effects:
            if not isinstance(effect, core.RelayOn | core.RelayOff):
                self._apply(effect)
        self._publish_state()
        return effects

    def _apply(self, effect: core.Effect) -> None:
        outputs = self._outputs
        match effect:
            case core.RelayOn(reason=why):
                if outputs is None:
                    raise AccessError("the relay is not open; refusing to switch it on")
                outputs.relay.on()
                log.info("relay on (%s)", why)
                self.bus.publish(RelayChanged(on=True, reason=why))
            case core.RelayOff(reason=why):
                if outputs is not None:
                    outputs.relay.off()
                log.info("relay off (%s)", why)
                self.bus.publish(RelayChanged(on=False, reason=why))
            case core.ShowIndicator(kind=kind):
                # "denied" is shown for a moment; the indicator then goes back by itself.
                if outputs is not None:
                    outputs.show(kind)
            case core.Buzz(pattern=pattern):
                with contextlib.suppress(asyncio.QueueFull):
                    self._buzzes.put_nowait(pattern)
            case core.SessionOpened():
                self._session_opened(effect)
            case core.SessionClosed():
                self._session_closed(effect)
            case core.StopJob(reason=reason):
                with contextlib.suppress(asyncio.QueueFull):
                    self._job_stops.put_nowait(reason)
            case core.Refused(reason=refusal, message=message, member_id=member_id):
                self._last_denial = message
                self._write(
                    partial(
                        AccessStore.record_denial, reason=refusal, at=_wall(), member_id=member_id
                    )
                )
                self.bus.publish(AccessDenied(reason=refusal, message=message, member_id=member_id))
            case core.RateLimited(message=message):
                self._last_denial = message
                self.bus.publish(AccessDenied(reason="rate_limited", message=message))
            case core.InductionRecorded():
                policy_effects.induction_recorded(self, effect)
            case core.SupervisionChanged():
                policy_effects.supervision_changed(self, effect)
            case core.LockoutUpdated(active=active, reason=lockout_reason, by=by):
                log.warning(
                    "lockout %s by %s%s",
                    "set" if active else "cleared",
                    by,
                    f": {lockout_reason}" if lockout_reason else "",
                )
                if active and lockout_reason is not None:
                    self._write(
                        partial(AccessStore.save_lockout, reason=lockout_reason, by=by, at=_wall())
                    )
                else:
                    self._write(AccessStore.clear_lockout)
                self.bus.publish(LockoutChanged(active=active, reason=lockout_reason, by=by))

    def _session_opened(self, effect: core.SessionOpened) -> None:
        sid = uuid.uuid4().hex
        self._session_id, self._session_since = sid, _wall()
        self._notice, self._supervision = effect.notice, None
        self.policy.session_opened(effect.member_id, datetime.now(UTC))
        self._write(
            partial(
                AccessStore.open_session,
                session_id=sid,
                member_id=effect.member_id,
                member_name=effect.member_name,
                role=effect.role.label,
                started_at=self._session_since,
            )
        )
        self.bus.publish(
            SessionStarted(
                session_id=sid,
                member_id=effect.member_id,
                member_name=effect.member_name,
                role=effect.role.label,
                inducted_by=effect.inducted_by,
                level=effect.level,
                supervisor_id=effect.supervisor_id,
                supervisor_name=effect.supervisor_name,
                notice=effect.notice,
            )
        )

    def _session_closed(self, effect: core.SessionClosed) -> None:
        sid = self._session_id
        self._session_id = self._session_since = None
        self._notice = self._supervision = None
        if sid is None:
            return
        self._write(
            partial(
                AccessStore.close_session, session_id=sid, ended_at=_wall(), reason=effect.reason
            )
        )
        self.bus.publish(
            SessionEnded(
                session_id=sid,
                member_id=effect.member_id,
                reason=effect.reason,
                duration=round(effect.duration, 1),
                jobs=effect.jobs,
                message=effect.message,
            )
        )

    def _write(self, write: StoreWrite) -> None:
        """Queue a store write on the single writer thread, in order; errors are logged."""
        store, writer = self._store, self._writer
        if store is None or writer is None:
            log.error("access store is closed; a record was not written")
            return

        def run() -> None:
            try:
                write(store)
            except Exception:
                log.exception("could not write to the access database %s", self.db_path)

        writer.submit(run)

    def _publish_state(self) -> None:
        snap = self.machine.snapshot
        active = snap.session or snap.previous
        state = AccessState(
            state=snap.state.value,
            relay_on=snap.relay_on,
            member_id=active.member_id if active else None,
            member_name=active.member_name if active else None,
            job_running=snap.job_running,
            lockout_reason=snap.lockout.reason if snap.lockout else None,
            interlocks_tripped=tuple(sorted(snap.tripped)),
            last_denial=self._last_denial,
        )
        last = self._last_state
        if last is None or (_fields(last) != _fields(state)):
            self._last_state = state
            self.bus.publish(state)

    # -- public reads --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for screens and the ``access_status`` command."""
        snap = self.machine.snapshot
        session = snap.session
        now = time.monotonic()
        return {
            "enabled": self.config.enabled,
            "running": self._store is not None,
            "machine_id": self.machine_id,
            "state": snap.state.value,
            "relay_on": snap.relay_on,
            "session": None
            if session is None
            else {
                "id": self._session_id,
                "member_id": session.member_id,
                "member_name": session.member_name,
                "role": session.role.label,
                "since": _iso(self._session_since),
                "jobs": session.jobs,
                "idle_seconds": round(now - session.last_activity, 1),
            },
            "ending": None
            if snap.state is not core.State.ENDING or snap.previous is None
            else {
                "member_name": snap.previous.member_name,
                "waiting_for_job": snap.job_running,
                "relay_off_in": None
                if snap.grace_until is None
                else round(max(0.0, snap.grace_until - now), 1),
            },
            "job_running": snap.job_running,
            "lockout": None
            if snap.lockout is None
            else {
                "reason": snap.lockout.reason,
                "by": snap.lockout.by,
            },
            "interlocks_tripped": sorted(snap.tripped),
            "last_denial": self._last_denial,
            "rate_limited_for": self.machine.retry_after(now),
            "access_list": {
                "members": len(self._list),
                "generated_at": self._list.generated_at.isoformat()
                if self._list.generated_at
                else None,
                "source": self._list_source,
                "last_error": self._list_error,
            },
            "readers": sorted(self._readers),
            "pending_inductions": len(self.policy.grants),
            "policy": policy_effects.status(self, now),
        }

    async def sessions(self, limit: int = 50) -> list[dict[str, Any]]:
        store = self._running_store()
        records = await asyncio.to_thread(store.sessions, limit)
        return [r.as_dict() for r in records]

    async def job_starts(self, limit: int = 50) -> list[dict[str, Any]]:
        """Job starts, resumes and console commands with their caller and the member present."""
        store = self._running_store()
        rows = await asyncio.to_thread(store.job_starts, limit)
        return [{**r, "at": _iso(r["at"])} for r in rows]

    async def usage(self) -> list[dict[str, Any]]:
        store = self._running_store()
        return [u.as_dict() for u in await asyncio.to_thread(store.usage)]

    async def pending_inductions(self) -> list[dict[str, Any]]:
        """Inductions recorded here that the membership system has not confirmed yet."""
        store = self._running_store()
        return [
            {
                "id": i.id,
                "trainer_id": i.trainer_id,
                "member_id": i.member_id,
                "machine_id": i.machine_id,
                "at": _iso(i.at),
            }
            for i in await asyncio.to_thread(store.unsynced_inductions)
        ]

    def _running_store(self) -> AccessStore:
        if self._store is None:
            raise AccessError("the access service is not running; check the log for why")
        return self._store

    # -- commands ------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self.config.enabled:
            raise CommandError("disabled", "Access control is disabled in the configuration.")
        if self._outputs is None:
            raise CommandError(
                "not_running", "The access service is not running; check the gateway log for why."
            )

    async def _cmd_lockout(self, request: CommandRequest) -> dict[str, Any]:
        self._require_running()
        reason = str(request.args.get("reason") or "").strip()
        if not reason:
            raise CommandError(
                "bad_args", "A lockout needs a reason, e.g. reason='laser tube being replaced'."
            )
        by = str(request.args.get("by") or request.actor or request.origin)
        self._feed(core.LockoutSet(reason, by, time.monotonic()))
        return self.status()

    async def _cmd_clear_lockout(self, request: CommandRequest) -> dict[str, Any]:
        self._require_running()
        snap = self.machine.snapshot
        if snap.lockout is None:
            raise CommandError("no_lockout", "The machine is not locked out.")
        # Only a maintainer clears a lockout at the machine: the one badged in now, or one
        # named by member id.  Remote callers are already authorised as admins (an admin
        # token for the web API, the broker's ACL for MQTT) and so is a shell on the Pi;
        # the record names the maintainer given, or the token or client.
        by = str(request.args.get("by") or "")
        session = snap.session
        if session is not None and session.role >= Role.MAINTAINER:
            by = by or session.member_id
        elif not by and request.origin in ("cli", "web", "mqtt"):
            by = f"{request.origin}:{request.actor or 'admin'}"
        else:
            member = self._list.by_id(by) if by else None
            role = member.role_on(self.machine_id) if member else None
            if role is None or role < Role.MAINTAINER:
                raise CommandError(
                    "not_maintainer",
                    "Only a maintainer can clear the lockout: badge in with a maintainer "
                    "badge first, or pass by=<maintainer's member id>.",
                )
        self._feed(core.LockoutCleared(by, time.monotonic()))
        return self.status()

    async def _cmd_refresh(self, request: CommandRequest) -> dict[str, Any]:
        self._require_running()
        source = self._source
        if source is None:
            raise CommandError("not_running", "The access list source is not running.")
        if not source.refresh():
            return {
                "refreshing": False,
                "source": source.description,
                "message": "This source delivers lists when they are published; "
                "there is nothing to fetch.",
            }
        return {"refreshing": True, "source": source.description}

    async def _cmd_badge_out(self, request: CommandRequest) -> dict[str, Any]:
        self._require_running()
        if self.machine.snapshot.session is None:
            raise CommandError("no_session", "No session is open on this machine.")
        self._feed(core.BadgeOut(time.monotonic()))
        return self.status()

    async def _cmd_status(self, request: CommandRequest) -> dict[str, Any]:
        return self.status()

    async def _cmd_member_standing(self, request: CommandRequest) -> dict[str, Any]:
        """Read-only: ``{"member_id", "standing"}`` for ``member_id`` in the current list
        (see :mod:`gateway.access.standing`); the slicer refuses a suspended member's key."""
        self._require_running()
        member_id = request.args.get("member_id")
        if not isinstance(member_id, str) or not member_id.strip():
            raise CommandError("bad_args", "member_standing needs member_id='m-ada'.")
        now = datetime.now(UTC)
        return {
            "member_id": member_id,
            "standing": standing(self._effective, member_id, self.machine_id, now),
        }

    async def _cmd_authorise_start(self, request: CommandRequest) -> dict[str, Any]:
        """The presence rule, asked by the machine before a job starts or resumes.

        Args: ``action`` (start | resume), ``origin`` and ``actor`` of the caller who
        asked the machine.  Refused with ``no_session`` or ``remote_start_off``.
        """
        self._require_running()
        action = str(request.args.get("action") or "start")
        origin = str(request.args.get("origin") or request.origin)
        caller = str(request.args.get("actor") or "") or origin
        answer = core.may_start(
            self.machine.snapshot, self.config.rules, at_machine=origin == "kiosk"
        )
        if isinstance(answer, core.StartRefused):
            log.info("%s of a job by %s refused: %s", action, caller, answer.reason)
            raise CommandError(answer.reason, answer.message)
        log.info(
            "%s of a job by %s (%s) allowed; member present: %s",
            action,
            caller,
            origin,
            answer.member_id or "nobody (remote_start = always)",
        )
        self._write(
            partial(
                AccessStore.record_job_start,
                at=_wall(),
                action=action,
                caller=f"{origin}:{caller}" if caller != origin else origin,
                session_id=self._session_id if answer.member_id else None,
                member_id=answer.member_id,
            )
        )
        return {
            "action": action,
            "caller": caller,
            "origin": origin,
            "member_id": answer.member_id,
            "member_name": answer.member_name,
            "session_id": self._session_id if answer.member_id else None,
        }

    async def _cmd_cut_power(self, request: CommandRequest) -> dict[str, Any]:
        """The admin's "cut now": power off at once, even under a job finishing."""
        self._require_running()
        if not self.machine.relay_on:
            raise CommandError("already_off", "The machine's power is already off.")
        by = str(request.args.get("by") or request.actor or request.origin)
        log.warning("power cut now by %s", by)
        self._feed(core.CutNow(by, time.monotonic()))
        return self.status()

    async def _cmd_present_badge(self, request: CommandRequest) -> dict[str, Any]:
        self._require_running()
        uid = request.args.get("uid")
        if not isinstance(uid, str) or not uid.strip():
            raise CommandError("bad_args", "present_badge needs uid='04A1B2C3'.")
        name = request.args.get("reader") or self.config.simulated_readers[0]
        reader = self._readers.get(str(name))
        if not isinstance(reader, SimulatedReader):
            known = ", ".join(self.config.simulated_readers)
            raise CommandError(
                "bad_args", f"no simulated reader named {name!r} (simulated readers: {known})."
            )
        reader.present(uid)
        return {"presented": True, "reader": reader.name}


def _fields(state: AccessState) -> tuple[object, ...]:
    return (
        state.state,
        state.relay_on,
        state.member_id,
        state.member_name,
        state.job_running,
        state.lockout_reason,
        state.interlocks_tripped,
        state.last_denial,
    )
