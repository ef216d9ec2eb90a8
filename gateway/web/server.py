"""uvicorn serving the FastAPI app inside the daemon's own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from gateway.config import WebConfig
from gateway.supervisor import Service

log = logging.getLogger(__name__)


class _InLoopServer(uvicorn.Server):
    """The supervisor owns SIGTERM/SIGINT; uvicorn must not install its own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket whose accepted connections get ``TCP_NODELAY``.

    asyncio sets ``TCP_NODELAY`` only on sockets whose ``proto`` is
    ``IPPROTO_TCP``; :func:`socket.create_server` leaves it 0, and every response
    written in two parts (headers, body) then waits ~40 ms for a delayed ACK.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto or socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


class WebService(Service):
    name = "web"

    def __init__(self, config: WebConfig, app: FastAPI) -> None:
        super().__init__()
        self.config = config
        self.app = app
        self.port: int | None = None
        self._server: _InLoopServer | None = None

    @property
    def url(self) -> str:
        host = self.config.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{shown}:{self.port or self.config.port}/"

    async def run(self) -> None:
        cfg = uvicorn.Config(
            self.app,
            host=self.config.host,
            port=self.config.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        try:
            sock = _listen(self.config.host, self.config.port)
        except OSError as err:
            raise OSError(
                f"could not listen on {self.config.host}:{self.config.port} ({err}); "
                "is another gateway running? change web.port"
            ) from err
        cfg.load()
        server = _InLoopServer(cfg)
        # Server.serve() would create this; startup() is called directly here.
        server.lifespan = cfg.lifespan_class(cfg)
        self._server = server
        self.port = sock.getsockname()[1]
        try:
            try:
                await server.startup(sockets=[sock])
            except SystemExit as err:  # uvicorn exits the process when the lifespan fails
                raise RuntimeError(
                    "the web app failed to start; its error is logged above"
                ) from err
            log.info("web UI on %s", self.url)
            self.ready.set()
            await server.main_loop()
        finally:
            # Live streams never end by themselves: tell them to, before uvicorn waits.
            stopping = getattr(self.app.state, "stopping", None)
            if isinstance(stopping, asyncio.Event):
                stopping.set()
            with contextlib.suppress(Exception):
                await server.shutdown()
            sock.close()
            self._server = None
