"""Where the access list comes from: a file, an HTTP endpoint, or a retained MQTT topic.

Each source is a small polling coordinator with one async iterator,
:meth:`AccessListSource.updates`, yielding a :class:`ListFetched` (a list that
has already passed :func:`~gateway.access.members.parse_access_list`) or a
:class:`ListFailed` (with a message an admin can act on).  A source never
yields a list that failed validation, so the caller can apply every
``ListFetched`` and keep its last good copy on every ``ListFailed``.  An
unchanged list (same file, HTTP 304) yields nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.access.config import (
    AccessSourceConfig,
    FileSourceConfig,
    HttpSourceConfig,
    MqttSourceConfig,
)
from gateway.access.events import AccessListReceived
from gateway.access.members import AccessList, AccessListError, parse_access_list
from gateway.backoff import Backoff
from gateway.bus import Subscription

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ListFetched:
    access_list: AccessList
    source: str
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class ListFailed:
    source: str
    error: str


SourceResult = ListFetched | ListFailed


class AccessListSource(ABC):
    """One place access lists come from.  ``description`` names it in records and events."""

    description: str = "source"

    def __init__(self) -> None:
        self._refresh = asyncio.Event()

    @abstractmethod
    def updates(self) -> AsyncGenerator[SourceResult, None]:
        """New lists and failures, until cancelled."""

    def refresh(self) -> bool:
        """Check again now instead of at the next interval; False if this source cannot."""
        self._refresh.set()
        return True

    async def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` or until :meth:`refresh`; True if a refresh was asked for."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._refresh.wait()
        forced = self._refresh.is_set()
        self._refresh.clear()
        return forced


def _parse(data: bytes, secret: bytes, source: str) -> SourceResult:
    try:
        return ListFetched(parse_access_list(data, secret), source)
    except AccessListError as err:
        return ListFailed(source, str(err))


class FileSource(AccessListSource):
    """A JSON file re-read whenever its modification time or size changes."""

    def __init__(self, cfg: FileSourceConfig, secret: bytes) -> None:
        super().__init__()
        self.cfg = cfg
        self.description = f"file:{cfg.path}"
        self._secret = secret
        self._signature: tuple[int, int] | None = None
        self._seen_once = False

    def _read(self, force: bool) -> SourceResult | None:
        path: Path = self.cfg.path
        try:
            st = path.stat()
            signature: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            signature = None
        except OSError as err:
            return ListFailed(self.description, f"cannot read {path}: {err.strerror}")
        if self._seen_once and signature == self._signature and not force:
            return None
        self._seen_once = True
        self._signature = signature
        if signature is None:
            return ListFailed(self.description, f"{path} does not exist; check access.source.path")
        try:
            data = path.read_bytes()
        except OSError as err:
            return ListFailed(self.description, f"cannot read {path}: {err.strerror}")
        return _parse(data, self._secret, self.description)

    async def check(self, *, force: bool = False) -> SourceResult | None:
        """One look at the file: a result if it changed (or ``force``), else None."""
        return await asyncio.to_thread(self._read, force)

    async def updates(self) -> AsyncGenerator[SourceResult, None]:
        force = False
        while True:
            result = await self.check(force=force)
            if result is not None:
                yield result
            force = await self._wait(self.cfg.check_interval)


class HttpSource(AccessListSource):
    """Polls a URL with ``If-None-Match``; a 304 means the list is unchanged.

    ``etag`` is the ETag of the list already stored, so that a restart does not
    download an unchanged list again.  Failures are retried with the shared
    backoff, never less often than ``poll_interval``.
    """

    def __init__(
        self,
        cfg: HttpSourceConfig,
        secret: bytes,
        *,
        etag: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        url = httpx.URL(cfg.url)
        port = f":{url.port}" if url.port else ""
        # No credentials or query string: the description is stored and published.
        self.description = f"http:{url.scheme}://{url.host}{port}{url.path}"
        self.etag = etag
        self._secret = secret
        self._transport = transport

    def _client(self) -> httpx.AsyncClient:
        headers = {"Accept": "application/json"}
        if self.cfg.token is not None:
            headers["Authorization"] = f"Bearer {self.cfg.token.get_secret_value()}"
        return httpx.AsyncClient(
            timeout=self.cfg.timeout,
            headers=headers,
            transport=self._transport,
            follow_redirects=True,
        )

    async def check(self, client: httpx.AsyncClient, *, force: bool = False) -> SourceResult | None:
        """One request: a result, or None for 304 Not Modified."""
        headers = {"If-None-Match": self.etag} if self.etag and not force else {}
        try:
            response = await client.get(self.cfg.url, headers=headers)
        except httpx.HTTPError as err:
            return ListFailed(
                self.description,
                f"cannot fetch the access list: {type(err).__name__} {err}".strip(),
            )
        if response.status_code == 304:
            return None
        if response.status_code != 200:
            hint = " (check access.source.token)" if response.status_code in (401, 403) else ""
            return ListFailed(
                self.description, f"the server answered HTTP {response.status_code}{hint}"
            )
        result = _parse(response.content, self._secret, self.description)
        if isinstance(result, ListFetched):
            self.etag = response.headers.get("etag")
            return ListFetched(result.access_list, self.description, self.etag)
        return result

    async def updates(self) -> AsyncGenerator[SourceResult, None]:
        backoff = Backoff(initial=5.0, maximum=self.cfg.poll_interval)
        force = False
        async with self._client() as client:
            while True:
                result = await self.check(client, force=force)
                if isinstance(result, ListFailed):
                    delay = backoff.next_delay()
                else:
                    backoff.reset()
                    delay = self.cfg.poll_interval
                if result is not None:
                    yield result
                force = await self._wait(delay)


class MqttSource(AccessListSource):
    """Lists arriving as :class:`AccessListReceived` events from the telemetry capability.

    The subscription is made by the caller before telemetry connects, so the
    retained message delivered on connection is not missed.
    """

    description = "mqtt"

    def __init__(self, subscription: Subscription[AccessListReceived], secret: bytes) -> None:
        super().__init__()
        self._subscription = subscription
        self._secret = secret

    def refresh(self) -> bool:
        # The broker re-delivers the retained list on reconnection; there is nothing to poll.
        return False

    async def updates(self) -> AsyncGenerator[SourceResult, None]:
        while True:
            event = await self._subscription.get()
            yield _parse(event.payload, self._secret, f"mqtt:{event.mqtt_topic}")


def make_source(
    cfg: AccessSourceConfig,
    secret: bytes,
    *,
    etag: str | None,
    subscription: Subscription[AccessListReceived] | None,
) -> AccessListSource:
    """The source ``cfg`` describes.  ``subscription`` is required for MQTT."""
    match cfg:
        case FileSourceConfig():
            return FileSource(cfg, secret)
        case HttpSourceConfig():
            return HttpSource(cfg, secret, etag=etag)
        case MqttSourceConfig():
            if subscription is None:
                raise ValueError("an MQTT access list source needs a bus subscription")
            return MqttSource(subscription, secret)
