"""An interrupted job, as offered to the member who ran it, and the file a resume streams.

The blocking halves of resuming (reading a prepared file, hashing it, writing
the resumed copy) for the machine service to run in a thread; what to offer
and what to refuse comes from :mod:`gateway.machine.checkpoint` and the
preamble from :mod:`gateway.machine.resume`.

The offer names the layer the job was in when it was last confirmed (its
start, since the controller's planner may have held moves that never ran),
and every earlier layer as a choice.  A resumed job streams one file: the
preamble, then the original's lines from the chosen layer's first line; its
record keeps the original job's id (``resumed_from``) and that line
(``resumed_at_line``).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from gateway.machine.checkpoint import Checkpoint, DamagedCheckpoint, file_sha256
from gateway.machine.gcode import Firmware
from gateway.machine.resume import Layer, ResumeError, layer_index, preamble

__all__ = [
    "FileIndex",
    "InterruptedJob",
    "ResumePlan",
    "ensure_link_columns",
    "index_file",
    "link_resumed",
    "plan_resume",
    "read_interrupted",
    "write_resumed_file",
]


@dataclass(frozen=True, slots=True)
class InterruptedJob:
    """What the kiosk shows after a restart; ``layers`` newest first, ``[0]`` offered."""

    job_id: int | None
    file: str | None
    line: int | None  # lines confirmed (the next line to run, 0-based)
    lines_total: int | None
    member_id: str
    member_name: str
    interrupted_at: float | None
    layers: tuple[Layer, ...]
    refused: str  # why it cannot be resumed ("" if it can)
    refused_code: str

    @property
    def resumable(self) -> bool:
        return not self.refused and bool(self.layers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "file": self.file,
            "line": self.line,
            "lines_total": self.lines_total,
            "member_name": self.member_name,
            "interrupted_at": self.interrupted_at,
            "resumable": self.resumable,
            "reason": self.refused,
            "code": self.refused_code,
            "layers": [{"layer": la.number, "line": la.line + 1, "z": la.z} for la in self.layers],
        }


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """The chosen layer and the preamble that restores the state before it."""

    layer: Layer
    preamble: tuple[str, ...]
    lines_after: int  # original lines from the layer's first to the end

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer.number,
            "line": self.layer.line + 1,
            "z": self.layer.z,
            "preamble": list(self.preamble),
            "lines": self.lines_after,
        }


_CACHED_INDEXES = 32  # files whose layer index is kept


@dataclass(frozen=True, slots=True)
class FileIndex:
    """A prepared file's hash, line count and layers."""

    sha256: str
    lines: int
    layers: tuple[Layer, ...]


def _read_lines(path: Path) -> list[str]:
    with path.open("r", encoding="ascii", newline="\n") as fh:
        return fh.read().splitlines()


def index_file(path: Path, firmware: Firmware, cache_dir: Path) -> FileIndex:
    """Hash ``path`` and list its layers (blocking).

    The layers of a file are worked out once and kept in ``cache_dir`` under
    the file's hash: interpreting every line of a large file takes seconds on
    a Pi, hashing it a fraction of that.  A damaged cache entry is recomputed.
    """
    sha = file_sha256(path)
    cached = cache_dir / f"{sha}.{firmware}.json"
    try:
        data = json.loads(cached.read_text())
        layers = tuple(Layer(int(n), int(line), float(z)) for n, line, z in data["layers"])
        return FileIndex(sha, int(data["lines"]), layers)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    lines = _read_lines(path)
    index = FileIndex(sha, len(lines), tuple(layer_index(lines, firmware)))
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(".tmp")
        body = {"lines": index.lines, "layers": [[la.number, la.line, la.z] for la in index.layers]}
        tmp.write_text(json.dumps(body))
        os.replace(tmp, cached)
        kept = sorted(cache_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[_CACHED_INDEXES:]:
            old.unlink(missing_ok=True)
    return index


def read_interrupted(
    record: Checkpoint | DamagedCheckpoint,
    index: FileIndex | None,
    refused: tuple[str, str] | None,
) -> InterruptedJob:
    """Build the offer for ``record`` from its file's ``index`` (None when the
    file left the library); ``refused`` is a (code, reason) already decided
    (file changed, other machine)."""
    if isinstance(record, DamagedCheckpoint):
        return InterruptedJob(
            job_id=record.job_id,
            file=record.file,
            line=record.line,
            lines_total=None,
            member_id="",
            member_name="",
            interrupted_at=None,
            layers=(),
            refused=record.reason,
            refused_code="damaged",
        )
    layers: tuple[Layer, ...] = ()
    if refused is None and index is not None:
        all_layers = index.layers
        starts = [la.line for la in all_layers]
        # The layer holding the last confirmed line, and every one before it.
        upto = bisect.bisect_right(starts, record.line)
        layers = tuple(reversed(all_layers[:upto]))
        if not layers:
            refused = (
                "no_layer",
                "the job stopped before its first layer; start it again from the beginning",
            )
    code, reason = refused if refused is not None else ("", "")
    return InterruptedJob(
        job_id=record.job_id,
        file=record.file,
        line=record.line,
        lines_total=record.lines_total,
        member_id=record.member_id,
        member_name=record.member_name,
        interrupted_at=record.updated_at,
        layers=layers,
        refused=reason,
        refused_code=code,
    )


def plan_resume(
    prepared: Path,
    layer: Layer,
    firmware: Firmware,
    *,
    head_z: float | None,
    **settings: float,
) -> ResumePlan:
    """The preamble for resuming at ``layer`` (blocking: reads the file)."""
    lines = _read_lines(prepared)
    pre = preamble(lines, layer.line, firmware, head_z=head_z, **settings)
    return ResumePlan(layer=layer, preamble=tuple(pre), lines_after=len(lines) - layer.line)


def write_resumed_file(prepared: Path, dest: Path, plan: ResumePlan, sha256: str) -> int:
    """Write the preamble and the original's lines from the plan's layer into
    ``dest`` (atomically); return its line count.  Raises :class:`ResumeError`
    if the prepared file no longer has the hash the job ran with."""
    if file_sha256(prepared) != sha256:
        raise ResumeError(f"{prepared.name} changed since the job ran; start it again")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    count = 0
    with prepared.open("rb") as fin, tmp.open("wb") as fout:
        for line in plan.preamble:
            fout.write(line.encode("ascii") + b"\n")
            count += 1
        for i, raw in enumerate(fin):
            if i >= plan.layer.line:
                fout.write(raw if raw.endswith(b"\n") else raw + b"\n")
                count += 1
    os.replace(tmp, dest)
    return count


def ensure_link_columns(db: sqlite_utils.Database) -> None:
    """Add the columns that link a resumed job to its original to the jobs table."""
    table = db.table("jobs")
    if not table.exists():
        return
    columns = table.columns_dict
    if "resumed_from" not in columns:
        table.add_column("resumed_from", int)
    if "resumed_at_line" not in columns:
        table.add_column("resumed_at_line", int)


def link_resumed(db: sqlite_utils.Database, job_id: int, original: int, line: int) -> None:
    db.execute(
        "UPDATE jobs SET resumed_from = ?, resumed_at_line = ? WHERE id = ?",
        [original, line, job_id],
    )
