"""The HTTP API against a running gateway (simulated Marlin, simulated badge reader):
every endpoint, every scope, the kiosk's rules, uploads, errors, CSV, metrics, SSE."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.daemon import Gateway

pytestmark = pytest.mark.timeout(60)

# method, path, JSON body, the least scope that may call it
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("GET", "/api/status", None, "read"),
    ("GET", "/api/whoami", None, "read"),
    ("GET", "/api/files", None, "read"),
    ("GET", "/api/files/none.gcode", None, "read"),
    ("GET", "/api/jobs", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/api/access", None, "read"),
    ("GET", "/api/sessions", None, "read"),
    ("GET", "/api/usage", None, "read"),
    ("POST", "/api/jobs", {"file": "none.gcode"}, "operate"),
    ("POST", "/api/jobs/current/pause", None, "operate"),
    ("POST", "/api/jobs/current/resume", None, "operate"),
    ("POST", "/api/jobs/current/cancel", None, "operate"),
    ("POST", "/api/machine/reset", None, "operate"),
    ("DELETE", "/api/files/none.gcode", None, "operate"),
    ("POST", "/api/badge-out", None, "operate"),
    ("POST", "/api/sim/badge", {"uid": "01"}, "operate"),
    ("DELETE", "/api/lockout", None, "admin"),
    ("POST", "/api/access/refresh", None, "admin"),
    ("GET", "/api/tokens", None, "admin"),
    ("POST", "/api/tokens", {"name": "made-in-test", "scope": "read"}, "admin"),
    ("DELETE", "/api/tokens/none", None, "admin"),
    ("POST", "/api/lockout", {"reason": "test lockout"}, "admin"),
    ("POST", "/api/estop", None, "operate"),  # last: it stops the machine
]
LOWER = {"read": [], "operate": ["read"], "admin": ["read", "operate"]}


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body


async def upload(
    c: httpx.AsyncClient, name: str, data: bytes, headers: dict[str, str]
) -> httpx.Response:
    return await c.post("/api/files", headers=headers, files={"file": (name, data)})


async def present(c: httpx.AsyncClient, uid: str) -> None:
    r = await c.post("/api/sim/badge", json={"uid": uid})
    assert r.status_code == 200, r.text


# -- authentication and scopes ---------------------------------------------------------------


async def test_every_endpoint_needs_a_token_of_its_scope(
    gw: Gateway, kit: Any, tokens: Any
) -> None:
    async with kit.client(gw) as c:
        r = await c.post("/api/files", files={"file": ("a.gcode", b"G28\n")})
        assert_error(r, 401, "unauthorised")
        r = await upload(c, "a.gcode", b"G28\n", tokens.header("read"))
        assert_error(r, 403, "insufficient_scope")
        for method, path, body, scope in ENDPOINTS:
            r = await c.request(method, path, json=body)
            assert_error(r, 401, "unauthorised")
            assert r.headers["www-authenticate"].startswith("Bearer")
            for lower in LOWER[scope]:
                r = await c.request(method, path, json=body, headers=tokens.header(lower))
                assert_error(r, 403, "insufficient_scope")
                assert scope in r.json()["error"]["message"]
            for enough in ("read", "operate", "admin")[("read", "operate", "admin").index(scope) :]:
                if enough != scope and method != "GET":
                    continue  # a write is done once
                r = await c.request(method, path, json=body, headers=tokens.header(enough))
                assert r.status_code not in (401, 403, 429, 500), (method, path, enough, r.text)
        r = await c.get("/api/events")
        assert_error(r, 401)


async def test_repeated_bad_tokens_are_rate_limited_per_address(
    gw: Gateway, kit: Any, tokens: Any
) -> None:
    async with kit.client(gw) as c, kit.client(gw, ("198.51.100.9", 5000)) as other:
        for i in range(10):
            r = await c.get("/api/status", headers={"Authorization": f"Bearer wrong-{i}"})
            assert_error(r, 401, "unauthorised")
        r = await c.get("/api/status", headers={"Authorization": "Bearer wrong-again"})
        assert_error(r, 429, "too_many_failures")
        assert 0 < int(r.headers["retry-after"]) <= 60
        # Even the right token is refused from that address until the window passes...
        assert_error(await c.get("/api/status", headers=tokens.header("read")), 429)
        # ...but not from another one.
        assert (await other.get("/api/status", headers=tokens.header("read"))).status_code == 200
        # A malformed header counts too.
        r = await other.get("/api/status", headers={"Authorization": "Basic Zm9vOmJhcg=="})
        assert_error(r, 401)


async def test_tokens_created_listed_and_revoked_through_the_api(
    gw: Gateway, kit: Any, tokens: Any
) -> None:
    async with kit.client(gw) as c:
        admin = tokens.header("admin")
        r = await c.post("/api/tokens", headers=admin, json={"name": "grafana", "scope": "read"})
        assert r.status_code == 201, r.text
        secret = r.json()["secret"]
        assert secret.startswith("gwt_")
        mine = {"Authorization": f"Bearer {secret}"}
        me = (await c.get("/api/whoami", headers=mine)).json()
        assert me == {"kind": "token", "name": "grafana", "scope": "read", "session_open": False}
        listed = (await c.get("/api/tokens", headers=admin)).json()["tokens"]
        assert {t["name"] for t in listed} == {"reader", "operator", "admin", "grafana"}
        assert all("secret" not in t and "hash" not in json.dumps(t) for t in listed)
        r = await c.post("/api/tokens", headers=admin, json={"name": "grafana", "scope": "admin"})
        assert_error(r, 409, "token_exists")
        r = await c.post("/api/tokens", headers=admin, json={"name": "../x", "scope": "read"})
        assert_error(r, 422, "invalid_request")
        assert (await c.delete("/api/tokens/grafana", headers=admin)).status_code == 200
        assert_error(await c.get("/api/status", headers=mine), 401)
        assert_error(await c.delete("/api/tokens/grafana", headers=admin), 404)


async def test_the_database_keeps_only_a_hash_of_each_token(gw: Gateway, tokens: Any) -> None:
    raw = await asyncio.to_thread(Path(gw.config.storage.database).read_bytes)
    for secret in (tokens.read, tokens.operate, tokens.admin):
        assert secret.encode() not in raw


# -- the kiosk ---------------------------------------------------------------------------------


async def test_kiosk_acts_only_within_a_badge_session(gw: Gateway, kit: Any, tokens: Any) -> None:
    async with kit.client(gw) as remote, kit.client(gw, kit.KIOSK) as kiosk:
        await upload(remote, "part.gcode", kit.gcode_file(20), tokens.header("operate"))
        assert (await kiosk.get("/api/status")).status_code == 200
        assert (await kiosk.get("/api/files")).status_code == 200
        me = (await kiosk.get("/api/whoami")).json()
        assert me == {"kind": "kiosk", "name": "kiosk", "scope": None, "session_open": False}
        # No session: nothing but reading and stopping.
        assert_error(await kiosk.post("/api/jobs", json={"file": "part.gcode"}), 403, "no_session")
        assert_error(await kiosk.post("/api/badge-out"), 403, "no_session")
        for method, path in (
            ("GET", "/api/sessions"),
            ("GET", "/api/usage"),
            ("GET", "/api/access"),
            ("GET", "/api/tokens"),
            ("DELETE", "/api/lockout"),
            ("DELETE", "/api/files/part.gcode"),
        ):
            assert_error(await kiosk.request(method, path), 403, "not_from_kiosk")
        r = await kiosk.post("/api/lockout", json={"reason": "no"})
        assert_error(r, 403, "not_from_kiosk")
        r = await kiosk.post("/api/files", files={"file": ("b.gcode", b"G28\n")})
        assert_error(r, 403, "not_from_kiosk")

        # A denied badge opens nothing.
        await present(kiosk, kit.BOB)
        await kit.wait_for(lambda: gw.access.status()["last_denial"] is not None)
        assert "not inducted" in gw.access.status()["last_denial"]
        assert_error(await kiosk.post("/api/jobs", json={"file": "part.gcode"}), 403)

        await present(kiosk, kit.ADA)
        await kit.wait_for(lambda: gw.access.status()["session"] is not None)
        assert (await kiosk.get("/api/whoami")).json()["session_open"] is True
        r = await kiosk.post("/api/jobs", json={"file": "part.gcode"})
        assert r.status_code == 201, r.text
        await kit.wait_for(lambda: gw.machine.status()["job"]["state"] == "completed")
        r = await kiosk.post("/api/badge-out")
        assert r.status_code == 200, r.text
        await kit.wait_for(lambda: gw.access.status()["session"] is None)
        assert_error(await kiosk.post("/api/jobs", json={"file": "part.gcode"}), 403)
        # A token sent from the kiosk's address is judged as that token.
        r = await kiosk.get("/api/sessions", headers=tokens.header("read"))
        assert r.status_code == 200
        # E-stop is always allowed from the touchscreen.
        r = await kiosk.post("/api/estop")
        assert r.status_code == 200, r.text
        await kit.wait_for(lambda: gw.machine.status()["state"] == "estop")


async def test_other_web_pages_cannot_act_as_the_kiosk(gw: Gateway, kit: Any) -> None:
    async with kit.client(gw, kit.KIOSK) as kiosk:
        # A page from another site, in a browser on the Pi.
        r = await kiosk.post("/api/estop", headers={"Origin": "http://evil.example"})
        assert_error(r, 403, "cross_origin")
        # DNS rebinding: a name that resolves to 127.0.0.1 is not the kiosk.
        r = await kiosk.post("/api/estop", headers={"Host": "evil.example:8080"})
        assert_error(r, 401, "unauthorised")
        assert_error(await kiosk.get("/api/status", headers={"Host": "evil.example"}), 401)
        # The kiosk's own page, by IP or localhost, is.
        r = await kiosk.get("/api/status", headers={"Host": "127.0.0.1:8080"})
        assert r.status_code == 200
        r = await kiosk.post(
            "/api/sim/badge", json={"uid": kit.BOB}, headers={"Origin": "http://localhost:8080"}
        )
        assert r.status_code == 200, r.text
    assert gw.machine.status()["state"] == "idle"


async def test_kiosk_operates_the_machine_when_access_control_is_off(
    tmp_path: Path, kit: Any
) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "s", access=False)) as g:
        assert g.access is None
        async with kit.client(g, kit.KIOSK) as kiosk:
            assert (await kiosk.get("/api/whoami")).json()["session_open"] is True
            g.machine.files.add_path(_write(tmp_path / "k.gcode", kit.gcode_file(3)))
            r = await kiosk.post("/api/jobs", json={"file": "k.gcode"})
            assert r.status_code == 201, r.text
            assert_error(await kiosk.get("/api/sessions"), 403, "not_from_kiosk")
        async with kit.client(g) as remote:
            admin = {"Authorization": f"Bearer {kit.new_token(g, 'a', _scope('admin'))}"}
            assert (await remote.get("/api/access", headers=admin)).json()["enabled"] is False
            assert_error(await remote.get("/api/sessions", headers=admin), 409, "access_disabled")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _scope(name: str) -> Any:
    from gateway.web.auth import Scope

    return Scope.parse(name)


# -- files --------------------------------------------------------------------------------------


async def test_upload_list_get_and_delete(gw: Gateway, kit: Any, tokens: Any) -> None:
    op = tokens.header("operate")
    async with kit.client(gw) as c:
        r = await upload(c, "bench y (v2).gcode", kit.gcode_file(10), op)
        assert r.status_code == 201, r.text
        stored = r.json()
        assert stored["name"] == "bench y (v2).gcode" and stored["lines"] > 10
        files = (await c.get("/api/files", headers=tokens.header("read"))).json()
        assert [f["name"] for f in files["files"]] == ["bench y (v2).gcode"]
        r = await c.get("/api/files/bench y (v2).gcode", headers=op)
        assert r.json()["size"] == len(kit.gcode_file(10))
        assert (await c.delete("/api/files/bench y (v2).gcode", headers=op)).status_code == 200
        assert_error(await c.get("/api/files/bench y (v2).gcode", headers=op), 404, "not_found")


@pytest.mark.parametrize(
    "name",
    [
        "../evil.gcode",
        "../../etc/passwd.gcode",
        "sub/dir.gcode",
        "a\\b.gcode",
        ".hidden.gcode",
        "notes.txt",
        "..",
        "x" * 130 + ".gcode",
    ],
)
async def test_bad_names_and_path_tricks_are_refused(
    gw: Gateway, kit: Any, tokens: Any, name: str
) -> None:
    async with kit.client(gw) as c:
        r = await upload(c, name, b"G28\n", tokens.header("operate"))
        assert_error(r, 400, "bad_name")
    found = await asyncio.to_thread(lambda: list(Path(gw.config.storage.state_dir).rglob("*")))
    assert not any(p.name == "passwd.gcode" for p in found)
    assert gw.machine.files.list() == []


async def test_path_tricks_in_urls_reach_no_file(gw: Gateway, kit: Any, tokens: Any) -> None:
    (Path(gw.config.storage.state_dir) / "secret.gcode").write_text("G28\n")
    async with kit.client(gw) as c:
        for path in (
            "/api/files/..%2Fsecret.gcode",
            "/api/files/%2E%2E%2Fsecret.gcode",
            "/api/files/..%5Csecret.gcode",
            "/api/files/.meta",
        ):
            for method in ("GET", "DELETE"):
                r = await c.request(method, path, headers=tokens.header("operate"))
                assert r.status_code in (400, 404), (path, r.text)
                assert_error(r, r.status_code)
    assert (Path(gw.config.storage.state_dir) / "secret.gcode").exists()


async def test_malformed_gcode_is_refused_with_its_line_number(
    gw: Gateway, kit: Any, tokens: Any
) -> None:
    bad = b"G28\nG1 X10 F3000\nG1 X20 (unclosed comment\nG1 X0\n"
    async with kit.client(gw) as c:
        r = await upload(c, "bad.gcode", bad, tokens.header("operate"))
        body = assert_error(r, 422, "invalid_gcode")
        assert "line 3" in body["error"]["message"]
        r = await upload(c, "binary.gcode", b"G28\n\xff\xfe\x00garbage\n", tokens.header("operate"))
        assert_error(r, 422, "invalid_gcode")
    assert gw.machine.files.list() == []


async def test_oversized_uploads_are_refused_while_streaming(tmp_path: Path, kit: Any) -> None:
    config = kit.make_config(tmp_path / "s", jobs={"max_upload_bytes": 4096})
    async with kit.running_gateway(config) as g, kit.client(g) as c:
        op = {"Authorization": f"Bearer {kit.new_token(g, 'op', _scope('operate'))}"}
        big = kit.gcode_file(400)
        assert len(big) > 4096
        body = assert_error(await upload(c, "big.gcode", big, op), 413, "too_large")
        assert "max_upload_bytes" in body["error"]["message"]

        # Without a Content-Length (chunked), the limit stops the stream part-way.
        sent = 0

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal sent
            boundary = b"--XyZ"
            yield (
                boundary + b'\r\nContent-Disposition: form-data; name="file"; '
                b'filename="huge.gcode"\r\n\r\n'
            )
            for _ in range(10_000):
                sent += 1
                yield b"G1 X1 Y1 F1000\n" * 64
            yield b"\r\n" + boundary + b"--\r\n"

        r = await c.post(
            "/api/files",
            content=chunks(),
            headers={**op, "Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert_error(r, 413, "too_large")
        assert sent < 100
        # Too large declared up front: refused before reading.
        r = await c.post(
            "/api/files",
            content=b"x",
            headers={
                **op,
                "Content-Type": "multipart/form-data; boundary=a",
                "Content-Length": str(10**9),
            },
        )
        assert_error(r, 413, "too_large")
        assert g.machine.files.list() == []
        assert list((Path(g.config.storage.files_dir) / ".incoming").iterdir()) == []


async def test_uploads_must_be_multipart_with_a_file(gw: Gateway, kit: Any, tokens: Any) -> None:
    op = tokens.header("operate")
    async with kit.client(gw) as c:
        r = await c.post("/api/files", headers=op, content=b"G28\n")
        assert_error(r, 415, "unsupported_media_type")
        r = await c.post(
            "/api/files", headers=op, data={"note": "no file here"}, files={"other": (None, b"x")}
        )
        assert_error(r, 400, "no_file")


# -- jobs -----------------------------------------------------------------------------------------


async def test_job_start_pause_resume_cancel_and_history(tmp_path: Path, kit: Any) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "s", time_scale=1.0)) as g:
        op = {"Authorization": f"Bearer {kit.new_token(g, 'op', _scope('operate'))}"}
        async with kit.client(g) as c, kit.client(g, kit.KIOSK) as kiosk:
            await upload(c, "long.gcode", kit.gcode_file(200), op)
            # A job starts only while a member is badged in at the machine.
            r = await c.post("/api/jobs", headers=op, json={"file": "long.gcode"})
            assert_error(r, 409, "no_session")
            await present(kiosk, kit.ADA)
            await kit.wait_for(lambda: g.machine.status()["powered"])
            assert_error(await c.post("/api/jobs/current/pause", headers=op), 409, "no_job")
            assert_error(
                await c.post("/api/jobs", headers=op, json={"file": "nope.gcode"}), 404, "not_found"
            )
            assert_error(await c.post("/api/jobs", headers=op, json={}), 422, "invalid_request")
            r = await c.post("/api/jobs", headers=op, json={"file": "long.gcode"})
            assert r.status_code == 201 and r.json()["state"] == "running", r.text
            assert_error(
                await c.post("/api/jobs", headers=op, json={"file": "long.gcode"}), 409, "busy"
            )
            assert_error(await c.delete("/api/files/long.gcode", headers=op), 409, "busy")
            assert_error(await c.post("/api/jobs/current/resume", headers=op), 409, "bad_state")
            r = await c.post("/api/jobs/current/pause", headers=op)
            assert r.json()["state"] == "paused"
            r = await c.post("/api/jobs/current/resume", headers=op)
            assert r.json()["state"] == "running"
            r = await c.post("/api/jobs/current/cancel", headers=op)
            assert r.json()["state"] == "cancelled"

            async def recorded() -> dict[str, Any]:
                # The record is written by the store's thread, after the answer.
                history: dict[str, Any] = (await c.get("/api/jobs?limit=5", headers=op)).json()
                return history

            for _ in range(100):
                history = await recorded()
                if history["jobs"][0]["state"] == "cancelled":
                    break
                await asyncio.sleep(0.05)
            assert history["jobs"][0]["file"] == "long.gcode"
            assert history["jobs"][0]["state"] == "cancelled"
            assert history["current"]["state"] == "cancelled"
            assert_error(await c.get("/api/jobs?limit=0", headers=op), 422)
            r = await c.post("/api/estop", headers=op)
            assert r.status_code == 200 and r.json()["state"] == "estop"
            r = await c.post("/api/machine/reset", headers=op)
            assert r.status_code == 200


# -- access: sessions, usage, CSV, lockout ---------------------------------------------------------


async def test_sessions_and_usage_as_json_and_csv(gw: Gateway, kit: Any, tokens: Any) -> None:
    async with kit.client(gw, kit.KIOSK) as kiosk, kit.client(gw) as c:
        await present(kiosk, kit.ADA)
        await kit.wait_for(lambda: gw.access.status()["session"] is not None)
        await kiosk.post("/api/badge-out")
        await kit.wait_for(lambda: gw.access.status()["session"] is None)
        read = tokens.header("read")

        async def closed() -> bool:
            rows = (await c.get("/api/sessions", headers=read)).json()["sessions"]
            return bool(rows) and rows[0]["ended_at"] is not None

        for _ in range(100):
            if await closed():
                break
            await asyncio.sleep(0.05)
        sessions = (await c.get("/api/sessions", headers=read)).json()["sessions"]
        assert sessions[0]["member_name"] == "Ada Lovelace"
        assert sessions[0]["end_reason"] == "badge_out"

        r = await c.get("/api/sessions?format=csv", headers=read)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert rows and rows[0]["member_name"] == "Ada Lovelace"

        usage = (await c.get("/api/usage", headers=read)).json()["usage"]
        assert usage[0]["member_id"] == "m-ada" and usage[0]["sessions"] == 1
        r = await c.get("/api/usage?format=csv", headers=read)
        assert "m-ada" in r.text and r.headers["content-type"].startswith("text/csv")
        r = await c.get(
            "/api/sessions?format=csv&since=2030-01-02T00:00:00Z&until=2030-01-01T00:00:00Z",
            headers=read,
        )
        assert_error(r, 400, "bad_range")
        assert_error(await c.get("/api/sessions?format=xml", headers=read), 422)


async def test_access_list_status(gw: Gateway, kit: Any, tokens: Any) -> None:
    async with kit.client(gw) as c:
        s = (await c.get("/api/access", headers=tokens.header("read"))).json()
        assert s["enabled"] and s["running"]
        assert s["members"] == len(kit.DEMO_MEMBERS)
        assert s["source"] and s["last_error"] is None
        assert 0 <= s["age_seconds"] < 600
        r = await c.post("/api/access/refresh", headers=tokens.header("admin"))
        assert r.status_code == 200, r.text


async def test_lockout_and_clear(gw: Gateway, kit: Any, tokens: Any) -> None:
    admin = tokens.header("admin")
    async with kit.client(gw) as c, kit.client(gw, kit.KIOSK) as kiosk:
        assert_error(await c.post("/api/lockout", headers=admin, json={"reason": ""}), 422)
        r = await c.post("/api/lockout", headers=admin, json={"reason": "belt being replaced"})
        assert r.status_code == 200, r.text
        assert gw.access.status()["lockout"] == {"reason": "belt being replaced", "by": "admin"}
        await present(kiosk, kit.ADA)
        await kit.wait_for(lambda: "locked out" in (gw.access.status()["last_denial"] or ""))
        # A named clearer must really be a maintainer; the record must not lie.
        r = await c.delete("/api/lockout?by=m-ada", headers=admin)
        assert_error(r, 403, "not_maintainer")
        r = await c.delete("/api/lockout?by=m-max", headers=admin)
        assert r.status_code == 200, r.text
        assert gw.access.status()["lockout"] is None
        assert_error(await c.delete("/api/lockout?by=m-max", headers=admin), 409, "no_lockout")
        # An admin token alone may clear it too (recorded as the token).
        r = await c.post("/api/lockout", headers=admin, json={"reason": "nozzle change"})
        assert r.status_code == 200, r.text
        r = await c.delete("/api/lockout", headers=admin)
        assert r.status_code == 200, r.text
        assert gw.access.status()["lockout"] is None


async def test_sim_badge_exists_only_in_simulation(tmp_path: Path, kit: Any) -> None:
    config = kit.make_config(
        tmp_path / "s", simulation=False, web={"kiosk_addresses": ["127.0.0.1"]}
    )
    from gateway.daemon import build

    g = build(config)
    assert g.web is not None
    paths = g.web.app.openapi()["paths"]
    assert "/api/sim/badge" not in paths
    async with kit.client(g, kit.KIOSK) as kiosk:
        assert_error(await kiosk.post("/api/sim/badge", json={"uid": "01"}), 404, "not_found")


# -- errors, metrics, events -------------------------------------------------------------------


async def test_every_failure_uses_the_error_model(
    gw: Gateway, kit: Any, tokens: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = tokens.header("read")
    async with kit.client(gw) as c:
        assert_error(await c.get("/no/such/page"), 404, "not_found")
        assert_error(await c.put("/api/status", headers=read), 405, "method_not_allowed")
        assert_error(await c.get("/api/jobs?offset=-1", headers=read), 422, "invalid_request")
        r = await c.post(
            "/api/jobs",
            headers=tokens.header("operate"),
            content=b"{not json",
        )
        assert_error(r, 422, "invalid_request")
        r = await c.post(
            "/api/lockout", headers=tokens.header("admin"), json={"reason": "x" * 100_000}
        )
        assert_error(r, 413, "too_large")

    def broken() -> dict[str, Any]:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(gw.machine, "status", broken)
    async with kit.client(gw, raise_app_exceptions=False) as c:
        body = assert_error(await c.get("/api/status", headers=read), 500, "internal_error")
        assert "simulated bug" not in body["error"]["message"]


async def test_openapi_describes_the_api(gw: Gateway, kit: Any) -> None:
    async with kit.client(gw) as c:
        spec = (await c.get("/openapi.json")).json()
    assert "token" in spec["components"]["securitySchemes"]
    for path in (
        "/api/status",
        "/api/files",
        "/api/jobs",
        "/api/events",
        "/api/sessions",
        "/api/lockout",
        "/api/estop",
        "/api/sim/badge",
        "/metrics",
    ):
        assert path in spec["paths"], path
    assert "401" in spec["paths"]["/api/status"]["get"]["responses"]
    upload_body = spec["paths"]["/api/files"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload_body


async def test_metrics_in_prometheus_format(gw: Gateway, kit: Any, tokens: Any) -> None:
    async with kit.client(gw) as c, kit.client(gw, kit.KIOSK) as kiosk:
        await c.get("/api/status", headers=tokens.header("read"))
        await c.get("/api/status", headers={"Authorization": "Bearer nope"})
        await present(kiosk, kit.BOB)
        for _ in range(100):
            r = await c.get("/metrics", headers=tokens.header("read"))
            if 'event="AccessDenied"' in r.text:
                break
            await asyncio.sleep(0.05)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'gateway_machine_state{state="idle"} 1.0' in text
    assert 'gateway_http_requests_total{method="GET",route="/api/status",status="200"}' in text
    assert "gateway_http_auth_failures_total 1.0" in text
    assert 'gateway_bus_events_total{event="AccessDenied"} 1.0' in text
    assert "gateway_bus_events_published_total" in text
    assert "gateway_access_relay_on 0.0" in text
    assert "gateway_job_active 0.0" in text


async def test_live_events_stream(gw: Gateway, kit: Any, tokens: Any) -> None:
    assert gw.web is not None
    url = f"http://127.0.0.1:{gw.web.port}"
    seen: list[tuple[str, dict[str, Any]]] = []
    async with httpx.AsyncClient(base_url=url, timeout=10) as c:
        r = await c.get("/api/status", headers={"Authorization": "Bearer bad"})
        assert r.status_code == 401
        async with c.stream("GET", "/api/events") as stream:  # loopback: the kiosk
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    seen.append((name, json.loads(line[6:])))
                    if name == "hello":
                        r = await c.post("/api/sim/badge", json={"uid": kit.ADA})
                        assert r.status_code == 200
                    if name == "session_started":
                        break
    names = [n for n, _ in seen]
    assert names[0] == "hello"
    hello = seen[0][1]
    assert hello["machine"]["state"] == "idle" and hello["access"]["state"] == "locked"
    assert hello["simulation"] is True
    started = dict(seen)["session_started"]
    assert started["member_name"] == "Ada Lovelace"
    assert "access_state" in names or "relay" in names
