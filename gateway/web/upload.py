"""A multipart upload streamed straight into the machine's file library.

The request body is parsed as it arrives (python-multipart's push parser) and
the file part's bytes are handed to :meth:`FileLibrary.add` chunk by chunk, so
an upload never sits in memory or in a second temporary file, and the size
limit stops a too-large upload as soon as it passes the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from gateway.machine.files import FileLibrary, StoredFile
from gateway.web.errors import ApiError, PayloadTooLarge

#: Room for multipart boundaries and headers around the file itself.
OVERHEAD = 64 * 1024


@dataclass
class _Parts:
    """What the parser's callbacks have seen so far."""

    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""
    in_file: bool = False
    filename: str | None = None
    file_done: bool = False
    pending: list[bytes] = field(default_factory=list)

    def part_begin(self) -> None:
        self.disposition = b""
        self.header_field.clear()
        self.header_value.clear()

    def header_field_data(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def header_value_data(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def header_end(self) -> None:
        if bytes(self.header_field).lower() == b"content-disposition":
            self.disposition = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        name = options.get(b"filename")
        if name is not None and self.filename is None:
            self.filename = name.decode("utf-8", "replace")
            self.in_file = True

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.in_file:
            self.pending.append(bytes(data[start:end]))

    def part_end(self) -> None:
        if self.in_file:
            self.in_file = False
            self.file_done = True


def _boundary(request: Request) -> bytes:
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the file as multipart/form-data in a field named 'file'",
        )
    return boundary


def _size(n: int) -> str:
    """A size as the limits are set: KiB below a MiB, else MiB."""
    return f"{n // 1024} KiB" if n < 1024 * 1024 else f"{n // (1024 * 1024)} MiB"


class MultipartStream:
    """A request body fed to the multipart parser as it arrives, for the upload routes.

    ``parts`` collects what the callbacks see (:class:`_Parts` or a subclass); the file's
    bytes come out of :meth:`file_chunks` without the body ever being held whole, and a
    body over the library's limit (plus :data:`OVERHEAD`) is refused as soon as it is.
    """

    def __init__(self, request: Request, library: FileLibrary, parts: _Parts) -> None:
        self.max_bytes = library.max_bytes
        self.limit = library.max_bytes + OVERHEAD
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise PayloadTooLarge(
                f"the upload is {_size(int(declared))}; the limit is "
                f"{_size(self.max_bytes)} (jobs.max_upload_bytes)"
            )
        self.parts = parts
        self._parser = MultipartParser(
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
        self._body = request.stream()
        self._received = 0
        self._ended = False

    async def pump(self) -> bool:
        """Feed the parser one more piece of the body; False once the body has ended."""
        if self._ended:
            return False
        try:
            chunk = await anext(self._body)
        except StopAsyncIteration:
            self._ended = True
            try:
                self._parser.finalize()
            except MultipartParseError as err:
                raise ApiError(
                    400, "bad_multipart", f"the upload is not valid multipart: {err}"
                ) from err
            return False
        except ClientDisconnect as err:
            raise ApiError(400, "upload_interrupted", "the upload was interrupted") from err
        self._received += len(chunk)
        if self._received > self.limit:
            raise PayloadTooLarge(
                f"the upload is larger than the {_size(self.max_bytes)} limit "
                "(jobs.max_upload_bytes)"
            )
        try:
            if chunk:
                self._parser.write(chunk)
        except MultipartParseError as err:
            raise ApiError(
                400, "bad_multipart", f"the upload is not valid multipart: {err}"
            ) from err
        return True

    async def file_name(self) -> str:
        """Read on until the file part's headers: its name as sent."""
        while self.parts.filename is None:
            if not await self.pump():
                raise ApiError(
                    400, "no_file", "the upload has no file; send it in a field named 'file'"
                )
        return self.parts.filename

    async def file_chunks(self) -> AsyncIterator[bytes]:
        """The file part's bytes as they arrive (after :meth:`file_name`)."""
        parts = self.parts
        while True:
            if parts.pending:
                data = b"".join(parts.pending)
                parts.pending.clear()
                yield data
            if parts.file_done:
                return
            if not await self.pump() and not parts.pending and not parts.file_done:
                raise ApiError(
                    400, "upload_interrupted", "the upload ended in the middle of the file"
                )


async def receive_upload(request: Request, library: FileLibrary) -> StoredFile:
    """Parse the upload in ``request`` and add its file to ``library``.

    Raises :class:`ApiError` for a malformed request; :class:`FileRejected`
    (from the library) for a bad name, a file over the limit or bad G-code.
    """
    stream = MultipartStream(request, library, _Parts())
    name = await stream.file_name()
    return await library.add(name, stream.file_chunks())
