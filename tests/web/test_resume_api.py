"""The resume routes: who may call them, and bad input answered with a clear error."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.daemon import Gateway


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    if code is not None:
        assert body["error"]["code"] == code, body


async def test_nothing_to_resume_on_a_fresh_gateway(gw: Gateway, kit: Any, tokens: Any) -> None:
    async with kit.client(gw) as remote, kit.client(gw, kit.KIOSK) as kiosk:
        r = await kiosk.get("/api/jobs/interrupted")
        assert r.status_code == 200 and r.json() == {"interrupted": None}
        # The kiosk acts only during a badge session.
        r = await kiosk.post("/api/jobs/interrupted/preview", json={"job_id": 1, "layer": 1})
        assert_error(r, 403, "no_session")
        operate = tokens.header("operate")
        for path in ("preview", "resume"):
            r = await remote.post(
                f"/api/jobs/interrupted/{path}", json={"job_id": 1, "layer": 1}, headers=operate
            )
            assert_error(r, 404, "not_found")
        r = await remote.post("/api/jobs/interrupted/discard", json={}, headers=operate)
        assert_error(r, 404, "not_found")
        # A read token may look but not act.
        r = await remote.get("/api/jobs/interrupted", headers=tokens.header("read"))
        assert r.status_code == 200
        r = await remote.post(
            "/api/jobs/interrupted/resume",
            json={"job_id": 1, "layer": 1},
            headers=tokens.header("read"),
        )
        assert_error(r, 403, "insufficient_scope")


async def test_malformed_requests_are_refused(gw: Gateway, kit: Any, tokens: Any) -> None:
    operate = tokens.header("operate")
    async with kit.client(gw) as remote:
        for body in (
            {"job_id": 1},
            {"job_id": 0, "layer": 1},
            {"job_id": 1, "layer": 0},
            {"job_id": "one", "layer": 1},
            {"job_id": 1, "layer": 10**12},
            [1, 2],
        ):
            r = await remote.post("/api/jobs/interrupted/resume", json=body, headers=operate)
            assert 400 <= r.status_code < 500 and r.status_code != 404, (body, r.text)
        r = await remote.post(
            "/api/jobs/interrupted/resume",
            content=b"\xff{",
            headers={**operate, "Content-Type": "application/json"},
        )
        assert 400 <= r.status_code < 500
