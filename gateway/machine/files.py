"""The machine's G-code library: uploads checked, cleaned and analysed once.

An upload is streamed to a temporary file (stopping at the size limit), then
validated and cleaned into a prepared copy that the streamer reads, and
analysed (duration, filament) — in a short-lived worker process, so the event
loop and a running job's serial line stay free.  Only a file that passed all of
that appears in the library; a rejected upload leaves nothing behind and changes
nothing already there.

Layout under ``root``: ``<name>`` (the original as uploaded),
``.prepared/<name>`` (cleaned lines), ``.meta/<name>.json`` (analysis).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import re
import time
import uuid
from collections.abc import AsyncIterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from gateway.machine.analysis import analyze_file
from gateway.machine.errors import MachineError
from gateway.machine.gcode import GcodeError, prepare_file

SUFFIXES = (".gcode", ".gco", ".gc", ".g", ".nc", ".ngc", ".tap", ".cnc")
MAX_NAME = 120
#: Worker processes start fresh (a fork of the multi-threaded daemon is not safe).
_SPAWN = multiprocessing.get_context("spawn")
log = logging.getLogger(__name__)


def _lower_priority() -> None:
    """Run the worker at the lowest CPU priority, where the system allows it: the
    service's system-call filter denies ``setpriority`` (``~@resources``), and a
    worker at normal priority still keeps the event loop's GIL free."""
    with contextlib.suppress(OSError):
        os.nice(19)


_BAD_CHARS = re.compile(r"[^A-Za-z0-9._()+\- ]")


class FileRejected(MachineError):
    """An upload or file request was refused; ``code`` says which rule."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[FileRejected], tuple[str, str]]:
        # Raised in the worker process that checks an upload, and pickled back.
        return (FileRejected, (self.code, str(self)))


def sanitise_name(name: str) -> str:
    """Return a safe file name, or raise :class:`FileRejected` for path tricks."""
    if not name or not name.strip():
        raise FileRejected("bad_name", "the file has no name")
    if any(sep in name for sep in ("/", "\\", "\x00")) or name.strip() in (".", ".."):
        raise FileRejected(
            "bad_name", f"file name {name!r} contains a path; upload a plain file name"
        )
    if name.startswith("."):
        raise FileRejected("bad_name", f"file name {name!r} may not start with a dot")
    cleaned = _BAD_CHARS.sub("_", name.strip())
    if len(cleaned) > MAX_NAME:
        raise FileRejected("bad_name", f"file name is longer than {MAX_NAME} characters")
    if not cleaned.lower().endswith(SUFFIXES):
        raise FileRejected(
            "bad_name",
            f"{name!r} is not a G-code file name; use one of: {', '.join(SUFFIXES)}",
        )
    return cleaned


@dataclass(frozen=True, slots=True)
class StoredFile:
    name: str
    size: int  # bytes as uploaded
    uploaded_at: float
    lines: int  # G-code lines after cleaning
    bytes: int  # bytes sent to the controller (cleaned, before line numbers)
    estimated_seconds: float | None
    filament_mm: float | None
    analysis: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class FileLibrary:
    """Uploaded G-code files of one machine."""

    def __init__(
        self,
        root: Path,
        *,
        firmware: Literal["marlin", "grbl"],
        max_line_length: int,
        max_bytes: int,
    ) -> None:
        self.root = root
        self.firmware = firmware
        self.max_line_length = max_line_length
        self.max_bytes = max_bytes
        self._prepared = root / ".prepared"
        self._meta = root / ".meta"
        self._incoming = root / ".incoming"
        for d in (root, self._prepared, self._meta, self._incoming):
            d.mkdir(parents=True, exist_ok=True)
        for stale in self._incoming.iterdir():
            stale.unlink(missing_ok=True)

    def prepared_path(self, name: str) -> Path:
        self.get(name)
        return self._prepared / sanitise_name(name)

    def get(self, name: str) -> StoredFile:
        safe = sanitise_name(name)
        meta = self._meta / f"{safe}.json"
        try:
            data = json.loads(meta.read_text())
            return StoredFile(**data)
        except FileNotFoundError as err:
            raise FileRejected("not_found", f"no file named {safe!r}") from err
        except (ValueError, TypeError) as err:
            raise FileRejected(
                "corrupt", f"the record of {safe!r} is damaged; upload the file again"
            ) from err

    def list(self) -> list[StoredFile]:
        files = []
        for meta in sorted(self._meta.glob("*.json")):
            with contextlib.suppress(FileRejected):
                files.append(self.get(meta.name[: -len(".json")]))
        files.sort(key=lambda f: f.uploaded_at, reverse=True)
        return files

    def delete(self, name: str) -> None:
        safe = sanitise_name(name)
        self.get(safe)
        for p in (self._meta / f"{safe}.json", self._prepared / safe, self.root / safe):
            p.unlink(missing_ok=True)

    async def add(self, name: str, chunks: AsyncIterable[bytes]) -> StoredFile:
        """Store an upload; raise :class:`FileRejected` (too large, bad name, bad G-code)."""
        safe = sanitise_name(name)
        tmp = self._incoming / f"{uuid.uuid4().hex}.upload"
        size = 0
        try:
            with tmp.open("wb") as fh:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise FileRejected(
                            "too_large",
                            f"{safe} is larger than the {self.max_bytes // (1024 * 1024)} MiB "
                            "upload limit (jobs.max_upload_bytes)",
                        )
                    fh.write(chunk)
            # Checking and analysing a large file is seconds of pure-Python work: in a
            # thread it would hold the GIL against the event loop and slow a running
            # job's streaming; a short-lived worker process at the lowest CPU priority
            # leaves the loop (and the controller's serial line) alone.
            loop = asyncio.get_running_loop()
            pool = ProcessPoolExecutor(
                max_workers=1, mp_context=_SPAWN, initializer=_lower_priority
            )
            try:
                return await loop.run_in_executor(pool, self._install, safe, tmp, size)
            except (BrokenProcessPool, OSError) as err:
                # No worker process to be had (a sandbox, memory): check it here instead,
                # slower for a running job but never a lost upload.
                log.warning("no worker process to check %s (%s); checking in a thread", safe, err)
                return await asyncio.to_thread(self._install, safe, tmp, size)
            finally:
                pool.shutdown(wait=False)
        finally:
            tmp.unlink(missing_ok=True)

    def add_path(self, src: Path, name: str | None = None) -> StoredFile:
        """Copy a local file into the library (CLI, tests); blocking."""
        safe = sanitise_name(name or src.name)
        size = src.stat().st_size
        if size > self.max_bytes:
            raise FileRejected("too_large", f"{safe} is larger than the upload limit")
        tmp = self._incoming / f"{uuid.uuid4().hex}.upload"
        try:
            with src.open("rb") as fin, tmp.open("wb") as fout:
                while block := fin.read(1 << 20):
                    fout.write(block)
            return self._install(safe, tmp, size)
        finally:
            tmp.unlink(missing_ok=True)

    def _install(self, safe: str, tmp: Path, size: int) -> StoredFile:
        prepared_tmp = self._incoming / f"{tmp.stem}.prepared"
        try:
            try:
                prepared = prepare_file(
                    tmp, prepared_tmp, firmware=self.firmware, max_line_length=self.max_line_length
                )
            except GcodeError as err:
                raise FileRejected("invalid_gcode", f"{safe}: {err}") from err
            analysis = analyze_file(prepared_tmp, firmware=self.firmware).to_dict()
            record = StoredFile(
                name=safe,
                size=size,
                uploaded_at=time.time(),
                lines=prepared.lines,
                bytes=prepared.bytes,
                estimated_seconds=_float(analysis.get("estimated_seconds")),
                filament_mm=_float(analysis.get("filament_mm")),
                analysis=analysis,
            )
            os.replace(tmp, self.root / safe)
            os.replace(prepared_tmp, self._prepared / safe)
            meta_tmp = self._incoming / f"{tmp.stem}.json"
            meta_tmp.write_text(json.dumps(record.as_dict()))
            os.replace(meta_tmp, self._meta / f"{safe}.json")
            return record
        finally:
            prepared_tmp.unlink(missing_ok=True)


def _float(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) else None
