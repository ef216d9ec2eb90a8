"""Keeps the running job's checkpoint and offers an interrupted job back to its member.

Part of the machine service (it owns one :class:`Resumer` and runs it in its
task group), split out so that streaming stays in ``service.py``.  The
service calls three cheap hooks: :meth:`Resumer.job_started`,
:meth:`Resumer.lines_confirmed` (on the hot path: a few integer operations and
a comparison; the write itself happens on the checkpoint's own SQLite thread)
and :meth:`Resumer.job_finished`.

Commands (via the router, from the kiosk or a token):

* ``resume_offer``: the interrupted job, if the member badged in is the one
  who ran it (or access control is off), with the layer it was in and the
  earlier ones; or "interrupted at line N" and why it cannot be resumed;
* ``resume_preview`` ``{job_id, layer}``: the preamble, shown before it runs;
* ``resume_job`` ``{job_id, layer}``: the preamble then the file from that
  layer, as a new job linked to the original (``resumed_from``);
* ``resume_discard`` ``{job_id}``: forget it.

Refused, with the reason: a file changed since the job (hash), a machine
whose kind or firmware differs, a controller whose firmware version differs,
a damaged record, another member.  A job that completed, was cancelled or
e-stopped leaves nothing to resume; one that failed (unplugged port,
controller reset, the gateway stopping or crashing) does.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.access.events import AccessState
from gateway.bus import EventBus
from gateway.commands import CommandError, CommandRequest, CommandRouter
from gateway.config import MachineConfig
from gateway.machine import checkpoint as cpt
from gateway.machine.checkpoint import Checkpoint, CheckpointPolicy, DamagedCheckpoint
from gateway.machine.files import FileLibrary, FileRejected
from gateway.machine.gcode import Firmware
from gateway.machine.interrupted import (
    FileIndex,
    InterruptedJob,
    ResumePlan,
    ensure_link_columns,
    index_file,
    link_resumed,
    plan_resume,
    read_interrupted,
    write_resumed_file,
)
from gateway.machine.job import Job, JobState
from gateway.machine.resume import Layer, ResumeError, head_height
from gateway.machine.resume_config import ResumeConfig
from gateway.store import Store

log = logging.getLogger(__name__)

_CLEAR = "clear"


@dataclass(frozen=True, slots=True)
class ResumedFrom:
    """What a resumed job continues: the original's checkpoint, where, after what."""

    original: Checkpoint
    start_line: int  # 0-based line of the original file the resumed file continues at
    preamble_lines: int
    copy: Path  # the streamed file (preamble + rest), removed when the job ends


class StartJob(Protocol):
    def __call__(
        self, file: str, *, source: Path, lines_total: int, resumed: ResumedFrom, origin: str
    ) -> Awaitable[Job]: ...


@dataclass(slots=True)
class _Running:
    """The job being checkpointed."""

    job_id: int
    file: str
    prepared: Path
    member: tuple[str, str]
    started_at: float
    resumed: ResumedFrom | None
    lines_done: int = 0
    base: Checkpoint | None = None  # set once the file is hashed and indexed
    starts: list[int] | None = None
    layers: list[Layer] | None = None


def _head_height(path: Path, line: int, firmware: Firmware) -> float:
    with path.open("r", encoding="ascii", newline="\n") as fh:
        lines = fh.read().splitlines()
    return head_height(lines, min(line, len(lines)), firmware)


class Resumer:
    """Checkpoints for the running job, and the resume of an interrupted one."""

    def __init__(
        self,
        *,
        machine: MachineConfig,
        config: ResumeConfig,
        files: FileLibrary,
        db_path: Path,
        bus: EventBus,
        commands: CommandRouter,
        firmware_version: Callable[[], str | None],
        start_job: StartJob,
        require_member: bool,
    ) -> None:
        self.machine = machine
        self.config = config
        self.files = files
        self.db_path = db_path
        self.bus = bus
        self.commands = commands
        self._firmware_version = firmware_version
        self._start_job = start_job
        self.require_member = require_member
        self._store: Store | None = None
        self._running: _Running | None = None
        self._pending: Checkpoint | str | None = None
        self._spent: list[Path] = []  # resumed copies whose job has ended
        self._wake = asyncio.Event()
        self._index: asyncio.Queue[_Running] = asyncio.Queue()
        self._policy = CheckpointPolicy(interval=config.checkpoint_interval_s)
        self._member: tuple[str, str] = ("", "")
        self._interrupted: Checkpoint | DamagedCheckpoint | None = None
        self._offer: tuple[tuple[Any, ...], InterruptedJob] | None = None
        self._resumes_dir = files.root / ".resume"
        self._index_dir = files.root / ".resume" / "index"
        for name, handler in (
            ("resume_offer", self._cmd_offer),
            ("resume_preview", self._cmd_preview),
            ("resume_job", self._cmd_resume),
            ("resume_discard", self._cmd_discard),
        ):
            commands.register(name, handler)

    @property
    def firmware(self) -> Firmware:
        return self.machine.firmware

    # -- lifetime -------------------------------------------------------------------

    async def run(self) -> None:
        """Open the checkpoint store, read what the last run left, keep checkpoints."""
        self._store = store = await asyncio.to_thread(Store, self.db_path, "checkpoint")
        try:
            await store.run(self._open, store)
            if self.config.enabled:
                self._interrupted = await store.run(cpt.load, store.db.conn, self.machine.id)
            if self._interrupted is not None:
                log.warning("job %s was interrupted; offering a resume", self._interrupted.job_id)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._write_loop(), name="machine:checkpoint")
                tg.create_task(self._index_loop(), name="machine:resume-index")
                if self.require_member:
                    tg.create_task(self._watch_member(), name="machine:resume-member")
        finally:
            self._store = None
            await asyncio.to_thread(store.close)

    @staticmethod
    def _open(store: Store) -> None:
        conn = store.db.conn
        # Each checkpoint is on the disk when its write returns (WAL + FULL).
        conn.execute("PRAGMA synchronous=FULL")
        cpt.ensure_schema(conn)
        ensure_link_columns(store.db)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            item, self._pending = self._pending, None
            spent, self._spent = self._spent, []
            for path in spent:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            store = self._store
            if item is None or store is None:
                continue
            try:
                if isinstance(item, Checkpoint):
                    await store.run(cpt.save, store.db.conn, item)
                else:
                    await store.run(cpt.clear, store.db.conn, self.machine.id)
            except Exception:
                log.exception("could not write the resume checkpoint")

    async def _index_loop(self) -> None:
        """Hash and index each new job's file off the loop, then write its first checkpoint."""
        while True:
            run = await self._index.get()
            try:
                index = await asyncio.to_thread(
                    index_file, run.prepared, self.firmware, self._index_dir
                )
            except OSError as err:
                log.error("cannot index %s for resuming: %s", run.file, err)
                continue
            sha, lines_total = index.sha256, index.lines
            run.layers = list(index.layers)
            run.starts = [la.line for la in index.layers]
            run.base = Checkpoint(
                machine_id=self.machine.id,
                job_id=run.job_id,
                file=run.file,
                file_sha256=sha,
                lines_total=lines_total,
                kind=self.machine.kind,
                firmware=self.firmware,
                firmware_version=self._firmware_version() or "",
                member_id=run.member[0],
                member_name=run.member[1],
                line=0,
                layer=0,
                z=None,
                started_at=run.started_at,
                updated_at=time.time(),
                resumed_from=None if run.resumed is None else run.resumed.original.job_id,
            )
            if self._running is run:
                self._policy = CheckpointPolicy(interval=self.config.checkpoint_interval_s)
                self.lines_confirmed(run.lines_done)

    async def _watch_member(self) -> None:
        with self.bus.subscribe(AccessState) as states:
            async for s in states:
                if s.state in ("authorised", "in_use") and s.member_id:
                    self._member = (s.member_id, s.member_name or "")
                else:
                    self._member = ("", "")

    # -- hooks from the machine service --------------------------------------------------

    def job_started(self, job: Job, prepared: Path, resumed: ResumedFrom | None = None) -> None:
        """``prepared`` is the job's file as uploaded and cleaned (for a resumed job,
        the original's, not the copy with the preamble)."""
        if not self.config.enabled:
            return
        member = resumed.original.member_id if resumed is not None else self._member[0]
        name = resumed.original.member_name if resumed is not None else self._member[1]
        run = _Running(
            job_id=job.id,
            file=job.file,
            prepared=prepared,
            member=(member, name),
            started_at=time.time(),
            resumed=resumed,
        )
        self._running = run
        record = self._interrupted
        if isinstance(record, Checkpoint) and resumed is None:
            log.warning(
                "job %d (%s) starts; the interrupted job %d (%s) is no longer offered for resume",
                job.id,
                job.file,
                record.job_id,
                record.file,
            )
        self._interrupted = None
        self._offer = None
        self._index.put_nowait(run)

    async def held_back_by(self) -> str | None:
        """Why a new job should not start unasked: an interrupted job can be resumed,
        and starting another discards it (its print leaves the bed).  None when
        nothing would be lost: none, or one that can only be reported (damaged
        record, changed file, other firmware)."""
        record = self._interrupted
        if not isinstance(record, Checkpoint) or self._running is not None:
            return None
        if not (await self._offer_of(record)).resumable:
            return None
        who = record.member_name or record.member_id or "a member"
        where = f"layer {record.layer}" if record.layer else f"line {record.line}"
        return (
            f"Job {record.job_id} ({record.file}), run by {who}, was interrupted at {where} "
            "and can be resumed. Starting another job discards it: clear the bed, then confirm."
        )

    def lines_confirmed(self, lines_done: int) -> None:
        """The controller confirmed ``lines_done`` lines of the running job (hot path)."""
        run = self._running
        if run is None:
            return
        run.lines_done = lines_done
        base = run.base
        if base is None or run.starts is None or run.layers is None:
            return
        line = self._original_line(run, lines_done)
        layer = bisect.bisect_right(run.starts, line)
        now = time.monotonic()
        if self._policy.due(line, layer, now):
            self._policy.wrote(line, layer, now)
            z = run.layers[layer - 1].z if layer else None
            self._pending = base.advanced(line, layer, z, time.time())
            self._wake.set()

    def job_finished(self, job: Job) -> None:
        run = self._running
        if run is None or run.job_id != job.id:
            return
        self._running = None
        if run.resumed is not None:
            self._spent.append(run.resumed.copy)
        if job.state is JobState.FAILED and run.base is not None:
            line = self._original_line(run, job.lines_done)
            assert run.starts is not None and run.layers is not None
            layer = bisect.bisect_right(run.starts, line)
            z = run.layers[layer - 1].z if layer else None
            final = run.base.advanced(line, layer, z, time.time())
            self._interrupted = final
            self._pending = final
        else:
            self._interrupted = None
            self._pending = _CLEAR
        self._offer = None
        self._wake.set()

    @staticmethod
    def _original_line(run: _Running, lines_done: int) -> int:
        if run.resumed is None:
            return lines_done
        return run.resumed.start_line + max(0, lines_done - run.resumed.preamble_lines)

    # -- offers --------------------------------------------------------------------------

    def _may_act(self, record: Checkpoint | DamagedCheckpoint) -> bool:
        """Only the member who ran the job sees and resumes it (when access control is on)."""
        if not isinstance(record, Checkpoint) or not self.require_member or not record.member_id:
            return True
        return self._member[0] == record.member_id

    async def offer(self) -> InterruptedJob | None:
        """The interrupted job as the member badged in may see it, or None."""
        record = self._interrupted
        if record is None or self._running is not None:
            return None
        if not self._may_act(record):
            return None
        return await self._offer_of(record)

    async def _offer_of(self, record: Checkpoint | DamagedCheckpoint) -> InterruptedJob:
        prepared: Path | None = None
        stat: tuple[int, int] | None = None
        if record.file is not None:
            try:
                prepared = self.files.prepared_path(record.file)
                st = await asyncio.to_thread(prepared.stat)
                stat = (st.st_mtime_ns, st.st_size)
            except (FileRejected, OSError):
                prepared = None
        version = self._firmware_version()
        key = (id(record), stat, version)
        if self._offer is not None and self._offer[0] == key:
            return self._offer[1]
        result = await asyncio.to_thread(self._build_offer, record, prepared, version)
        self._offer = (key, result)
        return result

    def _build_offer(
        self,
        record: Checkpoint | DamagedCheckpoint,
        prepared: Path | None,
        version: str | None,
    ) -> InterruptedJob:
        refused: tuple[str, str] | None = None
        index: FileIndex | None = None
        if prepared is not None:
            with contextlib.suppress(OSError):
                index = index_file(prepared, self.firmware, self._index_dir)
        if isinstance(record, Checkpoint):
            why = cpt.refusal(
                record,
                file_sha256_now=None if index is None else index.sha256,
                kind=self.machine.kind,
                firmware=self.firmware,
                firmware_version=version,
            )
            if why is not None:
                refused = (why.code, str(why))
        return read_interrupted(record, index, refused)

    async def _chosen(self, req: CommandRequest) -> tuple[Checkpoint, InterruptedJob, Layer]:
        job_id, number = req.args.get("job_id"), req.args.get("layer")
        if not isinstance(job_id, int) or not isinstance(number, int):
            raise CommandError("bad_args", "give the interrupted 'job_id' and the 'layer' number")
        record = self._interrupted
        if self._running is not None:
            raise CommandError("busy", "a job is running; resume when it has ended")
        if not isinstance(record, Checkpoint) or record.job_id != job_id:
            raise CommandError("not_found", f"job {job_id} is not waiting to be resumed")
        if not self._may_act(record):
            raise CommandError(
                "not_your_job",
                f"only {record.member_name or 'the member who ran it'} can resume this job; "
                "they badge in at the machine first",
            )
        offer = await self.offer()
        if offer is None:
            raise CommandError("not_found", f"job {job_id} is not waiting to be resumed")
        if not offer.resumable:
            raise CommandError(offer.refused_code or "refused", offer.refused)
        layer = next((la for la in offer.layers if la.number == number), None)
        if layer is None:
            raise CommandError(
                "bad_layer",
                f"layer {number} cannot be chosen; pick one of layers "
                f"{offer.layers[-1].number} to {offer.layers[0].number}",
            )
        return record, offer, layer

    async def _plan(self, record: Checkpoint, layer: Layer) -> tuple[Path, ResumePlan]:
        try:
            prepared = self.files.prepared_path(record.file)
        except FileRejected as err:
            raise CommandError(err.code, str(err)) from err
        cfg = self.config

        def build() -> ResumePlan:
            head = _head_height(prepared, record.line, self.firmware)
            return plan_resume(
                prepared,
                layer,
                self.firmware,
                head_z=head,
                lift=cfg.lift_mm,
                travel_feed=cfg.travel_feed,
                z_feed=cfg.z_feed,
                spin_up=cfg.spin_up_s,
                clearance=cfg.clearance_mm,
            )

        try:
            return prepared, await asyncio.to_thread(build)
        except (ResumeError, OSError) as err:
            raise CommandError("cannot_resume", str(err)) from err

    # -- commands ------------------------------------------------------------------------

    async def _cmd_offer(self, req: CommandRequest) -> dict[str, Any]:
        offer = await self.offer()
        return {"interrupted": None if offer is None else offer.as_dict()}

    async def _cmd_preview(self, req: CommandRequest) -> dict[str, Any]:
        record, _, layer = await self._chosen(req)
        _, plan = await self._plan(record, layer)
        return {"job_id": record.job_id, "file": record.file, **plan.as_dict()}

    async def _cmd_resume(self, req: CommandRequest) -> dict[str, Any]:
        record, _, layer = await self._chosen(req)
        if self.require_member:
            # The presence rule, as for any start: the access capability answers and
            # records the caller with the member present.
            await self.commands.call(
                "authorise_start", {"action": "resume", "origin": req.origin, "actor": req.actor}
            )
        prepared, plan = await self._plan(record, layer)
        dest = self._resumes_dir / f"job-{record.job_id}.gcode"
        try:
            count = await asyncio.to_thread(
                write_resumed_file, prepared, dest, plan, record.file_sha256
            )
        except ResumeError as err:
            raise CommandError("file_changed", str(err)) from err
        resumed = ResumedFrom(
            original=record, start_line=layer.line, preamble_lines=len(plan.preamble), copy=dest
        )
        try:
            job = await self._start_job(
                record.file, source=dest, lines_total=count, resumed=resumed, origin=req.origin
            )
        except BaseException:
            await asyncio.to_thread(dest.unlink, missing_ok=True)
            raise
        store = self._store
        if store is not None:
            await store.run(link_resumed, store.db, job.id, record.job_id, layer.line + 1)
        log.info(
            "job %d resumes job %d (%s) from layer %d, line %d",
            job.id,
            record.job_id,
            record.file,
            layer.number,
            layer.line + 1,
        )
        return {
            "job_id": job.id,
            "resumed_from": record.job_id,
            "layer": layer.number,
            "line": layer.line + 1,
            "z": layer.z,
        }

    async def _cmd_discard(self, req: CommandRequest) -> dict[str, Any]:
        record = self._interrupted
        job_id = req.args.get("job_id")
        if record is None or (job_id is not None and job_id != record.job_id):
            raise CommandError("not_found", "no interrupted job to discard")
        if not self._may_act(record):
            raise CommandError("not_your_job", "only the member who ran the job can discard it")
        self._interrupted = None
        self._offer = None
        self._pending = _CLEAR
        self._wake.set()
        return {"discarded": record.job_id}

