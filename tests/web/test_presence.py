"""The presence rule and the live re-check through the API, on a real gateway.

A remote ``operate`` token may pause, cancel and e-stop at any time, but a job
starts or resumes only while a member is badged in at the machine; the start is
recorded with the caller and the member present.  A new access list that no
longer admits the member ends their session by the job rule.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.access.config import FileSourceConfig
from gateway.access.events import SessionEnded
from gateway.commands import CommandError
from gateway.config import GatewayConfig
from gateway.daemon import Gateway
from gateway.web.auth import Scope


def _error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] == code, body
    return str(body["message"])


async def _present(kiosk: httpx.AsyncClient, uid: str) -> None:
    r = await kiosk.post("/api/sim/badge", json={"uid": uid})
    assert r.status_code == 200, r.text


async def _upload(c: httpx.AsyncClient, name: str, data: bytes, op: dict[str, str]) -> None:
    r = await c.post("/api/files", headers=op, files={"file": (name, data)})
    assert r.status_code == 201, r.text


def _relay(gw: Gateway) -> bool:
    assert gw.access is not None
    return bool(gw.access.status()["relay_on"])


def _session(gw: Gateway) -> dict[str, Any] | None:
    assert gw.access is not None
    session = gw.access.status()["session"]
    assert session is None or isinstance(session, dict)
    return session


def _job_starts(gw: Gateway) -> list[dict[str, Any]]:
    db = sqlite3.connect(gw.config.storage.database)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute(
            "SELECT action, caller, member_id, session_id FROM access_job_starts ORDER BY id"
        ).fetchall()
        return [dict(r) for r in rows]
    finally:
        db.close()


def _with_rules(config: GatewayConfig, **rules: Any) -> GatewayConfig:
    access = config.access
    return config.model_copy(
        update={
            "access": access.model_copy(update={"rules": access.rules.model_copy(update=rules)})
        }
    )


def _rewrite_list(gw: Gateway, kit: Any, **ada: Any) -> None:
    members = [dict(m, **ada) if m["id"] == "m-ada" else m for m in kit.DEMO_MEMBERS]
    doc = {
        "version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "count": len(members),
        "members": members,
    }
    source = gw.config.access.source
    assert isinstance(source, FileSourceConfig)
    source.path.write_text(json.dumps(doc))


async def test_a_remote_start_needs_a_member_at_the_machine(tmp_path: Path, kit: Any) -> None:
    """The measured hole: one second after badge-out a token started a job (201) and the
    relay stayed on for the whole job.  Now: 409 "badge in at the machine first"."""
    config = kit.make_config(tmp_path / "s", time_scale=1.0)
    async with kit.running_gateway(config) as g:
        op = {"Authorization": f"Bearer {kit.new_token(g, 'op', Scope.OPERATE)}"}
        async with kit.client(g) as c, kit.client(g, kit.KIOSK) as kiosk:
            await _upload(c, "long.gcode", kit.gcode_file(400), op)
            message = _error(
                await c.post("/api/jobs", headers=op, json={"file": "long.gcode"}),
                409,
                "no_session",
            )
            assert "badge in at the machine first" in message
            # Badge in and straight out: the relay is held for the grace period, but
            # nobody is present, so a remote start is still refused.
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is None)
            assert _relay(g), "the grace period holds the relay"
            _error(
                await c.post("/api/jobs", headers=op, json={"file": "long.gcode"}),
                409,
                "no_session",
            )
            assert g.machine.job is None
            # In a session the remote start works and records both parties.
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
            r = await c.post("/api/jobs", headers=op, json={"file": "long.gcode"})
            assert r.status_code == 201, r.text
            await kit.wait_for(lambda: bool(_job_starts(g)))
            (start,) = _job_starts(g)
            assert start["action"] == "start" and start["caller"] == "web:token:op"
            assert start["member_id"] == "m-ada" and start["session_id"]
            r = await c.get("/api/access/job-starts", headers=op)
            assert r.status_code == 200, r.text
            (listed,) = r.json()["job_starts"]
            assert listed["caller"] == "web:token:op" and listed["member_id"] == "m-ada"
            assert listed["at"].startswith("20")
            # Ada badges out: the job finishes under the after_job rule; the token may
            # pause it, but not resume it with nobody present.
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is None)
            assert _relay(g) and g.machine.job is not None
            r = await c.post("/api/jobs/current/pause", headers=op)
            assert r.status_code == 200 and r.json()["state"] == "paused", r.text
            _error(await c.post("/api/jobs/current/resume", headers=op), 409, "no_session")
            assert g.machine.job.state.value == "paused"
            # Anyone at the touchscreen may cancel the job while it finishes.
            r = await kiosk.post("/api/jobs/current/cancel")
            assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
            await kit.wait_for(lambda: not _relay(g), what="relay off once the job ended")


async def test_remote_start_never_keeps_starts_on_the_touchscreen(
    tmp_path: Path, kit: Any
) -> None:
    config = _with_rules(kit.make_config(tmp_path / "s", time_scale=1.0), remote_start="never")
    async with kit.running_gateway(config) as g:
        op = {"Authorization": f"Bearer {kit.new_token(g, 'op', Scope.OPERATE)}"}
        async with kit.client(g) as c, kit.client(g, kit.KIOSK) as kiosk:
            await _upload(c, "long.gcode", kit.gcode_file(400), op)
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
            message = _error(
                await c.post("/api/jobs", headers=op, json={"file": "long.gcode"}),
                409,
                "remote_start_off",
            )
            assert "touchscreen" in message
            r = await kiosk.post("/api/jobs", json={"file": "long.gcode"})
            assert r.status_code == 201, r.text
            await kit.wait_for(lambda: bool(_job_starts(g)))
            assert _job_starts(g)[0]["caller"] == "kiosk"
            r = await c.post("/api/jobs/current/cancel", headers=op)
            assert r.status_code == 200, r.text


async def test_a_suspended_member_loses_the_machine_when_the_list_arrives(
    tmp_path: Path, kit: Any
) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "s")) as g:
        events = g.bus.subscribe(SessionEnded, maxsize=1000)
        async with kit.client(g, kit.KIOSK) as kiosk:
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
            _rewrite_list(g, kit, suspended="unpaid fees")
            await kit.wait_for(lambda: _session(g) is None, what="the session to end")
            await kit.wait_for(lambda: not _relay(g), what="no grace for a suspended member")
            assert g.access is not None
            status = g.access.status()
            assert "suspended" in status["last_denial"] and "unpaid fees" in status["last_denial"]
            ended = []
            while (e := events.get_nowait()) is not None:
                ended.append(e)
            assert ended and ended[-1].reason == "revoked"
            assert "unpaid fees" in ended[-1].message
            for _ in range(200):  # the record is written on the store's own thread
                sessions = await g.access.sessions()
                if sessions[0]["end_reason"] is not None:
                    break
                await asyncio.sleep(0.02)
            assert sessions[0]["end_reason"] == "revoked"
            # The badge is refused from now on.
            await _present(kiosk, kit.ADA)
            await asyncio.sleep(0.2)
            assert _session(g) is None


async def test_a_revoked_members_job_finishes_unless_the_admin_cuts_now(
    tmp_path: Path, kit: Any
) -> None:
    async with kit.running_gateway(kit.make_config(tmp_path / "s", time_scale=1.0)) as g:
        op = {"Authorization": f"Bearer {kit.new_token(g, 'op', Scope.OPERATE)}"}
        admin = {"Authorization": f"Bearer {kit.new_token(g, 'boss', Scope.ADMIN)}"}
        async with kit.client(g) as c, kit.client(g, kit.KIOSK) as kiosk:
            await _upload(c, "long.gcode", kit.gcode_file(2000), op)
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
            r = await kiosk.post("/api/jobs", json={"file": "long.gcode"})
            assert r.status_code == 201, r.text
            _rewrite_list(g, kit, machines={})  # Ada is no longer inducted anywhere
            await kit.wait_for(lambda: _session(g) is None, what="the session to end")
            # The running job finishes under the after_job rule; no new job can start.
            assert _relay(g) and g.machine.job is not None and not g.machine.job.finished
            r = await c.post("/api/access/cut-power", headers=op)
            assert r.status_code == 403, r.text
            r = await c.post("/api/access/cut-power", headers=admin)
            assert r.status_code == 200, r.text
            await kit.wait_for(lambda: not _relay(g), what="the admin's cut")
            await kit.wait_for(lambda: g.machine.job is not None and g.machine.job.finished)
            assert g.machine.job is not None and g.machine.job.state.value == "failed"
            _error(await c.post("/api/access/cut-power", headers=admin), 409, "already_off")


async def test_a_job_that_slips_past_the_check_is_stopped_and_never_holds_power(
    tmp_path: Path, kit: Any
) -> None:
    """If a job starts with nobody in session anyway (the member badged out between the
    check and the start; here the machine's own start_job, bypassing the command), the
    access capability stops it and the grace period still ends on time."""
    config = _with_rules(kit.make_config(tmp_path / "s", time_scale=1.0), grace_period=3.0)
    async with kit.running_gateway(config) as g:
        op = {"Authorization": f"Bearer {kit.new_token(g, 'op', Scope.OPERATE)}"}
        async with kit.client(g) as c, kit.client(g, kit.KIOSK) as kiosk:
            await _upload(c, "long.gcode", kit.gcode_file(2000), op)
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
            await kit.wait_for(lambda: g.machine.status()["powered"])
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is None)
            assert _relay(g) and g.machine.status()["powered"]  # the grace period
            job = await g.machine.start_job("long.gcode")
            await kit.wait_for(lambda: job.finished, what="the unattended job to be stopped")
            assert job.state.value == "cancelled"
            await kit.wait_for(lambda: not _relay(g), 8.0, "the grace period to end")
            assert g.access is not None
            assert "Badge in at the machine first" in g.access.status()["last_denial"]


async def test_console_gcode_needs_a_member_at_the_machine_too(tmp_path: Path, kit: Any) -> None:
    """MQTT ``cmd/send_gcode`` moves the machine like a job does."""
    async with kit.running_gateway(kit.make_config(tmp_path / "s")) as g:
        with pytest.raises(CommandError) as refused:
            await g.commands.call("send_gcode", {"line": "G28"}, origin="mqtt", actor="ha")
        assert refused.value.code == "no_session"
        async with kit.client(g, kit.KIOSK) as kiosk:
            await _present(kiosk, kit.ADA)
            await kit.wait_for(lambda: _session(g) is not None)
        sent = await g.commands.call("send_gcode", {"line": "G28"}, origin="mqtt", actor="ha")
        assert sent == {"sent": "G28"}
        await kit.wait_for(lambda: bool(_job_starts(g)), what="the record")
        assert _job_starts(g)[-1]["caller"] == "mqtt:ha"
