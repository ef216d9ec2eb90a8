"""The real AccessService on gpiozero MockFactory pins with a simulated reader."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from gateway.access import service as service_module
from gateway.access.config import AccessConfig, FileSourceConfig, MachineRules
from gateway.access.events import (
    AccessDenied,
    AccessListUpdated,
    InductionRecorded,
    LockoutChanged,
    RelayChanged,
    SessionEnded,
    SessionStarted,
)
from gateway.access.interlocks import InterlockConfig
from gateway.access.outputs import OutputsConfig
from gateway.access.readers.config import Rdm6300ReaderConfig, SimulatedReaderConfig
from gateway.access.service import AccessService
from gateway.bus import Event, EventBus
from gateway.commands import FORBIDDEN, CommandError, CommandRouter
from gateway.machine.events import EmergencyStop, JobFinished, JobPaused, JobStarted

SECRET = "site-secret-for-tests-0123456789"
RELAY, LID = 17, 23
ADA, TESS, MAX, NIA = "04A1B2C3", "04A1B2C4", "04A1B2C5", "04A1B2C6"
STRANGER = "0BADCAFE"


def access_list(*, count: int | None = None) -> bytes:
    members = [
        {"id": "m-ada", "name": "Ada", "badges": [ADA], "machines": {"laser-1": "user"}},
        {"id": "m-tess", "name": "Tess", "badges": [TESS], "machines": {"laser-1": "trainer"}},
        {"id": "m-max", "name": "Max", "badges": [MAX], "machines": {"*": "maintainer"}},
        {"id": "m-nia", "name": "Nia", "badges": [NIA], "machines": {}},
    ]
    return json.dumps(
        {
            "version": 1,
            "generated_at": "2024-05-01T00:00:00Z",
            "count": len(members) if count is None else count,
            "members": members,
        }
    ).encode()


def make_config(tmp_path: Path, **rules: Any) -> AccessConfig:
    return AccessConfig(
        gpio="mock",
        site_secret=SECRET,  # type: ignore[arg-type]
        readers=[SimulatedReaderConfig(name="sim", repeat_suppress=0)],
        outputs=OutputsConfig(relay_pin=RELAY, green_led=22, red_led=27, buzzer=18),
        interlocks=[InterlockConfig(name="lid", pin=LID, pull_up=False, kind="lid")],
        source=FileSourceConfig(path=tmp_path / "access.json", check_interval=0.05),
        rules=MachineRules(**{"grace_period": 0, **rules}),
    )


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@dataclass
class Gateway:
    service: AccessService
    commands: CommandRouter
    bus: EventBus
    factory: MockFactory
    db_path: Path
    seen: list[Event]
    task: asyncio.Task[None]

    @property
    def relay_on(self) -> bool:
        return bool(self.factory.pin(RELAY).state)

    async def present(self, uid: str) -> None:
        await self.commands.call("present_badge", {"uid": uid})

    def events(self, kind: type[Event]) -> list[Any]:
        return [e for e in self.seen if isinstance(e, kind)]

    async def wait_for(
        self,
        kind: type[Event],
        check: Callable[[Any], bool] = lambda e: True,
    ) -> Any:
        await until(lambda: any(check(e) for e in self.events(kind)))
        return next(e for e in self.events(kind) if check(e))

    def rows(self, table: str = "access_sessions") -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.db_path)) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, wait_list: bool = True, **rules: Any
) -> Gateway:
    factory = MockFactory()
    monkeypatch.setattr(service_module, "make_pin_factory", lambda kind, **_: factory)
    list_path = tmp_path / "access.json"
    if wait_list and not list_path.exists():
        list_path.write_bytes(access_list())
    bus, commands = EventBus(), CommandRouter()
    svc = AccessService(
        make_config(tmp_path, **rules), "laser-1", tmp_path / "gateway.db", bus, commands
    )
    seen: list[Event] = []
    sub = bus.subscribe(Event)

    async def record() -> None:
        async for event in sub:
            seen.append(event)

    task = asyncio.create_task(svc.run())
    recorder = asyncio.create_task(record())
    task.add_done_callback(lambda _: recorder.cancel())
    async with asyncio.timeout(5):
        await svc.ready.wait()
    gw = Gateway(svc, commands, bus, factory, tmp_path / "gateway.db", seen, task)
    await gw.wait_for(AccessListUpdated, lambda e: e.ok if wait_list else True)
    return gw


@pytest.fixture
async def gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    gw = await start(tmp_path, monkeypatch)
    yield gw
    await gw.stop()


async def test_a_badge_switches_the_relay_on_and_records_a_session(gateway: Gateway) -> None:
    assert not gateway.relay_on
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    started = await gateway.wait_for(SessionStarted)
    assert (started.member_id, started.member_name, started.role) == ("m-ada", "Ada", "user")
    await until(lambda: len(gateway.rows()) == 1)
    (row,) = gateway.rows()
    assert row["id"] == started.session_id and row["member_id"] == "m-ada"
    assert row["ended_at"] is None and row["machine_id"] == "laser-1"
    status = await gateway.commands.call("access_status")
    assert status["state"] == "authorised" and status["session"]["member_name"] == "Ada"
    assert status["access_list"]["members"] == 4


async def test_badge_out_during_a_job_keeps_the_relay_on_until_it_finishes(
    gateway: Gateway,
) -> None:
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    gateway.bus.publish(JobStarted(job_id=1, file="box.gcode", lines=100, estimated_seconds=60))
    await until(lambda: gateway.service.status()["state"] == "in_use")
    await gateway.present(ADA)
    ended = await gateway.wait_for(SessionEnded)
    assert ended.reason == "badge_out" and ended.jobs == 1
    await asyncio.sleep(0.2)
    assert gateway.relay_on
    assert gateway.service.status()["state"] == "ending"
    gateway.bus.publish(
        JobFinished(
            job_id=1,
            file="box.gcode",
            outcome="completed",
            lines_done=100,
            seconds=42.0,
            resends=0,
            errors=0,
            filament_mm=1500.0,
        )
    )
    await until(lambda: not gateway.relay_on)
    await until(lambda: gateway.rows()[0]["job_seconds"] == 42.0)
    row = gateway.rows()[0]
    assert (row["end_reason"], row["jobs"], row["filament_mm"]) == ("badge_out", 1, 1500.0)
    usage = await gateway.service.usage()
    assert usage[0]["member_id"] == "m-ada" and usage[0]["job_seconds"] == 42.0


async def test_estop_cuts_at_once(gateway: Gateway) -> None:
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    gateway.bus.publish(JobStarted(job_id=2, file="x", lines=1, estimated_seconds=None))
    await until(lambda: gateway.service.status()["state"] == "in_use")
    gateway.bus.publish(EmergencyStop(origin="web"))
    await until(lambda: not gateway.relay_on, timeout=0.5)
    assert (await gateway.wait_for(SessionEnded)).reason == "estop"
    assert (await gateway.wait_for(RelayChanged, lambda e: not e.on)).reason == "estop"


async def test_an_open_lid_cuts_and_blocks(gateway: Gateway) -> None:
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    gateway.factory.pin(LID).drive_high()
    await until(lambda: not gateway.relay_on)
    assert (await gateway.wait_for(SessionEnded)).reason == "interlock"
    await gateway.present(ADA)
    denied = await gateway.wait_for(AccessDenied)
    assert denied.reason == "interlock" and "lid" in denied.message
    gateway.factory.pin(LID).drive_low()
    await until(lambda: gateway.service.status()["interlocks_tripped"] == [])
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)


async def test_lockout_flow(gateway: Gateway) -> None:
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    status = await gateway.commands.call(
        "lockout", {"reason": "tube replacement", "by": "staff"}, origin="web"
    )
    assert not gateway.relay_on  # cut before the command returned
    assert status["lockout"] == {"reason": "tube replacement", "by": "staff"}
    await until(lambda: len(gateway.rows("access_lockout")) == 1)

    await gateway.present(ADA)
    denied = await gateway.wait_for(AccessDenied)
    assert denied.reason == "locked_out" and "tube replacement" in denied.message
    assert not gateway.relay_on

    with pytest.raises(CommandError) as err:
        await gateway.commands.call("clear_lockout", {"by": "m-ada"}, origin="web")
    assert err.value.code == "not_maintainer"

    await gateway.present(MAX)
    await until(lambda: gateway.relay_on)
    await gateway.commands.call("clear_lockout", origin="web", actor="token:admin")
    cleared = await gateway.wait_for(LockoutChanged, lambda e: not e.active)
    assert cleared.by == "m-max"
    await until(lambda: gateway.rows("access_lockout") == [])
    assert gateway.relay_on and gateway.service.status()["state"] == "authorised"


async def test_a_lockout_survives_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start(tmp_path, monkeypatch)
    await gw.commands.call("lockout", {"reason": "broken mirror"})
    await until(lambda: len(gw.rows("access_lockout")) == 1)
    await gw.stop()
    gw = await start(tmp_path, monkeypatch)
    try:
        assert gw.service.status()["lockout"]["reason"] == "broken mirror"
        await gw.present(ADA)
        assert (await gw.wait_for(AccessDenied)).reason == "locked_out"
        await gw.commands.call("clear_lockout", {"by": "m-max"}, origin="web")
        await gw.present(ADA)
        await until(lambda: gw.relay_on)
    finally:
        await gw.stop()


async def test_cancelling_the_service_leaves_the_relay_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start(tmp_path, monkeypatch)
    await gw.present(ADA)
    await until(lambda: gw.relay_on)
    await until(lambda: len(gw.rows()) == 1)
    await gw.stop()
    assert not gw.relay_on
    assert [s.state for s in gw.factory.pin(RELAY).states][-1] is False
    (row,) = gw.rows()
    assert row["end_reason"] == "shutdown" and row["ended_at"] is not None
    assert gw.events(SessionEnded)[-1].reason == "shutdown"
    with pytest.raises(CommandError) as err:
        await gw.commands.call("badge_out")
    assert err.value.code == "not_running"


async def test_a_crashed_session_is_closed_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start(tmp_path, monkeypatch)
    await gw.present(ADA)
    await until(lambda: len(gw.rows()) == 1)
    await gw.stop()
    with contextlib.closing(sqlite3.connect(tmp_path / "gateway.db")) as db, db:
        db.execute("UPDATE access_sessions SET ended_at = NULL, end_reason = NULL")
    gw = await start(tmp_path, monkeypatch)
    await gw.stop()
    assert gw.rows()[0]["end_reason"] == "crash"


async def test_a_bad_list_keeps_the_last_good_one(gateway: Gateway, tmp_path: Path) -> None:
    (tmp_path / "access.json").write_bytes(access_list(count=7))
    failed = await gateway.wait_for(AccessListUpdated, lambda e: not e.ok)
    assert "truncated" in (failed.error or "") and failed.members == 4
    assert "truncated" in gateway.service.status()["access_list"]["last_error"]
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)


async def test_refusals_never_reveal_the_uid(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        await gateway.present(STRANGER)
        denied = await gateway.wait_for(AccessDenied)
    assert denied.reason == "unknown_badge" and denied.member_id is None
    assert not gateway.relay_on
    await until(lambda: len(gateway.rows("access_denials")) == 1)
    assert gateway.rows("access_denials")[0]["member_id"] is None
    assert STRANGER not in caplog.text and STRANGER.lower() not in caplog.text
    assert STRANGER not in repr(gateway.seen)


async def test_badge_out_command_and_induction(gateway: Gateway) -> None:
    await gateway.present(TESS)
    await until(lambda: gateway.relay_on)
    await gateway.present(NIA)
    induction = await gateway.wait_for(InductionRecorded)
    assert (induction.trainer_id, induction.member_id) == ("m-tess", "m-nia")
    await until(lambda: len(gateway.rows("access_inductions")) == 1)
    assert gateway.service.status()["session"]["member_id"] == "m-nia"
    assert gateway.relay_on
    await gateway.commands.call("badge_out")
    await until(lambda: not gateway.relay_on)
    with pytest.raises(CommandError):
        await gateway.commands.call("badge_out")
    await gateway.present(NIA)  # the local induction counts until the list catches up
    await until(lambda: gateway.relay_on)
    assert [s["member_id"] for s in await gateway.service.sessions(10)] == [
        "m-nia",
        "m-nia",
        "m-tess",
    ]
    assert (await gateway.service.pending_inductions())[0]["member_id"] == "m-nia"


async def test_commands_never_switch_the_relay_on(tmp_path: Path) -> None:
    commands = CommandRouter()
    AccessService(make_config(tmp_path), "laser-1", tmp_path / "db", EventBus(), commands)
    assert set(commands.names) == {
        "lockout",
        "clear_lockout",
        "refresh_access_list",
        "badge_out",
        "access_status",
        "present_badge",
        # The policy's: none of them opens a session or touches the relay.
        "presence",
        "choose_grant_level",
        "book",
        "cancel_booking",
        "bookings",
        "lapsing",
        "authorise_start",  # answers the presence rule; never switches anything on
        "member_standing",  # read-only
        "cut_power",
    }
    assert not FORBIDDEN & set(commands.names)
    real = make_config(tmp_path).model_copy(
        update={"readers": [Rdm6300ReaderConfig(name="door", port="/dev/ttyAMA0")]}
    )
    commands = CommandRouter()
    AccessService(real, "laser-1", tmp_path / "db", EventBus(), commands)
    assert "present_badge" not in commands.names


async def test_member_standing_tells_other_capabilities_what_the_list_says(
    gateway: Gateway,
) -> None:
    async def standing(member_id: str) -> str:
        answer = await gateway.commands.call("member_standing", {"member_id": member_id})
        return str(answer["standing"])

    assert await standing("m-ada") == "active"
    assert await standing("m-nia") == "not_inducted"
    assert await standing("m-nobody") == "unknown"
    with pytest.raises(CommandError) as err:
        await gateway.commands.call("member_standing", {})
    assert err.value.code == "bad_args"


async def test_refresh_access_list_rereads_the_source(gateway: Gateway, tmp_path: Path) -> None:
    before = len(gateway.events(AccessListUpdated))
    answer = await gateway.commands.call("refresh_access_list")
    assert answer == {"refreshing": True, "source": f"file:{tmp_path / 'access.json'}"}
    await until(lambda: len(gateway.events(AccessListUpdated)) > before)


async def test_disabled_access_answers_status_and_refuses_the_rest(tmp_path: Path) -> None:
    commands = CommandRouter()
    svc = AccessService(
        AccessConfig(enabled=False), "laser-1", tmp_path / "db", EventBus(), commands
    )
    task = asyncio.create_task(svc.run())
    await asyncio.wait_for(svc.ready.wait(), 2)
    assert (await commands.call("access_status"))["enabled"] is False
    with pytest.raises(CommandError) as err:
        await commands.call("lockout", {"reason": "x"})
    assert err.value.code == "disabled"
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# -- presence rule, hostile lists, live re-check ---------------------------------------------


async def test_a_hostile_list_under_an_open_session_changes_nothing(
    gateway: Gateway, tmp_path: Path
) -> None:
    """The measured failure: a list nested 100,000 deep took the service (and the relay,
    under a member's open session) down, again at every restart."""
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    deep = b'{"members": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    (tmp_path / "access.json").write_bytes(deep)
    refused = await gateway.wait_for(AccessListUpdated, lambda e: not e.ok)
    assert "nested too deeply" in (refused.error or "") and refused.members == 4
    assert not gateway.task.done()
    assert gateway.relay_on and gateway.service.status()["session"]["member_id"] == "m-ada"
    assert gateway.service.status()["access_list"]["last_error"] == refused.error
    (tmp_path / "access.json").write_bytes(b"\x1f\x8b" + b"\0" * 64)  # not even gzip
    await gateway.wait_for(AccessListUpdated, lambda e: not e.ok and "corrupt" in (e.error or ""))
    assert gateway.relay_on and not gateway.task.done()


async def test_a_failing_source_is_restarted_and_never_stops_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever escapes a source (here a bug raising RuntimeError) is reported and the
    source restarted; the open session and the relay are untouched."""
    from gateway.access import sources

    real = sources.make_source
    failures = {"left": 1}

    class Exploding(sources.AccessListSource):
        description = "file:exploding"

        def __init__(self, inner: sources.AccessListSource) -> None:
            super().__init__()
            self.inner = inner

        async def updates(self) -> Any:
            async for result in self.inner.updates():
                yield result
                if failures["left"]:
                    failures["left"] -= 1
                    raise RuntimeError("a bug in the source")

    monkeypatch.setattr(
        service_module, "make_source", lambda *a, **kw: Exploding(real(*a, **kw))
    )
    monkeypatch.setattr(service_module.Backoff, "next_delay", lambda self: 0.05)
    gw = await start(tmp_path, monkeypatch)
    try:
        failed = await gw.wait_for(AccessListUpdated, lambda e: not e.ok)
        assert "RuntimeError" in (failed.error or "")
        await gw.present(ADA)
        await until(lambda: gw.relay_on)
        # The restarted source still delivers: a new list is applied.
        (tmp_path / "access.json").write_bytes(access_list() + b"\n")
        await until(lambda: len([e for e in gw.events(AccessListUpdated) if e.ok]) >= 2)
        assert not gw.task.done() and gw.relay_on
    finally:
        await gw.stop()


async def test_authorise_start_needs_a_session_and_records_who_started(
    gateway: Gateway,
) -> None:
    args = {"action": "start", "origin": "web", "actor": "token:op"}
    with pytest.raises(CommandError) as refused:
        await gateway.commands.call("authorise_start", args)
    assert refused.value.code == "no_session"
    assert "badge in at the machine first" in refused.value.message
    await gateway.present(ADA)
    await until(lambda: gateway.relay_on)
    answer = await gateway.commands.call("authorise_start", args)
    assert answer["member_id"] == "m-ada" and answer["caller"] == "token:op"
    await until(lambda: len(gateway.rows("access_job_starts")) == 1)
    (row,) = gateway.rows("access_job_starts")
    assert (row["caller"], row["member_id"], row["action"]) == ("web:token:op", "m-ada", "start")
    assert row["session_id"] == gateway.service.status()["session"]["id"]


async def test_a_job_that_starts_with_nobody_in_session_is_stopped(gateway: Gateway) -> None:
    cancels: list[str] = []

    async def cancel(request: Any) -> dict[str, Any]:
        cancels.append(request.actor)
        gateway.bus.publish(
            JobFinished(
                job_id=1,
                file="box.gcode",
                outcome="cancelled",
                lines_done=0,
                seconds=0.1,
                resends=0,
                errors=0,
            )
        )
        return {"state": "cancelled"}

    gateway.commands.register("cancel", cancel)  # the machine's command, as it answers it
    gateway.bus.publish(JobStarted(job_id=1, file="box.gcode", lines=100, estimated_seconds=60))
    await until(lambda: cancels == ["access:presence"])
    await until(lambda: not gateway.service.status()["job_running"])
    assert "Badge in at the machine first" in gateway.service.status()["last_denial"]
    assert not gateway.relay_on


async def test_the_maintainers_list_is_kept_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the membership system unreachable, the stored list (maintainers included)
    keeps working across a restart: a maintainer can badge in under a lockout and
    clear it, nobody else can."""
    gw = await start(tmp_path, monkeypatch)
    await gw.commands.call("lockout", {"reason": "belt replaced"})
    await until(lambda: len(gw.rows("access_lockout")) == 1)
    await gw.stop()
    (tmp_path / "access.json").unlink()  # the source is down
    gw = await start(tmp_path, monkeypatch, wait_list=False)
    try:
        failed = await gw.wait_for(AccessListUpdated, lambda e: not e.ok)
        assert "does not exist" in (failed.error or "")
        assert gw.service.status()["access_list"]["members"] == 4
        await gw.present(ADA)
        assert (await gw.wait_for(AccessDenied)).reason == "locked_out"
        await gw.present(MAX)
        await until(lambda: gw.relay_on)
        assert gw.service.status()["session"]["member_id"] == "m-max"
        await gw.commands.call("clear_lockout")
        assert gw.service.status()["lockout"] is None
    finally:
        await gw.stop()


async def test_a_maintainer_demoted_by_a_new_list_loses_the_locked_out_machine(
    gateway: Gateway, tmp_path: Path
) -> None:
    await gateway.commands.call("lockout", {"reason": "belt replaced"})
    await gateway.present(MAX)
    await until(lambda: gateway.relay_on)
    demoted = json.loads(access_list())
    for member in demoted["members"]:
        if member["id"] == "m-max":
            member["machines"] = {"*": "user"}
    (tmp_path / "access.json").write_text(json.dumps(demoted))
    ended = await gateway.wait_for(SessionEnded, lambda e: e.reason == "revoked")
    assert ended.member_id == "m-max" and "locked out" in ended.message
    await until(lambda: not gateway.relay_on)


def test_remote_start_always_is_warned_about_at_start_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="gateway.access.service"):
        AccessService(
            make_config(tmp_path), "laser-1", tmp_path / "db", EventBus(), CommandRouter()
        )
    assert "remote_start" not in caplog.text
    with caplog.at_level(logging.WARNING, logger="gateway.access.service"):
        AccessService(
            make_config(tmp_path, remote_start="always"),
            "laser-1",
            tmp_path / "db",
            EventBus(),
            CommandRouter(),
        )
    assert 'remote_start = "always"' in caplog.text and "nobody badged in" in caplog.text


async def test_a_job_paused_after_badge_out_does_not_hold_power_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = await start(tmp_path, monkeypatch, idle_timeout=1.0)
    try:
        await gw.present(ADA)
        await until(lambda: gw.relay_on)
        gw.bus.publish(JobStarted(job_id=1, file="box.gcode", lines=100, estimated_seconds=60))
        await until(lambda: gw.service.status()["state"] == "in_use")
        await gw.present(ADA)  # badge out: the job finishes under after_job
        await until(lambda: gw.service.status()["state"] == "ending")
        gw.bus.publish(JobPaused(job_id=1))
        off = await gw.wait_for(RelayChanged, lambda e: not e.on)
        assert off.reason == "paused_unattended" and not gw.relay_on
    finally:
        await gw.stop()
