"""The HTTP API's routers, one module per area; :func:`routers` lists them for the app.

Every route declares who may call it (:func:`gateway.web.guard.allow`) and the
error statuses it can answer, so ``/openapi.json`` describes every response.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.web.api import (
    access,
    access_policy,
    files,
    jobs,
    live,
    machine,
    moonraker,
    octoprint,
    resume,
    slicer,
    timeline,
    tokens,
    usage,
)


def routers() -> list[APIRouter]:
    return [
        # Slicers' OctoPrint routes first: /api/files/local is not a file named "local".
        octoprint.router,
        moonraker.router,
        slicer.router,
        machine.router,
        files.router,
        jobs.router,
        resume.router,
        access.router,
        access_policy.router,
        tokens.router,
        live.router,
        usage.router,
        timeline.router,
    ]
