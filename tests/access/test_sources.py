"""Access list sources: a file on disk, a real HTTP server on 127.0.0.1, the bus."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from gateway.access.config import FileSourceConfig, HttpSourceConfig
from gateway.access.events import AccessListReceived
from gateway.access.members import badge_hash
from gateway.access.sources import (
    FileSource,
    HttpSource,
    ListFailed,
    ListFetched,
    MqttSource,
    SourceResult,
)
from gateway.access.store import AccessStore
from gateway.bus import EventBus

SECRET = b"site-secret-for-tests-0123456789"


def document(n: int, *, count: int | None = None) -> bytes:
    members = [
        {
            "id": f"m-{i}",
            "name": f"Member {i}",
            "badges": [f"{i:08X}"],
            "machines": {"laser-1": "user"},
        }
        for i in range(1, n + 1)
    ]
    return json.dumps(
        {
            "version": 1,
            "generated_at": "2024-05-01T00:00:00Z",
            "count": n if count is None else count,
            "members": members,
        }
    ).encode()


async def first(results: AsyncIterator[SourceResult]) -> SourceResult:
    async with asyncio.timeout(5):
        return await anext(results)


# -- file ----------------------------------------------------------------------------------


async def test_file_source_reloads_on_change_and_never_yields_a_bad_list(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    path.write_bytes(document(3))
    source = FileSource(FileSourceConfig(path=path, check_interval=0.01), SECRET)

    result = await source.check()
    assert isinstance(result, ListFetched) and len(result.access_list) == 3
    assert result.source == f"file:{path}"
    assert await source.check() is None  # unchanged

    path.write_bytes(b'{"version": 1, "members": [')  # malformed
    failed = await source.check()
    assert isinstance(failed, ListFailed) and "not valid JSON" in failed.error
    assert await source.check() is None  # the same broken file is reported once

    path.write_bytes(document(3, count=4))  # truncated at a record boundary
    failed = await source.check()
    assert isinstance(failed, ListFailed) and "truncated" in failed.error

    path.unlink()
    failed = await source.check()
    assert isinstance(failed, ListFailed) and "does not exist" in failed.error

    path.write_bytes(document(5))
    result = await source.check()
    assert isinstance(result, ListFetched) and len(result.access_list) == 5


async def test_file_source_failures_keep_the_last_good_copy_in_the_store(tmp_path: Path) -> None:
    """What the service does with each result: apply a fetched list, record a failure."""
    path = tmp_path / "access.json"
    path.write_bytes(document(2))
    store = AccessStore.open(tmp_path / "gateway.db", "laser-1")
    source = FileSource(FileSourceConfig(path=path, check_interval=0.01), SECRET)
    updates = source.updates()

    async def apply_next() -> SourceResult:
        result = await first(updates)
        if isinstance(result, ListFetched):
            store.save_access_list(
                result.access_list, source=result.source, etag=None, fetched_at=1.0
            )
        else:
            store.record_list_error(source=result.source, error=result.error, at=2.0)
        return result

    assert isinstance(await apply_next(), ListFetched)
    path.write_bytes(document(2)[:-20])
    assert isinstance(await apply_next(), ListFailed)
    path.write_bytes(document(1, count=2))
    assert isinstance(await apply_next(), ListFailed)
    kept = store.load_access_list()
    assert kept is not None and len(kept) == 2
    assert kept.by_badge(badge_hash("00000002", SECRET)) is not None
    assert "truncated" in (store.list_meta().last_error or "")
    await updates.aclose()
    store.close()


async def test_file_source_refresh_rereads_now(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    path.write_bytes(document(1))
    source = FileSource(FileSourceConfig(path=path, check_interval=3600), SECRET)
    updates = source.updates()
    assert isinstance(await first(updates), ListFetched)
    assert source.refresh()
    assert isinstance(await first(updates), ListFetched)  # forced, though unchanged
    await updates.aclose()


# -- HTTP ----------------------------------------------------------------------------------


class ListServer:
    """A tiny access-list server with ETags, in a thread."""

    def __init__(self) -> None:
        self.body = document(2)
        self.etag = '"v1"'
        self.status = 200
        self.requests: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(dict(self.headers.items()))
                if server.status != 200:
                    self.send_response(server.status)
                    self.end_headers()
                    return
                if self.headers.get("If-None-Match") == server.etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", server.etag)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/access-list?key=x"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ListServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ListServer]:
    with ListServer() as s:
        yield s


async def test_http_source_uses_etags(server: ListServer) -> None:
    cfg = HttpSourceConfig(url=server.url, poll_interval=5, token=SecretStr("s3cret"))
    source = HttpSource(cfg, SECRET)
    assert source.description.startswith("http:http://127.0.0.1:")
    assert "key=x" not in source.description
    async with source._client() as client:
        result = await source.check(client)
        assert isinstance(result, ListFetched) and result.etag == '"v1"'
        assert len(result.access_list) == 2
        assert server.requests[0]["Authorization"] == "Bearer s3cret"
        assert "If-None-Match" not in server.requests[0]

        assert await source.check(client) is None  # 304
        assert server.requests[1]["If-None-Match"] == '"v1"'

        server.body, server.etag = document(3), '"v2"'
        result = await source.check(client)
        assert isinstance(result, ListFetched) and len(result.access_list) == 3
        assert source.etag == '"v2"'

        server.body, server.etag = document(3, count=9), '"v3"'
        failed = await source.check(client)
        assert isinstance(failed, ListFailed) and "truncated" in failed.error
        assert source.etag == '"v2"'  # not advanced past the bad list

        server.status = 401
        failed = await source.check(client)
        assert isinstance(failed, ListFailed) and "HTTP 401" in failed.error
        assert "token" in failed.error


async def test_http_source_starts_from_the_stored_etag(server: ListServer) -> None:
    source = HttpSource(HttpSourceConfig(url=server.url, poll_interval=5), SECRET, etag='"v1"')
    async with source._client() as client:
        assert await source.check(client) is None
        assert isinstance(await source.check(client, force=True), ListFetched)


async def test_http_source_reports_an_unreachable_server() -> None:
    cfg = HttpSourceConfig(url="http://127.0.0.1:9/list", poll_interval=5, timeout=2)
    source = HttpSource(cfg, SECRET)
    async with source._client() as client:
        failed = await source.check(client)
    assert isinstance(failed, ListFailed) and "cannot fetch" in failed.error


async def test_http_updates_loop_polls_and_refreshes(server: ListServer) -> None:
    source = HttpSource(HttpSourceConfig(url=server.url, poll_interval=3600), SECRET)
    updates = source.updates()
    assert isinstance(await first(updates), ListFetched)
    server.body, server.etag = document(4), '"v2"'
    source.refresh()
    result = await first(updates)
    assert isinstance(result, ListFetched) and len(result.access_list) == 4
    await updates.aclose()


# -- MQTT ----------------------------------------------------------------------------------


async def test_mqtt_source_reads_lists_from_the_bus() -> None:
    bus = EventBus()
    source = MqttSource(bus.subscribe(AccessListReceived), SECRET)
    assert not source.refresh()
    updates = source.updates()
    bus.publish(AccessListReceived(payload=document(2), mqtt_topic="site/access-list"))
    result = await first(updates)
    assert isinstance(result, ListFetched) and result.source == "mqtt:site/access-list"
    bus.publish(AccessListReceived(payload=b"garbage", mqtt_topic="site/access-list"))
    assert isinstance(await first(updates), ListFailed)
    await updates.aclose()
