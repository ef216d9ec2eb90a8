"""The machine's G-code library: list, upload (streamed), inspect, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from gateway.machine.files import StoredFile
from gateway.web.api.deps import AUTH_ERRORS, Manager, Reader, Web
from gateway.web.api.models import FileAnalysis
from gateway.web.errors import ApiError, responses
from gateway.web.upload import receive_upload

router = APIRouter(prefix="/api/files", tags=["files"], responses=AUTH_ERRORS)

FileName = Annotated[
    str, Path(min_length=1, max_length=255, description="The file's name in the library")
]


class FileOut(BaseModel):
    name: str
    size: int
    uploaded_at: float
    lines: int
    bytes: int
    estimated_seconds: float | None
    filament_mm: float | None
    analysis: FileAnalysis

    @classmethod
    def of(cls, f: StoredFile) -> FileOut:
        return cls(**f.as_dict())


class FileList(BaseModel):
    files: list[FileOut]
    max_upload_bytes: int


class Deleted(BaseModel):
    deleted: str


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.get("")
async def list_files(ctx: Web, caller: Reader) -> FileList:
    """Files ready to run on this machine, newest first."""
    files = ctx.machine.files
    stored = await asyncio.to_thread(files.list)
    return FileList(files=[FileOut.of(f) for f in stored], max_upload_bytes=files.max_bytes)


@router.post(
    "",
    status_code=201,
    openapi_extra=_UPLOAD_BODY,
    responses=responses(400, 409, 413, 415),
)
async def upload_file(request: Request, ctx: Web, caller: Manager) -> FileOut:
    """Upload a G-code file as multipart/form-data field ``file``.

    The body is streamed into the library; it is refused (and nothing kept) if it
    passes ``jobs.max_upload_bytes`` (413), its name is not a plain G-code file
    name (400), or a line cannot be sent to the controller (422, naming the line).
    """
    stored = await receive_upload(request, ctx.machine.files)
    if "slicer_file_added" in ctx.gw.commands.names:
        # Who put it there, through which door (the slicer capability keeps the record).
        await ctx.gw.commands.call(
            "slicer_file_added",
            {
                "file": stored.name,
                "member_id": caller.actor,
                "member_name": caller.name,
                "door": "web",
            },
            origin=caller.origin,
            actor=caller.actor,
        )
    return FileOut.of(stored)


@router.get("/{name}", responses=responses(400, 404))
async def get_file(name: FileName, ctx: Web, caller: Reader) -> FileOut:
    """One file's record and analysis."""
    return FileOut.of(await asyncio.to_thread(ctx.machine.files.get, name))


@router.delete("/{name}", responses=responses(400, 404, 409))
async def delete_file(name: FileName, ctx: Web, caller: Manager) -> Deleted:
    """Remove a file (refused while it is the running job's file)."""
    library = ctx.machine.files
    stored = await asyncio.to_thread(library.get, name)
    job = ctx.machine.status()["job"]
    if job is not None and job["file"] == stored.name and job["state"] in ("running", "paused"):
        raise ApiError(409, "busy", f"{stored.name} is being run; cancel the job first")
    await asyncio.to_thread(library.delete, stored.name)
    return Deleted(deleted=stored.name)
