"""Live data: the server-sent event stream and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from gateway.web import sse
from gateway.web.api.deps import AUTH_ERRORS, Reader, Web
from gateway.web.errors import ApiError, responses
from gateway.web.metrics import CONTENT_TYPE

router = APIRouter(tags=["live"], responses=AUTH_ERRORS)


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "An endless text/event-stream: ``hello`` first, then bus events",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **responses(503),
    },
)
async def events(ctx: Web, caller: Reader) -> StreamingResponse:
    """Live updates as server-sent events (``event: <topic>``, ``data: <JSON>``)."""
    if ctx.metrics.live_streams >= sse.MAX_STREAMS:
        raise ApiError(
            503, "too_many_streams", f"{sse.MAX_STREAMS} live streams are open; close one and retry"
        )
    return StreamingResponse(
        sse.stream(ctx),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format",
        }
    },
)
async def metrics(ctx: Web, caller: Reader) -> Response:
    """Machine state, job progress, bus events and HTTP requests for Prometheus."""
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE)
