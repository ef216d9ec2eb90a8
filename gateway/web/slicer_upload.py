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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from gateway.machine.files import FileLibrary, StoredFile
from gateway.slicer.errors import SlicerError
from gateway.slicer.held import disk_name, display_name, distinct_name
from gateway.web.errors import ApiError, PayloadTooLarge
from gateway.web.upload import OVERHEAD, _boundary, _Parts

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
    limit = library.max_bytes + OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"the upload is {int(declared) // (1024 * 1024)} MiB; the limit is "
            f"{library.max_bytes // (1024 * 1024)} MiB (jobs.max_upload_bytes)"
        )
    parts = _FieldParts()
    parser = MultipartParser(
        _boundary(request),
        {
            "on_part_begin": parts.part_begin,
            "on_header_field": parts.header_field_data,
            "on_header_value": parts.header_value_data,
            "on_header_end": parts.header_end,
            "on_headers_finished": parts.headers_finished,
            "on_part_data": parts.part_data,
            "on_part_end": parts.part_end,
        },
    )
    body = request.stream()
    received = 0
    ended = False

    async def pump() -> bool:
        nonlocal received, ended
        if ended:
            return False
        try:
            chunk = await anext(body)
        except StopAsyncIteration:
            ended = True
            try:
                parser.finalize()
            except MultipartParseError as err:
                raise ApiError(
                    400, "bad_multipart", f"the upload is not valid multipart: {err}"
                ) from err
            return False
        except ClientDisconnect as err:
            raise ApiError(400, "upload_interrupted", "the upload was interrupted") from err
        received += len(chunk)
        if received > limit:
            raise PayloadTooLarge(
                f"the upload is larger than the {library.max_bytes // (1024 * 1024)} MiB limit "
                "(jobs.max_upload_bytes)"
            )
        try:
            if chunk:
                parser.write(chunk)
        except MultipartParseError as err:
            raise ApiError(
                400, "bad_multipart", f"the upload is not valid multipart: {err}"
            ) from err
        return True

    while parts.filename is None:
        if not await pump():
            raise ApiError(
                400, "no_file", "the upload has no file; send it in a field named 'file'"
            )

    shown = display_name(parts.filename)
    try:
        name = disk_name(shown)
    except SlicerError as err:
        # OctoPrint also answers 415 to a file that is not machine code.
        raise ApiError(415, "not_gcode", err.message) from err
    name = distinct_name(name, busy())

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            if parts.pending:
                data = b"".join(parts.pending)
                parts.pending.clear()
                yield data
            if parts.file_done:
                return
            if not await pump() and not parts.pending and not parts.file_done:
                raise ApiError(
                    400, "upload_interrupted", "the upload ended in the middle of the file"
                )

    try:
        stored = await library.add(name, chunks())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise ApiError(
                507,
                "disk_full",
                "the gateway's storage is full; delete old files on the machine and send again",
            ) from err
        raise
    try:
        while await pump():
            pass
    except ApiError:
        with contextlib.suppress(Exception):
            library.delete(stored.name)
        raise
    return SlicerUpload(stored, shown, dict(parts.fields))
