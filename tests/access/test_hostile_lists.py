"""Hostile access list bodies through every source: each ends as a refused list with
its reason, never as an exception, and the last good list keeps working.

Sources are the real ones: a file on disk, a ThreadingHTTPServer on 127.0.0.1 (with
and without Content-Length, gzip as Content-Encoding).  The MQTT path, through a
real Mosquitto, is in tests/telemetry/test_access_list_hostile.py.
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gateway.access.config import FileSourceConfig, HttpSourceConfig
from gateway.access.members import AccessListError, parse_access_list
from gateway.access.sources import FileSource, HttpSource, ListFailed, ListFetched, inflate

SECRET = b"site-secret-for-tests-0123456789"
GOOD = (
    b'{"version": 1, "generated_at": "2024-05-01T00:00:00Z", "count": 1, "members": '
    b'[{"id": "m-1", "name": "Ada", "badges": ["04A1B2C3"], "machines": {"*": "user"}}]}'
)


def test_parse_access_list_refuses_deep_nesting_with_its_own_error() -> None:
    """The bug as found: RecursionError escaped, which only ValueError was caught for."""
    deep = b'{"members": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(AccessListError, match="nested too deeply"):
        parse_access_list(deep, SECRET)


def test_inflate_stops_a_bomb_at_the_cap() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = b"".join(packer.compress(b"\0" * 1_000_000) for _ in range(50)) + packer.flush()
    assert len(bomb) < 100_000
    with pytest.raises(Exception, match="larger than"):
        inflate(bomb, 1_000_000)
    assert inflate(zlib.compress(GOOD), 10_000) == GOOD


# -- file ----------------------------------------------------------------------------------


async def test_file_source_refuses_every_hostile_body_and_recovers(
    tmp_path: Path, hostile_bodies: dict[str, tuple[bytes, str]]
) -> None:
    path = tmp_path / "access.json"
    source = FileSource(FileSourceConfig(path=path, check_interval=1), SECRET)
    for name, (body, phrase) in hostile_bodies.items():
        path.write_bytes(body)
        result = await source.check(force=True)
        assert isinstance(result, ListFailed), name
        assert phrase in result.error, (name, result.error)
    path.write_bytes(GOOD)
    assert isinstance(await source.check(force=True), ListFetched)


async def test_a_gzipped_list_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "access.json.gz"
    path.write_bytes(gzip.compress(GOOD))
    result = await FileSource(FileSourceConfig(path=path), SECRET).check()
    assert isinstance(result, ListFetched) and len(result.access_list) == 1


# -- HTTP ----------------------------------------------------------------------------------


class HostileServer:
    """Serves ``body`` with the given headers; ``length`` False sends it chunked-less,
    closing the connection at the end (no Content-Length), as a careless server would."""

    def __init__(self) -> None:
        self.body = GOOD
        self.headers: dict[str, str] = {}
        self.length = True
        self.sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                for key, value in server.headers.items():
                    self.send_header(key, value)
                if server.length:
                    self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                view = memoryview(server.body)
                try:
                    for i in range(0, len(view), 65536):
                        self.wfile.write(view[i : i + 65536])
                        server.sent = i + 65536
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on a body that is too large

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/access-list"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HostileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hostile_server() -> Iterator[HostileServer]:
    with HostileServer() as s:
        yield s


async def test_http_source_refuses_every_hostile_body_and_keeps_going(
    hostile_server: HostileServer, hostile_bodies: dict[str, tuple[bytes, str]]
) -> None:
    source = HttpSource(HttpSourceConfig(url=hostile_server.url, timeout=10), SECRET)
    async with source._client() as client:
        assert isinstance(await source.check(client), ListFetched)
        for with_length in (True, False):
            hostile_server.length = with_length
            for name, (body, phrase) in hostile_bodies.items():
                hostile_server.body = body
                result = await source.check(client, force=True)
                assert isinstance(result, ListFailed), (name, with_length)
                assert phrase in result.error, (name, with_length, result.error)
        hostile_server.body, hostile_server.length = GOOD, True
        assert isinstance(await source.check(client, force=True), ListFetched)


async def test_http_source_stops_reading_a_body_over_the_cap(
    hostile_server: HostileServer, hostile_bodies: dict[str, tuple[bytes, str]]
) -> None:
    body, _ = hostile_bodies["50 MB"]
    hostile_server.body, hostile_server.length = body, False
    cfg = HttpSourceConfig(url=hostile_server.url, timeout=10, max_bytes=1024 * 1024)
    source = HttpSource(cfg, SECRET)
    async with source._client() as client:
        result = await source.check(client)
    assert isinstance(result, ListFailed) and "larger than 1.0 MB" in result.error
    # The client hung up long before the 50 MB were sent (socket buffers aside).
    assert hostile_server.sent < 20 * 1024 * 1024


async def test_http_source_inflates_gzip_content_encoding_within_the_cap(
    hostile_server: HostileServer, hostile_bodies: dict[str, tuple[bytes, str]]
) -> None:
    source = HttpSource(HttpSourceConfig(url=hostile_server.url), SECRET)
    hostile_server.headers = {"Content-Encoding": "gzip"}
    async with source._client() as client:
        hostile_server.body = gzip.compress(GOOD)
        assert isinstance(await source.check(client), ListFetched)
        hostile_server.body = hostile_bodies["a gzip bomb"][0]
        result = await source.check(client, force=True)
        assert isinstance(result, ListFailed) and "larger than" in result.error
        hostile_server.headers = {"Content-Encoding": "br"}
        hostile_server.body = GOOD
        result = await source.check(client, force=True)
        assert isinstance(result, ListFailed) and "Content-Encoding" in result.error
