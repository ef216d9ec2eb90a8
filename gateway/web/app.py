"""The FastAPI application: the machine's HTTP API, its touchscreen UI and admin pages.

``create_app(gw)`` only builds routes and handlers; the token table opens and the
metrics' event counter starts in the app's lifespan, which uvicorn runs inside
the daemon's event loop (:mod:`gateway.web.server`).

- ``/``: the touchscreen (kiosk) page; ``/admin``: the admin pages; ``/static``.
- ``/api/...``: the API (see ``/openapi.json``); one error model for every failure
  (:mod:`gateway.web.errors`); bearer tokens or the kiosk (:mod:`gateway.web.guard`).
- ``/api/events``: live updates as server-sent events; ``/metrics``: Prometheus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import gateway
from gateway.web import errors, kiosk
from gateway.web.api import moonraker, octoprint, routers, slicer
from gateway.web.api.access import sim_router
from gateway.web.api.deps import AUTH_ERRORS
from gateway.web.api.sim_controller import sim_controller_router
from gateway.web.auth import Scope as TokenScope
from gateway.web.context import WebContext
from gateway.web.guard import allow
from gateway.web.metrics import HttpMetrics

if TYPE_CHECKING:
    from gateway.daemon import Gateway

#: Streamed uploads, which enforce ``jobs.max_upload_bytes`` themselves.
UPLOADS = frozenset({"/api/files", "/api/files/local", "/server/files/upload"})

#: Largest request body outside uploads (JSON commands are a few hundred bytes).
MAX_BODY = 64 * 1024


class BodyLimit:
    """Refuse oversized request bodies (413) before they are read into memory.

    Uploads (``POST /api/files``) enforce the upload limit while they stream.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["path"] in UPLOADS and scope["method"] == "POST"):
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length" and value.isdigit() and int(value) > self.limit:
                response = errors.error_json(
                    413, "too_large", f"the request body is over {self.limit // 1024} KiB"
                )
                await response(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # An HTTPException passes through FastAPI's body parsing unchanged.
                    raise HTTPException(413, f"the request body is over {self.limit // 1024} KiB")
            return message

        await self.app(scope, limited, send)


def create_app(gw: Gateway) -> FastAPI:
    ctx = WebContext(gw)
    app = FastAPI(
        title="Machine gateway",
        version=gateway.__version__,
        description=(
            "HTTP API of one makerspace machine's gateway. Authenticate with "
            "`Authorization: Bearer <token>` (scopes read < operate < admin); every "
            'failure answers `{"error": {"code": ..., "message": ...}}`.'
        ),
        # FastAPI's docs pages load their scripts from a CDN; the gateway works offline,
        # so it serves only the schema (/openapi.json) for tools to read.
        docs_url=None,
        redoc_url=None,
        lifespan=ctx.lifespan,
    )
    app.state.web = ctx
    app.state.stopping = ctx.stopping
    errors.install(app)
    octoprint.install(app)
    moonraker.install(app)
    for router in routers():
        app.include_router(router)
    if ctx.simulation:
        app.include_router(sim_router)
        app.include_router(slicer.sim_router)
        app.include_router(sim_controller_router)
    if gw.camera is not None:
        from gateway.camera.routes import camera_router

        app.include_router(
            camera_router(gw.camera),
            dependencies=[Depends(allow(TokenScope.READ, kiosk="always"))],
            # The guard above answers these before the camera's own routes run.
            responses=AUTH_ERRORS,
        )
    app.include_router(kiosk.router)
    app.mount("/static", StaticFiles(directory=kiosk.STATIC), name="static")
    app.add_middleware(BodyLimit, limit=MAX_BODY)
    app.add_middleware(HttpMetrics, metrics=ctx.metrics)
    return app
