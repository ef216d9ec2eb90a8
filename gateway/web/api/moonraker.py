"""The three Moonraker calls OrcaSlicer's and SuperSlicer's Moonraker hosts use to
send a file, with the same member keys as the OctoPrint surface.

- ``GET /server/info``: the host check (``klippy_state``);
- ``POST /server/files/upload``: multipart ``file``, ``root`` (``gcodes``), ``path``,
  ``print`` (``true`` holds the job for the key's member);
- ``POST /printer/print/start?filename=...``: holds that file for the member.

Replies are wrapped in ``{"result": ...}`` and failures answered as
``{"error": {"code": <status>, "message": ...}}``, as Moonraker does.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse

import gateway
from gateway.commands import CommandError
from gateway.machine.files import FileRejected
from gateway.web.api.octoprint import (
    Ctx,
    Member,
    hold,
    identify_member,
    receive_member_upload,
    upload_status,
)
from gateway.web.errors import ApiError

#: Not in /openapi.json: a compatibility surface in Moonraker's shapes.
router = APIRouter(tags=["slicers (Moonraker-compatible)"], include_in_schema=False)


class MoonError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def install(app: FastAPI) -> None:
    async def moon_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MoonError)
        return JSONResponse(
            {"error": {"code": exc.status, "message": exc.message, "traceback": ""}},
            exc.status,
            headers=exc.headers,
        )

    app.add_exception_handler(MoonError, moon_error)


async def _member(request: Request) -> Member:
    return await identify_member(request, MoonError)


MemberKey = Annotated[Member, Depends(_member)]


@router.get("/server/info")
async def server_info(ctx: Ctx, member: MemberKey) -> dict[str, Any]:
    state = ctx.machine.status()["state"]
    klippy = {
        "idle": "ready",
        "running": "ready",
        "paused": "ready",
        "error": "error",
        "estop": "shutdown",
    }.get(state, "startup")
    return {
        "result": {
            "klippy_connected": state not in ("disconnected", "connecting"),
            "klippy_state": klippy,
            "components": ["file_manager", "machine_gateway"],
            "failed_components": [],
            "registered_directories": ["gcodes"],
            "warnings": [],
            "websocket_count": 0,
            "moonraker_version": f"gateway-{gateway.__version__}",
            "api_version": [1, 0, 0],
            "api_version_string": "1.0.0",
        }
    }


@router.post("/server/files/upload", status_code=201)
async def files_upload(request: Request, ctx: Ctx, member: MemberKey) -> JSONResponse:
    try:
        received = await receive_member_upload(request, ctx, member)
    except ApiError as err:
        raise MoonError(err.status, err.message, err.headers) from err
    except FileRejected as err:
        raise MoonError(upload_status(err), str(err)) from err
    root = received.fields.get("root", "gcodes")
    if root != "gcodes":
        ctx.machine.files.delete(received.stored.name)
        raise MoonError(400, f"only root=gcodes is supported, not {root!r}")
    held = await hold(ctx, member, received.stored.name) if received.flag("print") else None
    result = {
        "item": {"path": received.stored.name, "root": "gcodes"},
        "print_started": bool(held and held.get("started")),
        "print_queued": held is not None,
        "action": "create_file",
    }
    return JSONResponse({**result, "result": result}, 201)


@router.post("/printer/print/start")
async def print_start(
    ctx: Ctx,
    member: MemberKey,
    filename: Annotated[str, Query(min_length=1, max_length=255)],
) -> dict[str, Any]:
    try:
        stored = ctx.machine.files.get(filename.rsplit("/", 1)[-1])
    except FileRejected as err:
        raise MoonError(404, str(err)) from err
    try:
        await hold(ctx, member, stored.name)
    except CommandError as err:
        raise MoonError(409, err.message) from err
    return {"result": "ok"}
