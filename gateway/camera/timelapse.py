"""Per-job timelapses: when to take a frame, where frames and videos live, what to remove.

* :class:`TimelapseRecorder` (pure) turns the machine's job events into steps:
  begin a job's timelapse, capture a frame, finish it.  In ``layer`` mode a
  frame is taken at every :class:`~gateway.machine.events.LayerChanged`, in
  ``interval`` mode every ``interval_s`` while the job runs; in both, one at
  the start (the empty bed) and one at the end (the result).
* :class:`TimelapseStore` (blocking file work: call it in a thread) keeps each
  job's timelapse in ``<state_dir>/timelapse/<job_id>/``::

      timelapse.json     job, file, times, frames, state
      frame_000001.jpg   numbered without gaps (ffmpeg's image2 input stops at a gap)
      timelapse.mp4      once rendered (:mod:`gateway.camera.render`)

* :func:`plan_retention` (pure) picks what to remove: anything older than the
  age limit, then the oldest until the whole fits the disk limit.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from gateway.bus import Event
from gateway.camera.errors import TimelapseError
from gateway.machine.events import JobFinished, JobStarted, LayerChanged, MachineStatus

META = "timelapse.json"
VIDEO = "timelapse.mp4"
FRAME = "frame_{:06d}.jpg"
#: MachineStatus states in which a job is under way ("printing" in older firmware adapters).
ACTIVE_STATES = frozenset({"running", "printing", "paused"})
FINISHED_JOB_STATES = frozenset({"completed", "cancelled", "failed", "estop"})


class TimelapseState(StrEnum):
    RECORDING = "recording"
    FINISHED = "finished"  # frames complete; waiting for its video (or rendering is off)
    RENDERING = "rendering"
    READY = "ready"  # the video is there
    FAILED = "failed"  # rendering failed; frames kept, ``error`` says why
    EMPTY = "empty"  # the job ended without a single frame


@dataclass(frozen=True, slots=True)
class TimelapseInfo:
    job_id: int
    file: str
    started_at: float
    state: TimelapseState
    frames: int = 0
    ended_at: float | None = None
    outcome: str | None = None
    error: str | None = None
    size_bytes: int = 0  # everything in the job's folder; filled in when read

    def meta(self) -> dict[str, Any]:
        data = asdict(self)
        del data["size_bytes"]
        data["state"] = self.state.value
        return data


# ---------------------------------------------------------------------- recorder


@dataclass(frozen=True, slots=True)
class Begin:
    job_id: int
    file: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Capture:
    job_id: int
    reason: str  # start | layer | interval | end


@dataclass(frozen=True, slots=True)
class Finish:
    job_id: int
    outcome: str
    ended_at: float


Step = Begin | Capture | Finish


class TimelapseRecorder:
    """Decides when a job's timelapse begins, takes a frame and ends (no I/O)."""

    def __init__(self, mode: str, interval_s: float) -> None:
        self.mode = mode
        self.interval_s = interval_s
        self.job_id: int | None = None
        self._next_at: float | None = None

    def next_due(self) -> float | None:
        """Monotonic time of the next interval frame, or None."""
        return self._next_at

    def due(self, now: float) -> list[Step]:
        """The interval frame, if its time has come."""
        if self.job_id is None or self._next_at is None or now < self._next_at:
            return []
        while self._next_at <= now:
            self._next_at += self.interval_s
        return [Capture(self.job_id, "interval")]

    def on_event(self, event: Event, now: float, wall: float) -> list[Step]:
        """What to do about a machine event (``now`` monotonic, ``wall`` epoch seconds)."""
        if self.mode == "off":
            return []
        match event:
            case JobStarted(job_id=job_id, file=file):
                return self._begin(job_id, file, wall, now)
            case LayerChanged(job_id=job_id):
                steps = self._begin(job_id, "", wall, now) if job_id != self.job_id else []
                if self.mode == "layer":
                    steps.append(Capture(job_id, "layer"))
                return steps
            case JobFinished(job_id=job_id, outcome=outcome) if job_id == self.job_id:
                return self._finish(outcome, wall)
            case MachineStatus(state=state, job=job):
                return self._follow_status(state, job, now, wall)
        return []

    def _follow_status(
        self, state: str, job: dict[str, Any] | None, now: float, wall: float
    ) -> list[Step]:
        # Catches up when JobStarted/JobFinished were missed (the camera service restarted).
        job_id = job.get("id") if job is not None else None
        if state in ACTIVE_STATES and isinstance(job_id, int):
            if job_id != self.job_id:
                return self._begin(job_id, str(job.get("file", "")) if job else "", wall, now)
            return []
        if self.job_id is None:
            return []
        if job is None:
            return self._finish("unknown", wall)
        if job_id == self.job_id and job.get("state") in FINISHED_JOB_STATES:
            return self._finish(str(job["state"]), wall)
        return []

    def _begin(self, job_id: int, file: str, wall: float, now: float) -> list[Step]:
        steps: list[Step] = []
        if self.job_id is not None and self.job_id != job_id:
            steps.append(Finish(self.job_id, "interrupted", wall))
        if self.job_id != job_id:
            steps += [Begin(job_id, file, wall), Capture(job_id, "start")]
        self.job_id = job_id
        self._next_at = now + self.interval_s if self.mode == "interval" else None
        return steps

    def _finish(self, outcome: str, wall: float) -> list[Step]:
        job_id = self.job_id
        self.job_id = None
        self._next_at = None
        if job_id is None:
            return []
        return [Capture(job_id, "end"), Finish(job_id, outcome, wall)]


# ---------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class StoredTimelapse:
    job_id: int
    created: float  # epoch seconds
    size_bytes: int


def plan_retention(
    stored: Iterable[StoredTimelapse],
    now: float,
    max_bytes: float,
    max_age_s: float,
    keep: Collection[int] = (),
) -> list[int]:
    """Job ids to remove, oldest first: all older than ``max_age_s``, then the oldest
    until the rest fit in ``max_bytes``.  Ids in ``keep`` (recording) are never chosen."""
    entries = sorted(stored, key=lambda s: (s.created, s.job_id))
    total = sum(s.size_bytes for s in entries)
    doomed: list[int] = []
    for s in entries:
        if s.job_id in keep:
            continue
        if now - s.created > max_age_s or total > max_bytes:
            doomed.append(s.job_id)
            total -= s.size_bytes
    return doomed


# ---------------------------------------------------------------------- store


def _folder_size(path: Path) -> int:
    total = 0
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                total += entry.stat(follow_symlinks=False).st_size
    return total


class TimelapseStore:
    """The timelapse folders under ``root`` (blocking: use from a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._frames: dict[int, int] = {}  # frame counts of timelapses being recorded

    def job_dir(self, job_id: int) -> Path:
        return self.root / str(int(job_id))

    def video_path(self, job_id: int) -> Path:
        return self.job_dir(job_id) / VIDEO

    def _count_frames(self, job_id: int) -> int:
        folder = self.job_dir(job_id)
        try:
            names = set(os.listdir(folder))
        except FileNotFoundError:
            return 0
        n = 0
        while FRAME.format(n + 1) in names:
            n += 1
        return n

    def _write(self, info: TimelapseInfo) -> None:
        folder = self.job_dir(info.job_id)
        tmp = folder / (META + ".tmp")
        tmp.write_text(json.dumps(info.meta(), indent=1))
        os.replace(tmp, folder / META)

    def read(self, job_id: int) -> TimelapseInfo | None:
        folder = self.job_dir(job_id)
        try:
            data = json.loads((folder / META).read_text())
            info = TimelapseInfo(
                job_id=int(data["job_id"]),
                file=str(data.get("file", "")),
                started_at=float(data["started_at"]),
                state=TimelapseState(data["state"]),
                frames=int(data.get("frames", 0)),
                ended_at=None if data.get("ended_at") is None else float(data["ended_at"]),
                outcome=data.get("outcome"),
                error=data.get("error"),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            # A torn or hand-edited file: show what the folder holds.
            info = TimelapseInfo(
                job_id=job_id,
                file="",
                started_at=folder.stat().st_mtime,
                state=TimelapseState.FAILED,
                frames=self._count_frames(job_id),
                error=f"{META} is unreadable",
            )
        if info.state is TimelapseState.RECORDING and job_id in self._frames:
            info = replace(info, frames=self._frames[job_id])
        return replace(info, size_bytes=_folder_size(folder))

    def begin(self, job_id: int, file: str, started_at: float) -> TimelapseInfo:
        """Start (or, after a restart, resume) recording job ``job_id``."""
        self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        frames = self._count_frames(job_id)
        old = self.read(job_id)
        if old is not None and old.state is TimelapseState.RECORDING:
            info = replace(old, file=old.file or file, frames=frames)
        else:
            info = TimelapseInfo(job_id, file, started_at, TimelapseState.RECORDING, frames)
        self._frames[job_id] = frames
        self._write(info)
        return info

    def add_frame(self, job_id: int, jpeg: bytes) -> int:
        """Store the next frame of a recording; returns how many it has."""
        if job_id not in self._frames:
            raise TimelapseError(f"job {job_id} has no timelapse being recorded")
        n = self._frames[job_id] + 1
        path = self.job_dir(job_id) / FRAME.format(n)
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(jpeg)
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise TimelapseError(
                f"cannot store a timelapse frame of job {job_id}: {err}; is the disk full?"
            ) from err
        self._frames[job_id] = n
        return n

    def finish(self, job_id: int, outcome: str, ended_at: float) -> TimelapseInfo:
        """End the recording of ``job_id``: FINISHED with frames, else EMPTY."""
        self._frames.pop(job_id, None)
        self.job_dir(job_id).mkdir(parents=True, exist_ok=True)
        frames = self._count_frames(job_id)
        old = self.read(job_id)
        base = old or TimelapseInfo(job_id, "", ended_at, TimelapseState.RECORDING)
        state = TimelapseState.FINISHED if frames else TimelapseState.EMPTY
        info = replace(base, state=state, frames=frames, ended_at=ended_at, outcome=outcome)
        self._write(info)
        return info

    def mark(self, job_id: int, state: TimelapseState, error: str | None = None) -> TimelapseInfo:
        info = self.read(job_id)
        if info is None:
            raise TimelapseError(f"job {job_id} has no timelapse")
        info = replace(info, state=state, error=error)
        self._write(info)
        return replace(info, size_bytes=_folder_size(self.job_dir(job_id)))

    def remove_frames(self, job_id: int) -> None:
        folder = self.job_dir(job_id)
        for n in range(1, self._count_frames(job_id) + 1):
            (folder / FRAME.format(n)).unlink(missing_ok=True)

    def remove(self, job_id: int) -> None:
        self._frames.pop(job_id, None)
        shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    def job_ids(self) -> list[int]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit() and (self.root / n).is_dir())

    def listing(self) -> list[TimelapseInfo]:
        """Every timelapse, newest first."""
        infos = [i for i in (self.read(j) for j in self.job_ids()) if i is not None]
        return sorted(infos, key=lambda i: (i.started_at, i.job_id), reverse=True)

    def sweep(
        self, now: float, max_bytes: float, max_age_s: float, keep: Collection[int] = ()
    ) -> list[int]:
        """Remove what :func:`plan_retention` picks; returns the removed job ids."""
        stored = [StoredTimelapse(i.job_id, i.started_at, i.size_bytes) for i in self.listing()]
        doomed = plan_retention(stored, now, max_bytes, max_age_s, keep)
        for job_id in doomed:
            self.remove(job_id)
        return doomed
