"""The camera's HTTP API, an ``APIRouter`` the web app includes.

``camera_router(service)`` serves, under ``/api/camera``:

- ``GET /stream.mjpg``: the live view, ``multipart/x-mixed-replace`` (an ``<img>``
  shows it); ``?fps=`` lowers a viewer's rate.  Each part is the encoder's JPEG as
  is; a viewer too slow for the camera skips frames, and slows nobody else.
- ``GET /snapshot.jpg``: the current picture.
- ``GET /status``: camera, viewers, active alerts, timelapse recording.
- ``GET /timelapses``: every job's timelapse, newest first;
  ``GET /timelapses/{job_id}.mp4``: its video.
- ``GET /snapshots/{name}``: a picture saved by the ``snapshot`` command.

The router has no authentication of its own: the web app adds its auth
dependency when it includes it (``include_router(..., dependencies=[...])``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response, StreamingResponse
from pydantic import BaseModel

from gateway.camera.errors import CameraUnavailable
from gateway.camera.fanout import MEDIA_TYPE
from gateway.camera.service import PREFIX, CameraService

NO_CACHE = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache"}


class CameraAlertItem(BaseModel):
    kind: str
    message: str
    since: float


class TimelapseStatus(BaseModel):
    mode: str
    recording_job_id: int | None
    rendering_job_id: int | None


class CameraStatus(BaseModel):
    enabled: bool
    running: bool
    backend: str
    error: str | None
    width: int
    height: int
    fps: float
    measured_fps: float
    frames: int
    last_frame_age_s: float | None
    viewers: int
    max_viewers: int
    alerts: list[CameraAlertItem]
    timelapse: TimelapseStatus


class TimelapseItem(BaseModel):
    job_id: int
    file: str
    state: str  # recording | finished | rendering | ready | failed
    frames: int
    size_bytes: int
    started_at: float
    ended_at: float | None
    outcome: str | None
    error: str | None
    video_url: str | None


def _unavailable(err: CameraUnavailable) -> HTTPException:
    return HTTPException(503, str(err), headers={"Retry-After": "5"})


def camera_router(service: CameraService) -> APIRouter:
    """The routes above, bound to ``service``."""
    router = APIRouter(prefix=PREFIX, tags=["camera"])

    @router.get("/status", response_model=CameraStatus)
    async def camera_status() -> CameraStatus:
        return CameraStatus.model_validate(service.status())

    @router.get(
        "/snapshot.jpg",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}, 503: {"description": "no picture"}},
    )
    async def camera_snapshot() -> Response:
        try:
            frame = await service.current_frame()
        except CameraUnavailable as err:
            raise _unavailable(err) from err
        return Response(frame.jpeg, media_type="image/jpeg", headers=NO_CACHE)

    @router.get(
        "/stream.mjpg",
        response_class=StreamingResponse,
        responses={
            200: {"content": {MEDIA_TYPE: {}}},
            503: {"description": "camera not running, or too many viewers"},
        },
    )
    async def camera_stream(
        request: Request,
        fps: float | None = Query(default=None, gt=0, le=30, description="At most this rate"),
    ) -> StreamingResponse:
        if not service.running:
            raise _unavailable(CameraUnavailable(service.error or "the camera is not running"))
        if service.fanout.viewers >= service.config.max_viewers:
            raise HTTPException(
                503,
                f"{service.fanout.viewers} viewers are watching already, the most this "
                "camera serves (camera.max_viewers); try /api/camera/snapshot.jpg",
                headers={"Retry-After": "10"},
            )
        # The web server sets this when it stops, so streams end without waiting for it.
        stopping = getattr(request.app.state, "stopping", None)

        async def parts() -> AsyncIterator[bytes]:
            async with contextlib.aclosing(service.fanout.watch(fps)) as frames:
                async for frame in frames:
                    yield frame.part
                    if isinstance(stopping, asyncio.Event) and stopping.is_set():
                        return

        headers = {**NO_CACHE, "X-Accel-Buffering": "no"}
        return StreamingResponse(parts(), media_type=MEDIA_TYPE, headers=headers)

    @router.get("/timelapses", response_model=list[TimelapseItem])
    async def camera_timelapses() -> list[TimelapseItem]:
        items = await service.timelapse_list()
        return [TimelapseItem.model_validate(i) for i in items]

    @router.get(
        "/timelapses/{job_id}.mp4",
        response_class=FileResponse,
        responses={200: {"content": {"video/mp4": {}}}, 404: {"description": "no video"}},
    )
    async def camera_timelapse_video(job_id: int = PathParam(ge=0)) -> FileResponse:
        path = service.video_path(job_id)
        if not await asyncio.to_thread(path.is_file):
            raise HTTPException(
                404, f"job {job_id} has no timelapse video (yet); see {PREFIX}/timelapses"
            )
        return FileResponse(path, media_type="video/mp4", filename=f"job-{job_id}-timelapse.mp4")

    @router.get(
        "/snapshots/{name}",
        response_class=FileResponse,
        responses={200: {"content": {"image/jpeg": {}}}, 404: {"description": "no snapshot"}},
    )
    async def camera_saved_snapshot(name: str) -> FileResponse:
        path = service.snapshot_path(name)
        if path is None or not await asyncio.to_thread(path.is_file):
            raise HTTPException(404, f"there is no snapshot called {name!r}")
        return FileResponse(path, media_type="image/jpeg")

    return router
