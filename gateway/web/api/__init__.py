"""The HTTP API's routers, one module per area; :func:`routers` lists them for the app.

Every route declares who may call it (:func:`gateway.web.guard.allow`) and the
error statuses it can answer, so ``/openapi.json`` describes every response.
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.web.api import access, files, jobs, live, machine, resume, tokens


def routers() -> list[APIRouter]:
    return [
        machine.router,
        files.router,
        jobs.router,
        resume.router,
        access.router,
        tokens.router,
        live.router,
    ]
