"""Where the access list comes from: a file, an HTTP endpoint, or a retained MQTT topic.

Each source is a small polling coordinator with one async iterator,
:meth:`AccessListSource.updates`, yielding a :class:`ListFetched` (a list that
has already passed :func:`~gateway.access.members.parse_access_list`) or a
:class:`ListFailed` (with a message an admin can act on).  A source never
yields a list that failed validation, so the caller can apply every
``ListFetched`` and keep its last good copy on every ``ListFailed``.  An
unchanged list (same file, HTTP 304) yields nothing.

Every body a source can deliver ends as a list or a refusal with its reason,
never as an exception: the size is capped (``max_bytes``) before anything is
parsed (an HTTP body is read as a stream and dropped once over the cap, a file's
size is checked before it is read), gzip (a ``Content-Encoding`` or a gzipped
file or payload) is inflated in bounded steps so a "zip bomb" stops at the cap,
the text must be UTF-8, and JSON nested too deeply or holding absurd numbers is
refused by :func:`~gateway.access.members.parse_access_list`.  Parsing runs in a
worker thread so a large list never delays a badge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.access.config import (
    DEFAULT_LIST_MAX_BYTES,
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


class BodyRefused(Exception):
    """A body is refused before parsing (too large, cut short, unknown encoding)."""


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def _too_large(limit: int, what: str = "the access list") -> BodyRefused:
    return BodyRefused(
        f"{what} is larger than {_mb(limit)} (access.source.max_bytes); refused. Check the "
        "export from the membership system, or raise the limit if the list really is that big"
    )


def inflate(data: bytes, limit: int) -> bytes:
    """Decompress gzip or zlib ``data`` to at most ``limit`` bytes, in bounded steps, so a
    bomb (a few kB that inflate to gigabytes) stops at the cap instead of filling memory."""
    inflater = zlib.decompressobj(wbits=47)  # 32 + 15: gzip or zlib header, detected
    out = bytearray()
    try:
        pending = data
        while pending:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large(limit, "the access list, decompressed,")
            pending = inflater.unconsumed_tail
    except zlib.error as err:
        raise BodyRefused(f"the compressed access list is corrupt ({err})") from None
    if not inflater.eof:
        raise BodyRefused("the compressed access list is cut short")
    return bytes(out)


def _decode(data: bytes, limit: int, encoding: str) -> str:
    if len(data) > limit:
        raise _too_large(limit)
    coding = encoding.strip().lower()
    if coding in ("gzip", "x-gzip", "deflate") or data[:2] == b"\x1f\x8b":
        data = inflate(data, limit)
    elif coding not in ("", "identity"):
        raise BodyRefused(f"the access list came with Content-Encoding {encoding!r}; use gzip")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BodyRefused(
            f"the access list is not UTF-8 text (invalid byte at position {err.start}); "
            "export it as UTF-8 JSON"
        ) from None


def parse_body(
    data: bytes, secret: bytes, source: str, limit: int, encoding: str = "identity"
) -> SourceResult:
    """Any bytes to a list or a refusal with the reason; never raises (blocking: a thread)."""
    try:
        return ListFetched(parse_access_list(_decode(data, limit, encoding), secret), source)
    except (AccessListError, BodyRefused) as err:
        return ListFailed(source, str(err))
    except Exception as err:
        # Whatever else a hostile body provokes, it is refused rather than raised.
        log.warning("access list from %s could not be parsed", source, exc_info=True)
        return ListFailed(
            source, f"the access list could not be read ({type(err).__name__}); refused"
        )


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
        limit = self.cfg.max_bytes
        if signature[1] > limit:
            return ListFailed(self.description, str(_too_large(limit, str(path))))
        try:
            with path.open("rb") as fh:
                data = fh.read(limit + 1)  # the file may have grown since stat()
        except OSError as err:
            return ListFailed(self.description, f"cannot read {path}: {err.strerror}")
        return parse_body(data, self._secret, self.description, limit)

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
        # Compressed bodies are inflated here, in bounded steps (see inflate()).
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip"}
        if self.cfg.token is not None:
            headers["Authorization"] = f"Bearer {self.cfg.token.get_secret_value()}"
        return httpx.AsyncClient(
            timeout=self.cfg.timeout,
            headers=headers,
            transport=self._transport,
            follow_redirects=True,
        )

    async def check(self, client: httpx.AsyncClient, *, force: bool = False) -> SourceResult | None:
        """One request: a result, or None for 304 Not Modified.

        The body is streamed and dropped as soon as it passes ``max_bytes`` (or at once
        when ``Content-Length`` says it would); the whole download must finish within
        three times ``timeout``, so a server trickling bytes cannot hold the source.
        """
        headers = {"If-None-Match": self.etag} if self.etag and not force else {}
        limit = self.cfg.max_bytes
        try:
            async with asyncio.timeout(3 * self.cfg.timeout):
                fetched = await self._fetch(client, headers, limit)
        except TimeoutError:
            return ListFailed(
                self.description,
                f"the access list did not arrive within {3 * self.cfg.timeout:.0f} s",
            )
        except BodyRefused as err:
            return ListFailed(self.description, str(err))
        except httpx.HTTPError as err:
            return ListFailed(
                self.description,
                f"cannot fetch the access list: {type(err).__name__} {err}".strip(),
            )
        if fetched is None or isinstance(fetched, ListFailed):
            return fetched
        data, encoding, etag = fetched
        result = await asyncio.to_thread(
            parse_body, data, self._secret, self.description, limit, encoding
        )
        if isinstance(result, ListFetched):
            self.etag = etag
            return ListFetched(result.access_list, self.description, self.etag)
        return result

    async def _fetch(
        self, client: httpx.AsyncClient, headers: dict[str, str], limit: int
    ) -> tuple[bytes, str, str | None] | ListFailed | None:
        async with client.stream("GET", self.cfg.url, headers=headers) as response:
            if response.status_code == 304:
                return None
            if response.status_code != 200:
                hint = " (check access.source.token)" if response.status_code in (401, 403) else ""
                return ListFailed(
                    self.description, f"the server answered HTTP {response.status_code}{hint}"
                )
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            body = bytearray()
            # Raw bytes: decompression happens later, bounded, in parse_body().
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > limit:
                    raise _too_large(limit)
            encoding = response.headers.get("content-encoding", "identity")
            return bytes(body), encoding, response.headers.get("etag")

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

    def __init__(
        self,
        subscription: Subscription[AccessListReceived],
        secret: bytes,
        max_bytes: int = DEFAULT_LIST_MAX_BYTES,
    ) -> None:
        super().__init__()
        self._subscription = subscription
        self._secret = secret
        self.max_bytes = max_bytes

    def refresh(self) -> bool:
        # The broker re-delivers the retained list on reconnection; there is nothing to poll.
        return False

    async def updates(self) -> AsyncGenerator[SourceResult, None]:
        while True:
            event = await self._subscription.get()
            yield await asyncio.to_thread(
                parse_body,
                event.payload,
                self._secret,
                f"mqtt:{event.mqtt_topic}",
                self.max_bytes,
            )


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
            return MqttSource(subscription, secret, cfg.max_bytes)
