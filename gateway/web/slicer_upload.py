"""A slicer's multipart upload (OctoPrint's ``/api/files/local``, Moonraker's
``/server/files/upload``) streamed into the machine's library, with its form fields.

Like :mod:`gateway.web.upload`, the body is parsed as it arrives and the file part
goes chunk by chunk to :meth:`FileLibrary.add`, so memory stays flat whatever the
size.  In addition it keeps the small form fields (``path``, ``select``, ``print``,
``root``), before or after the file, and it names the file safely:

- the name as the member wrote it (accents, spaces, emoji) is kept for display; any
  folder part (``../``, ``C:\\``) is dropped, from the file name and from ``path``;
- the name on disk is made safe (:func:`gateway.slicer.held.disk_name`) and, when a
  file of that name is running or held, made distinct (``-2``), never replaced;
- the disk filling up answers 507 and leaves nothing; a request cut off after the
  file but before its end removes the file again.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable
from dataclasses import dataclass, field

from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from gateway.machine.files import FileLibrary, StoredFile
from gateway.slicer.errors import SlicerError
from gateway.slicer.held import disk_name, display_name, distinct_name
from gateway.web.errors import ApiError
from gateway.web.upload import MultipartStream, _Parts

MAX_FIELD = 1024
MAX_FIELDS = 16


@dataclass
class _FieldParts(_Parts):
    """The file part, as in :class:`_Parts`, plus the values of the other fields."""

    fields: dict[str, str] = field(default_factory=dict)
    field_name: str | None = None
    field_value: bytearray = field(default_factory=bytearray)

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        if options.get(b"filename") is not None and self.filename is None:
            super().headers_finished()
            return
        name = options.get(b"name")
        self.field_name = name.decode("utf-8", "replace") if name is not None else None
        self.field_value.clear()

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            super().part_data(data, start, end)
        elif self.field_name is not None:
            if len(self.field_value) + end - start > MAX_FIELD:
                raise ApiError(400, "bad_field", f"the form field {self.field_name!r} is too long")
            self.field_value += data[start:end]

    def part_end(self) -> None:
        if self.in_file:
            super().part_end()
        elif self.field_name is not None:
            if len(self.fields) >= MAX_FIELDS:
                raise ApiError(400, "bad_field", "the upload has too many form fields")
            self.fields[self.field_name] = bytes(self.field_value).decode("utf-8", "replace")
            self.field_name = None


@dataclass(frozen=True, slots=True)
class SlicerUpload:
    stored: StoredFile
    display_name: str
    fields: dict[str, str]

    def flag(self, name: str) -> bool:
        return self.fields.get(name, "").strip().lower() in ("true", "1", "yes", "on")


async def receive_slicer_upload(
    request: Request, library: FileLibrary, busy: Callable[[], set[str]]
) -> SlicerUpload:
    """Parse the upload and add its file to ``library`` under a safe, distinct name.

    ``busy`` gives the names of files that must not be replaced (running or held).
    Raises :class:`ApiError` (malformed request, 507 disk full) or :class:`FileRejected`.
    """
    parts = _FieldParts()
    stream = MultipartStream(request, library, parts)
    shown = display_name(await stream.file_name())
    try:
        name = disk_name(shown)
    except SlicerError as err:
        # OctoPrint also answers 415 to a file that is not machine code.
        raise ApiError(415, "not_gcode", err.message) from err
    name = distinct_name(name, busy())

    try:
        stored = await library.add(name, stream.file_chunks())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise ApiError(
                507,
                "disk_full",
                "the gateway's storage is full; delete old files on the machine and send again",
            ) from err
        raise
    try:
        while await stream.pump():
            pass
    except ApiError:
        with contextlib.suppress(Exception):
            library.delete(stored.name)
        raise
    return SlicerUpload(stored, shown, dict(parts.fields))
