"""An OctoPrint-compatible surface for slicers' "send to printer", with member keys.

Only what slicers call, in OctoPrint's shapes where they read them:

- PrusaSlicer, OrcaSlicer, Bambu Studio (``OctoPrint.cpp``): ``GET /api/version``
  (needs an ``api`` key; ``text`` starting "OctoPrint"), then ``POST /api/files/local``
  multipart ``file``, ``path``, ``print``.
- Cura's OctoPrint plugin: ``/plugin/appkeys/*`` pairing, ``GET /api/settings``,
  ``/api/version``, ``/api/printerprofiles``, ``POST /api/login {"passive": true}``,
  polls ``/api/printer`` and ``/api/job``; uploads with ``select``/``print`` and, when
  it delays the start, POSTs ``{"command": "select", "print": true}`` to the upload's
  ``Location``.

The key comes in ``X-Api-Key`` (or ``?apikey=``) and is a member's slicer key.  A
missing key answers 401, a wrong or revoked one, or a suspended member's, 403, both
as ``{"error": "..."}`` like OctoPrint, which slicers show to the member.  A member
expired or not inducted here may still upload: nothing of theirs starts until they
can badge in.  ``print`` never starts the
machine: it holds the job for the key's member (see :mod:`gateway.slicer.held`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader

import gateway
from gateway.commands import CommandError
from gateway.machine.files import FileRejected
from gateway.web.context import WebContext
from gateway.web.errors import ApiError
from gateway.web.guard import web
from gateway.web.slicer_upload import SlicerUpload, receive_slicer_upload

#: The OctoPrint version answered; slicers check only that the API answers.
OCTOPRINT_VERSION = "1.10.0"
API_VERSION = "0.1"

#: Not in /openapi.json: a compatibility surface in OctoPrint's shapes, not the gateway's API.
router = APIRouter(tags=["slicers (OctoPrint-compatible)"], include_in_schema=False)


class OctoError(Exception):
    """A failure answered in OctoPrint's shape ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def install(app: FastAPI) -> None:
    async def octo_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OctoError)
        return JSONResponse({"error": exc.message}, exc.status, headers=exc.headers)

    app.add_exception_handler(OctoError, octo_error)


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    member_name: str
    label: str


#: A member's slicer key, as slicers send it.
api_key = APIKeyHeader(
    name="X-Api-Key",
    auto_error=False,
    scheme_name="member_key",
    description="A member's slicer key (touchscreen: 'My slicer key'; admins: "
    "`gateway slicer-key create`).",
)


def _key(request: Request) -> str | None:
    return request.headers.get("x-api-key") or request.query_params.get("apikey")


async def identify_member(request: Request, make: type[Exception] = OctoError) -> Member:
    """The member whose key the request carries; 401 without one, 403 for a bad one or
    a suspended member's."""
    ctx = web(request)
    address = request.client.host if request.client else ""
    now = time.monotonic()
    wait = ctx.auth_limit.retry_after(address, now)
    if wait is not None:
        raise make(429, f"too many refused keys from {address}; try again in {math.ceil(wait)} s")
    key = _key(request)
    if not key:
        raise make(
            401,
            "this needs your slicer key in the API key field (X-Api-Key); get it on the "
            "machine's touchscreen under 'My slicer key'",
        )
    try:
        found = await ctx.gw.commands.call("slicer_identify", {"key": key}, origin="web")
    except CommandError as err:
        if err.code == "bad_key":
            ctx.auth_limit.failed(address, now)
            ctx.metrics.auth_failures.inc()
            raise make(403, err.message) from err
        if err.code == "suspended":
            # A good key: not counted as a guess.
            raise make(403, err.message) from err
        if err.code == "unknown_command":
            raise make(
                503, "slicer uploads are turned off on this gateway ([slicer] enabled)"
            ) from err
        raise make(503, err.message) from err
    return Member(str(found["member_id"]), str(found["member_name"]), str(found["label"]))


async def _member(request: Request) -> Member:
    return await identify_member(request)


MemberKey = Annotated[Member, Depends(_member)]


def _ctx(request: Request) -> WebContext:
    return web(request)


Ctx = Annotated[WebContext, Depends(_ctx)]


# -- shared with the Moonraker surface ---------------------------------------------------


async def busy_names(ctx: WebContext) -> set[str]:
    """Files that a new upload must not replace: the running job's and held jobs'."""
    names: set[str] = set()
    job = ctx.machine.status()["job"]
    if job is not None and job["state"] in ("running", "paused", "queued"):
        names.add(job["file"])
    held = await ctx.gw.commands.call("slicer_held", origin="web")
    names.update(j["file"] for j in held["held"])
    return names


async def receive_member_upload(
    request: Request, ctx: WebContext, member: Member, *, door: str = "slicer"
) -> SlicerUpload:
    busy = await busy_names(ctx)
    upload = await receive_slicer_upload(request, ctx.machine.files, lambda: busy)
    await ctx.gw.commands.call(
        "slicer_file_added",
        {
            "file": upload.stored.name,
            "display_name": upload.display_name,
            "member_id": member.member_id,
            "member_name": member.member_name,
            "door": door,
        },
        origin="web",
        actor=f"member:{member.member_id}",
    )
    return upload


async def hold(ctx: WebContext, member: Member, file: str, door: str = "slicer") -> dict[str, Any]:
    return await ctx.gw.commands.call(
        "slicer_hold",
        {
            "file": file,
            "member_id": member.member_id,
            "member_name": member.member_name,
            "door": door,
        },
        origin="web",
        actor=f"member:{member.member_id}",
    )


def upload_status(err: FileRejected) -> int:
    """413 too large, 400 a bad name, 422 content that is not valid G-code."""
    return {"too_large": 413, "bad_name": 400}.get(err.code, 422)


def octo_state(status: dict[str, Any]) -> tuple[str, dict[str, bool]]:
    state = status["state"]
    text = {
        "idle": "Operational",
        "running": "Printing",
        "paused": "Paused",
        "error": "Error",
        "estop": "Error",
        "connecting": "Connecting",
        "disconnected": "Offline",
    }.get(state, "Offline")
    operational = state in ("idle", "running", "paused")
    flags = {
        "operational": operational,
        "printing": state == "running",
        "paused": state == "paused",
        "pausing": False,
        "cancelling": False,
        "resuming": False,
        "finishing": False,
        "ready": state == "idle",
        "error": state in ("error", "estop"),
        "closedOrError": not operational,
        "sdReady": False,
    }
    return text, flags


# -- routes -------------------------------------------------------------------------------


@router.get("/api/version")
async def version(member: MemberKey) -> dict[str, str]:
    """What OctoPrint answers; PrusaSlicer's "Test" checks ``text`` starts with it."""
    return {
        "api": API_VERSION,
        "server": OCTOPRINT_VERSION,
        "text": f"OctoPrint {OCTOPRINT_VERSION} (machine gateway {gateway.__version__})",
    }


@router.get("/api/server")
async def server(member: MemberKey) -> dict[str, Any]:
    return {"version": OCTOPRINT_VERSION, "safemode": None}


def _file_entry(request: Request, name: str, display: str) -> dict[str, Any]:
    url = f"{str(request.base_url).rstrip('/')}/api/files/local/{quote(name)}"
    return {
        "name": name,
        "display": display,
        "path": name,
        "origin": "local",
        "refs": {"resource": url, "download": url},
    }


@router.post("/api/files/local", status_code=201)
async def upload(request: Request, ctx: Ctx, member: MemberKey) -> JSONResponse:
    """Upload (streamed); ``print=true`` holds the job for the key's member."""
    try:
        received = await receive_member_upload(request, ctx, member)
    except ApiError as err:
        raise OctoError(err.status, err.message, err.headers) from err
    except FileRejected as err:
        raise OctoError(upload_status(err), str(err)) from err
    name = received.stored.name
    held: dict[str, Any] | None = None
    if received.flag("print"):
        held = await hold(ctx, member, name)
    entry = _file_entry(request, name, received.display_name)
    body = {
        "done": True,
        "files": {"local": entry},
        "effectiveSelect": False,
        "effectivePrint": bool(held and held.get("started")),
        "held": held,
    }
    return JSONResponse(body, 201, headers={"Location": entry["refs"]["resource"]})


@router.get("/api/files/local/{name}")
async def file_info(name: str, request: Request, ctx: Ctx, member: MemberKey) -> dict[str, Any]:
    try:
        stored = ctx.machine.files.get(name)
    except FileRejected as err:
        raise OctoError(404, str(err)) from err
    owners = (await ctx.gw.commands.call("slicer_files", origin="web"))["owners"]
    display = owners.get(stored.name, {}).get("display_name", stored.name)
    return {
        **_file_entry(request, stored.name, display),
        "size": stored.size,
        "date": int(stored.uploaded_at),
        "type": "machinecode",
        "gcodeAnalysis": {
            "estimatedPrintTime": stored.estimated_seconds,
            "filament": {"tool0": {"length": stored.filament_mm}},
        },
    }


@router.post("/api/files/local/{name}", status_code=204)
async def file_command(name: str, request: Request, ctx: Ctx, member: MemberKey) -> Response:
    """``{"command": "select", "print": true}`` holds the file for the key's member;
    a plain select changes nothing (the member picks at the machine)."""
    try:
        body = await request.json()
    except ValueError as err:
        raise OctoError(400, 'send JSON such as {"command": "select", "print": true}') from err
    if not isinstance(body, dict) or body.get("command") != "select":
        raise OctoError(400, 'only {"command": "select", "print": true} is supported here')
    try:
        stored = ctx.machine.files.get(name)
    except FileRejected as err:
        raise OctoError(404, str(err)) from err
    if body.get("print") is True:
        try:
            await hold(ctx, member, stored.name)
        except CommandError as err:
            raise OctoError(409, err.message) from err
    return Response(status_code=204)


@router.get("/api/job")
async def job(ctx: Ctx, member: MemberKey) -> dict[str, Any]:
    status = ctx.machine.status()
    text, _ = octo_state(status)
    j = status["job"]
    if j is None:
        return {
            "job": {
                "file": {"name": None, "origin": None, "size": None, "date": None},
                "estimatedPrintTime": None,
                "filament": None,
            },
            "progress": {
                "completion": None,
                "filepos": None,
                "printTime": None,
                "printTimeLeft": None,
            },
            "state": text,
        }
    fraction = j.get("fraction")
    return {
        "job": {
            "file": {
                "name": j.get("file"),
                "origin": "local",
                "size": j.get("bytes_total"),
                "date": None,
            },
            "estimatedPrintTime": j.get("estimated_seconds"),
            "filament": {"tool0": {"length": j.get("filament_mm")}},
        },
        "progress": {
            "completion": None if fraction is None else round(100 * fraction, 2),
            "filepos": j.get("bytes_done"),
            "printTime": j.get("elapsed"),
            "printTimeLeft": j.get("eta_seconds"),
        },
        "state": text,
    }


@router.get("/api/printer")
async def printer(ctx: Ctx, member: MemberKey) -> dict[str, Any]:
    status = ctx.machine.status()
    text, flags = octo_state(status)
    if not flags["operational"] and not flags["error"]:
        raise OctoError(409, "Printer is not operational")
    temperature: dict[str, Any] = {}
    for name, reading in status["temperatures"].items():
        key = {"T": "tool0", "B": "bed", "C": "chamber"}.get(name, name)
        actual, target = reading[0], reading[1]
        temperature[key] = {"actual": actual, "target": target, "offset": 0}
    return {
        "state": {"text": text, "flags": flags},
        "temperature": temperature,
        "sd": {"ready": False},
    }


@router.get("/api/settings")
async def settings(ctx: Ctx, member: MemberKey) -> dict[str, Any]:
    return {
        "api": {"enabled": True, "allowCrossOrigin": False},
        "appearance": {"name": ctx.gw.config.machine.name, "color": "default"},
        "feature": {"sdSupport": False, "temperatureGraph": False},
        "folder": {},
        "plugins": {},
        "printer": {"defaultExtrusionLength": 5},
        "serial": {"port": None, "baudrate": None},
        "temperature": {"profiles": []},
        "webcam": {
            "webcamEnabled": False,
            "streamUrl": "",
            "snapshotUrl": "",
            "flipH": False,
            "flipV": False,
            "rotate90": False,
        },
    }


@router.get("/api/printerprofiles")
async def printer_profiles(ctx: Ctx, member: MemberKey) -> dict[str, Any]:
    cfg = ctx.gw.config
    volume = cfg.slicer.build_volume
    width, depth, height = volume if volume is not None else (None, None, None)
    profile = {
        "id": "_default",
        "name": cfg.machine.name,
        "model": cfg.machine.kind,
        "color": "default",
        "current": True,
        "default": True,
        "heatedBed": cfg.machine.kind == "printer",
        "heatedChamber": False,
        "volume": {
            "width": width,
            "depth": depth,
            "height": height,
            "formFactor": "rectangular",
            "origin": "lowerleft",
            "custom_box": False,
        },
        "axes": {a: {"speed": 6000, "inverted": False} for a in "xyz"},
        "extruder": {
            "count": 1,
            "nozzleDiameter": 0.4,
            "offsets": [[0.0, 0.0]],
            "sharedNozzle": False,
        },
    }
    return {"profiles": {"_default": profile}}


def _user(member: Member) -> dict[str, Any]:
    return {
        "name": member.member_id,
        "active": True,
        "user": True,
        "admin": False,
        "apikey": None,
        "groups": ["users"],
        "permissions": ["FILES_UPLOAD", "FILES_LIST", "PRINT", "STATUS", "CONNECTION"],
        "needs": {"role": ["files_upload", "files_list", "print", "status"]},
        "settings": {},
    }


@router.post("/api/login")
async def login(request: Request, member: MemberKey) -> dict[str, Any]:
    """Only the passive login slicers use (``{"passive": true}`` with the key)."""
    return {**_user(member), "session": None, "_is_external_client": True}


@router.get("/api/currentuser")
async def current_user(member: MemberKey) -> dict[str, Any]:
    user = _user(member)
    return {"name": user["name"], "permissions": user["permissions"], "groups": user["groups"]}


# -- Cura's app-key pairing -----------------------------------------------------------------


@router.get("/plugin/appkeys/probe", status_code=204)
async def appkeys_probe(ctx: Ctx) -> Response:
    if "appkey_request" not in ctx.gw.commands.names:
        raise OctoError(404, "pairing is not available ([slicer] enabled = false)")
    return Response(status_code=204)


@router.post("/plugin/appkeys/request", status_code=201)
async def appkeys_request(request: Request, ctx: Ctx) -> JSONResponse:
    """A slicer asks for a key; a member approves it on the touchscreen."""
    try:
        body = await request.json()
    except ValueError as err:
        raise OctoError(400, 'send JSON such as {"app": "Cura"}') from err
    if not isinstance(body, dict):
        raise OctoError(400, 'send JSON such as {"app": "Cura"}')
    try:
        made = await ctx.gw.commands.call("appkey_request", {"app": body.get("app")}, origin="web")
    except CommandError as err:
        raise OctoError(400, err.message) from err
    token = made["app_token"]
    url = f"{str(request.base_url).rstrip('/')}/plugin/appkeys/request/{token}"
    return JSONResponse({"app_token": token}, 201, headers={"Location": url})


@router.get("/plugin/appkeys/request/{token}")
async def appkeys_poll(token: str, ctx: Ctx) -> JSONResponse:
    if len(token) > 64:
        raise OctoError(404, "no such request")
    state = await ctx.gw.commands.call("appkey_poll", {"token": token}, origin="web")
    if state["state"] == "approved":
        return JSONResponse({"api_key": state["api_key"]}, 200)
    if state["state"] == "pending":
        return JSONResponse({}, 202)
    raise OctoError(404, "the request was denied or has expired; ask again from the slicer")
