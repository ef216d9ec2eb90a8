"""The slicer capability's service: member keys, held jobs, pairing requests.

It registers the commands the web layer (OctoPrint/Moonraker surfaces, kiosk, admin
pages) and the CLI call; it never starts the machine itself except through the
machine capability's ``start_job`` command, and only for a held job's own member
(see :mod:`gateway.slicer.held` for the rules).  Who is badged in comes from the
access capability's ``access_status`` command; whether a key's member is suspended
from its ``member_standing`` command.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from pathlib import Path
from typing import Any

from gateway.bus import EventBus
from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.machine.files import FileLibrary, FileRejected
from gateway.slicer import records
from gateway.slicer.config import SlicerConfig
from gateway.slicer.errors import SlicerError
from gateway.slicer.events import HeldJobsChanged, PairingRequested, UsbChanged
from gateway.slicer.held import (
    DOORS,
    HeldAction,
    HeldJob,
    HeldState,
    disk_name,
    display_name,
    distinct_name,
    transition,
)
from gateway.slicer.pairing import PairingBook, PairingState, clean_app
from gateway.slicer.usb import SimulatedSticks, UsbVolumes
from gateway.store import Store
from gateway.supervisor import Service

log = logging.getLogger(__name__)

#: Seconds between checks for expired held jobs.
EXPIRY_INTERVAL = 30.0
#: Seconds between looks for plugged or pulled USB sticks.
USB_INTERVAL = 2.0
#: A key's ``last_used_at`` is written at most this often, sparing the SD card.
TOUCH_INTERVAL = 60.0


def _str(args: dict[str, Any], name: str, *, required: bool = True) -> str:
    value = args.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise CommandError("bad_args", f"this command needs {name!r}")
    return value.strip()


def _int(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CommandError("bad_args", f"this command needs a number {name!r}")
    return value


class SlicerService(Service):
    name = "slicer"
    optional = True

    def __init__(
        self,
        config: SlicerConfig,
        *,
        db_path: Path,
        bus: EventBus,
        commands: CommandRouter,
        files: FileLibrary | None = None,
        simulated_usb: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.db_path = db_path
        self.files = files
        #: In simulation mode the sticks are folders under ``simulated_usb``.
        self.sticks = SimulatedSticks(simulated_usb) if simulated_usb is not None else None
        if simulated_usb is not None:
            self.usb: UsbVolumes | None = UsbVolumes(simulated_usb, any_folder=True)
        elif config.usb_root is not None:
            self.usb = UsbVolumes(config.usb_root)
        else:
            self.usb = None
        self._volumes: list[str] = []
        self.bus = bus
        self.commands = commands
        self.pairings = PairingBook(config.pairing_seconds)
        self._store: Store | None = None
        self._touched: dict[tuple[str, str], float] = {}
        for name, handler in (
            ("slicer_identify", self._cmd_identify),
            ("slicer_key_create", self._cmd_key_create),
            ("slicer_my_key", self._cmd_my_key),
            ("slicer_key_revoke", self._cmd_key_revoke),
            ("slicer_keys", self._cmd_keys),
            ("slicer_file_added", self._cmd_file_added),
            ("slicer_files", self._cmd_files),
            ("slicer_hold", self._cmd_hold),
            ("slicer_held", self._cmd_held),
            ("slicer_release", self._cmd_release),
            ("slicer_cancel", self._cmd_cancel),
            ("slicer_usage", self._cmd_usage),
            ("appkey_request", self._cmd_appkey_request),
            ("appkey_poll", self._cmd_appkey_poll),
            ("appkey_pending", self._cmd_appkey_pending),
            ("appkey_decide", self._cmd_appkey_decide),
            ("usb_files", self._cmd_usb_files),
            ("usb_hold", self._cmd_usb_hold),
        ):
            commands.register(name, handler)
        if self.sticks is not None:
            commands.register("usb_simulate", self._cmd_usb_simulate)

    # -- lifetime -----------------------------------------------------------------------

    async def run(self) -> None:
        self._store = store = await asyncio.to_thread(Store, self.db_path, "slicer")
        try:
            await store.run(records.ensure_schema, store.db)
            self.ready.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._expire_loop(), name="slicer:expiry")
                if self.usb is not None:
                    tg.create_task(self._watch_usb(), name="slicer:usb")
        finally:
            self._store = None
            await asyncio.to_thread(store.close)

    async def _expire_loop(self) -> None:
        while True:
            await self._expire_due()
            await asyncio.sleep(EXPIRY_INTERVAL)

    async def _watch_usb(self) -> None:
        """Publish :class:`UsbChanged` when a stick is plugged in or pulled out."""
        assert self.usb is not None
        while True:
            now = await asyncio.to_thread(self.usb.volumes)
            for name in sorted(set(now) - set(self._volumes)):
                self.bus.publish(UsbChanged(mounted=True, volume=name))
            for name in sorted(set(self._volumes) - set(now)):
                self.bus.publish(UsbChanged(mounted=False, volume=name))
            self._volumes = now
            await asyncio.sleep(USB_INTERVAL)

    def _running(self) -> Store:
        if self._store is None:
            raise CommandError(
                "not_running", "slicer uploads are not running yet; check the gateway log"
            )
        return self._store

    async def _db(self, fn: Any, *args: Any) -> Any:
        store = self._running()
        try:
            return await store.run(fn, store.db, *args)
        except SlicerError as err:
            raise CommandError(err.code, err.message) from err

    async def _expire_due(self) -> None:
        now = time.time()
        for job in await self._db(records.held_jobs):
            if now >= job.expires_at:
                await self._apply(job, HeldAction.EXPIRE, by=None)

    async def _apply(
        self, job: HeldJob, action: HeldAction, *, by: str | None, machine_job: int | None = None
    ) -> HeldJob:
        try:
            after = transition(job, action, by=by, now=time.time())
        except SlicerError as err:
            raise CommandError(err.code, err.message) from err
        await self._db(records.update_held, after, machine_job)
        held = len(await self._db(records.held_jobs))
        self.bus.publish(
            HeldJobsChanged(
                held=held, change=after.state.value, file=after.file, member_id=after.member_id
            )
        )
        log.info("held job %d (%s) %s", after.id, after.file, after.state.value)
        return after

    # -- who is at the machine -------------------------------------------------------------

    async def _session(self) -> tuple[bool, dict[str, Any] | None]:
        """(access control on?, the badged-in member's session or None)."""
        if "access_status" not in self.commands.names:
            return False, None
        status = await self.commands.call("access_status")
        if not status.get("enabled"):
            return False, None
        session = status.get("session")
        return True, session if isinstance(session, dict) else None

    async def _session_member(self) -> tuple[str, str]:
        controlled, session = await self._session()
        if not controlled:
            raise CommandError(
                "access_disabled",
                "member keys need access control: without badges the gateway cannot tell "
                "who is at the machine (see [access] in its config)",
            )
        if session is None:
            raise CommandError("no_session", "Badge in at the machine first.")
        return str(session["member_id"]), str(session["member_name"])

    async def _suspended(self, member_id: str) -> bool:
        """Whether the access list suspends ``member_id``.  Only a suspension refuses a
        key: a member expired or not inducted here may still send jobs (they cannot
        badge in, so none starts).  Without access control, or while it cannot answer,
        nobody is suspended: uploads never start the machine by themselves."""
        if "member_standing" not in self.commands.names:
            return False
        try:
            answer = await self.commands.call("member_standing", {"member_id": member_id})
        except CommandError as err:
            log.debug("standing of %s unknown: %s", member_id, err.message)
            return False
        return answer.get("standing") == "suspended"

    # -- keys ---------------------------------------------------------------------------

    async def _cmd_identify(self, req: CommandRequest) -> dict[str, Any]:
        key = req.args.get("key")
        if not isinstance(key, str) or not key or len(key) > 200:
            raise CommandError("bad_key", "send your slicer key in the X-Api-Key header")
        found = await self._db(records.find_key, key)
        if found is None:
            raise CommandError(
                "bad_key",
                "this key is not valid or was replaced; get a new one on the machine's "
                "touchscreen under 'My slicer key'",
            )
        if await self._suspended(found.member_id):
            # The key stays: it works again once the space lifts the suspension.
            raise CommandError(
                "suspended",
                "Your membership is suspended: ask the space's admins. "
                "This machine takes no jobs from you until it is lifted.",
            )
        now = time.time()
        slot = (found.member_id, found.label)
        if now - self._touched.get(slot, 0.0) >= TOUCH_INTERVAL:
            self._touched[slot] = now
            await self._db(records.touch_key, found.member_id, found.label, now)
        return found.as_dict()  # type: ignore[no-any-return]

    async def _cmd_key_create(self, req: CommandRequest) -> dict[str, Any]:
        """An admin creates (replaces) a member's key: CLI, admin page."""
        member_id = _str(req.args, "member_id")
        member_name = _str(req.args, "member_name")
        label = _str(req.args, "label", required=False) or "admin"
        record, secret = await self._db(
            records.create_key, member_id, member_name, label, req.actor or req.origin
        )
        return {**record.as_dict(), "key": secret}

    async def _cmd_my_key(self, req: CommandRequest) -> dict[str, Any]:
        """The badged-in member's own key; a new one revokes their previous one."""
        if req.origin != "kiosk":
            raise CommandError("not_from_kiosk", "get your slicer key at the machine")
        member_id, member_name = await self._session_member()
        record, secret = await self._db(
            records.create_key, member_id, member_name, "kiosk", member_id
        )
        return {**record.as_dict(), "key": secret}

    async def _cmd_key_revoke(self, req: CommandRequest) -> dict[str, Any]:
        member_id = _str(req.args, "member_id")
        label = req.args.get("label")
        revoked = await self._db(
            records.revoke_keys, member_id, label if isinstance(label, str) else None
        )
        return {"member_id": member_id, "revoked": revoked}

    async def _cmd_keys(self, req: CommandRequest) -> dict[str, Any]:
        return {"keys": [k.as_dict() for k in await self._db(records.list_keys)]}

    # -- files and held jobs ---------------------------------------------------------------

    async def _cmd_file_added(self, req: CommandRequest) -> dict[str, Any]:
        door = req.args.get("door")
        if door not in DOORS:
            raise CommandError("bad_args", f"door is one of {', '.join(DOORS)}")
        file = _str(req.args, "file")
        display = _str(req.args, "display_name", required=False) or file
        await self._db(
            records.record_file,
            file,
            display,
            _str(req.args, "member_id"),
            _str(req.args, "member_name"),
            door,
            time.time(),
        )
        return {"file": file}

    async def _cmd_files(self, req: CommandRequest) -> dict[str, Any]:
        return {"owners": await self._db(records.file_owners)}

    async def _cmd_hold(self, req: CommandRequest) -> dict[str, Any]:
        """Hold ``file`` for its member; with ``release = "session"`` start it now if the
        member is badged in."""
        file = _str(req.args, "file")
        member_id = _str(req.args, "member_id")
        door = req.args.get("door", "slicer")
        if door not in DOORS:
            raise CommandError("bad_args", f"door is one of {', '.join(DOORS)}")
        owners = await self._db(records.file_owners)
        owner = owners.get(file)
        if owner is not None and owner["member_id"] != member_id:
            raise CommandError("not_yours", f"{file} was uploaded by another member")
        now = time.time()
        job = HeldJob(
            id=0,
            file=file,
            display_name=(owner or {}).get("display_name") or file,
            member_id=member_id,
            member_name=_str(req.args, "member_name"),
            door=door,
            uploaded_at=now,
            expires_at=now + self.config.hold_hours * 3600,
        )
        job = await self._db(records.insert_held, job)
        held = len(await self._db(records.held_jobs))
        self.bus.publish(HeldJobsChanged(held=held, change="held", file=file, member_id=member_id))
        if self.config.release == "session":
            controlled, session = await self._session()
            if controlled and session is not None and session.get("member_id") == member_id:
                try:
                    return await self._release(job, member_id, origin="internal")
                except CommandError as err:
                    log.info("held job %d stays held: %s", job.id, err.message)
        return {**job.as_dict(), "started": False}

    async def _cmd_held(self, req: CommandRequest) -> dict[str, Any]:
        await self._expire_due()
        jobs = await self._db(records.held_jobs)
        member = req.args.get("member_id")
        if isinstance(member, str):
            jobs = [j for j in jobs if j.member_id == member]
        return {"held": [j.as_dict() for j in jobs]}

    async def _get_held(self, req: CommandRequest) -> HeldJob:
        job_id = _int(req.args, "id")
        job = await self._db(records.get_held, job_id)
        if job is None:
            raise CommandError("not_found", f"there is no held job {job_id}")
        assert isinstance(job, HeldJob)
        return job

    async def _release(
        self, job: HeldJob, by: str, *, origin: Any, discard_interrupted: bool = False
    ) -> dict[str, Any]:
        # Check the rules first, so a refused tap never reaches the machine.
        try:
            transition(job, HeldAction.RELEASE, by=by, now=time.time())
        except SlicerError as err:
            raise CommandError(err.code, err.message) from err
        args: dict[str, Any] = {"file": job.file}
        if discard_interrupted:
            args["discard_interrupted"] = True
        started = await self.commands.call(
            "start_job", args, origin=origin, actor=f"member:{by}"
        )
        machine_job = started.get("id")
        after = await self._apply(
            job,
            HeldAction.RELEASE,
            by=by,
            machine_job=machine_job if isinstance(machine_job, int) else None,
        )
        return {**after.as_dict(), "started": True, "job": started}

    async def _cmd_release(self, req: CommandRequest) -> dict[str, Any]:
        """The member at the machine taps "Bed is clear — start" on a held job."""
        if req.origin != "kiosk":
            raise CommandError(
                "not_from_kiosk", "a held job starts only from the machine's touchscreen"
            )
        job = await self._get_held(req)
        # The member confirmed that starting discards an interrupted job (see start_job).
        discard = req.args.get("discard_interrupted", False)
        if not isinstance(discard, bool):
            raise CommandError("bad_args", "'discard_interrupted' is true or false")
        controlled, session = await self._session()
        if not controlled:
            # Without badges the touchscreen is whoever stands at it.
            return await self._release(
                job, job.member_id, origin="kiosk", discard_interrupted=discard
            )
        by = None if session is None else str(session["member_id"])
        if by is None:
            raise CommandError("no_session", "Badge in at the machine first.")
        return await self._release(job, by, origin="kiosk", discard_interrupted=discard)

    async def _cmd_cancel(self, req: CommandRequest) -> dict[str, Any]:
        """Cancel a held job: its member (``member_id`` from their key, or the badged-in
        member at the kiosk), or an admin (``admin=True``)."""
        job = await self._get_held(req)
        by: str | None
        if req.origin == "kiosk":
            by, _ = await self._session_member()
        elif req.args.get("admin") is True:
            by = None
        else:
            by = _str(req.args, "member_id")
        after = await self._apply(job, HeldAction.CANCEL, by=by)
        return after.as_dict()

    async def _cmd_usage(self, req: CommandRequest) -> dict[str, Any]:
        return {
            "usage": await self._db(records.usage),
            "jobs": await self._db(records.job_records),
        }

    # -- pairing --------------------------------------------------------------------------

    async def _cmd_appkey_request(self, req: CommandRequest) -> dict[str, Any]:
        app = clean_app(req.args.get("app"))
        if app is None:
            raise CommandError("bad_args", 'send {"app": "<your application\'s name>"}')
        token = secrets.token_urlsafe(16)
        self.pairings.request(token, app, time.time())
        self.bus.publish(PairingRequested(app=app))
        return {"app_token": token, "app": app}

    async def _cmd_appkey_poll(self, req: CommandRequest) -> dict[str, Any]:
        token = _str(req.args, "token")
        p = self.pairings.collect(token, time.time())
        if p is None or p.state is PairingState.DENIED:
            return {"state": "gone"}
        if p.state is PairingState.APPROVED:
            return {"state": "approved", "api_key": p.api_key}
        return {"state": "pending"}

    async def _cmd_appkey_pending(self, req: CommandRequest) -> dict[str, Any]:
        now = time.time()
        return {
            "pairings": [
                {"token": p.token, "app": p.app, "waiting": round(now - p.requested_at)}
                for p in self.pairings.pending(now)
            ]
        }

    async def _cmd_appkey_decide(self, req: CommandRequest) -> dict[str, Any]:
        """The badged-in member approves (their key goes to the app) or denies."""
        if req.origin != "kiosk":
            raise CommandError("not_from_kiosk", "approve a slicer on the machine's touchscreen")
        token = _str(req.args, "token")
        member_id, member_name = await self._session_member()
        now = time.time()
        p = self.pairings.get(token, now)
        if p is None or p.state is not PairingState.PENDING:
            raise CommandError("not_found", "that request has expired; ask again from the slicer")
        if req.args.get("approve") is not True:
            self.pairings.deny(token, now)
            return {"app": p.app, "approved": False}
        _, secret = await self._db(records.create_key, member_id, member_name, p.app, member_id)
        self.pairings.approve(token, member_id, member_name, secret, now)
        return {"app": p.app, "approved": True, "member_id": member_id}

    # -- USB sticks -----------------------------------------------------------------------

    async def _cmd_usb_files(self, req: CommandRequest) -> dict[str, Any]:
        if self.usb is None:
            return {"mounted": False, "files": [], "configured": False}
        usb = self.usb
        volumes, files = await asyncio.to_thread(lambda: (usb.volumes(), usb.files()))
        return {
            "mounted": bool(volumes),
            "volumes": volumes,
            "files": [f.as_dict() for f in files],
            "configured": True,
        }

    async def _cmd_usb_hold(self, req: CommandRequest) -> dict[str, Any]:
        """Copy a stick's file into the library, owned by the badged-in member, and hold
        it for them (they start it with the same "Bed is clear" tap)."""
        if req.origin != "kiosk":
            raise CommandError("not_from_kiosk", "print from a USB stick at the machine")
        if self.usb is None or self.files is None:
            raise CommandError("no_usb", "USB sticks are not set up here ([slicer] usb_root)")
        member_id, member_name = await self._session_member()
        usb, library = self.usb, self.files
        try:
            src = await asyncio.to_thread(
                usb.resolve, _str(req.args, "volume"), _str(req.args, "path")
            )
            shown = display_name(src.name)
            taken = {f.name for f in await asyncio.to_thread(library.list)}
            name = distinct_name(disk_name(shown), taken)
            stored = await asyncio.to_thread(library.add_path, src, name)
        except SlicerError as err:
            raise CommandError(err.code, err.message) from err
        except FileRejected as err:
            raise CommandError(err.code, str(err)) from err
        except OSError as err:
            raise CommandError(
                "stick_pulled",
                "the stick could not be read (was it pulled out?); nothing was copied, "
                "plug it in and try again",
            ) from err
        await self._db(
            records.record_file, stored.name, shown, member_id, member_name, "usb", time.time()
        )
        held = await self._cmd_hold(
            CommandRequest(
                "slicer_hold",
                {
                    "file": stored.name,
                    "member_id": member_id,
                    "member_name": member_name,
                    "door": "usb",
                },
                "internal",
                member_id,
            )
        )
        return {**held, "display_name": shown}

    async def _cmd_usb_simulate(self, req: CommandRequest) -> dict[str, Any]:
        """Simulation: plug in (``action=plug``) or pull out (``unplug``) a stick."""
        assert self.sticks is not None
        sticks = self.sticks
        name = str(req.args.get("name") or "STICK")
        action = req.args.get("action")
        try:
            if action == "plug":
                raw = req.args.get("files")
                files = (
                    {str(k): str(v).encode() for k, v in raw.items()}
                    if isinstance(raw, dict)
                    else None
                )
                await asyncio.to_thread(sticks.plug, name, files)
                return {"plugged": name}
            if action == "unplug":
                return {"unplugged": await asyncio.to_thread(sticks.unplug, name)}
        except SlicerError as err:
            raise CommandError(err.code, err.message) from err
        raise CommandError("bad_args", "action is 'plug' or 'unplug'")


__all__ = ["HeldState", "SlicerService"]
