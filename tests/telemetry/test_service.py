"""TelemetryService against a real Mosquitto broker on loopback."""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.access.events import AccessListReceived, AccessState
from gateway.bus import EventBus
from gateway.commands import CommandRequest, CommandRouter
from gateway.machine.events import JobFinished, JobPaused, JobProgress, MachineStatus
from gateway.supervisor import ServiceStarted, Supervisor
from gateway.telemetry.events import BrokerConnected, OutboxDropped

EVENTS = "gateway/m1/event/#"


def numbers(messages: list[Any]) -> list[int]:
    """job_id of each job_paused event, first delivery of each event_id only."""
    seen: set[str] = set()
    out: list[int] = []
    for m in messages:
        body = m.json()
        if body["type"] != "job_paused" or body["event_id"] in seen:
            continue
        seen.add(body["event_id"])
        out.append(body["job_id"])
    return out


async def publish_paced(bus: EventBus, first: int, last: int, per_tick: int = 10) -> None:
    for n in range(first, last + 1):
        bus.publish(JobPaused(job_id=n))
        if n % per_tick == 0:
            await asyncio.sleep(0.005)


async def test_events_arrive_in_order_with_the_envelope(harness: Any) -> None:
    bus = EventBus()
    service = harness.service(bus=bus)
    async with harness.collecting(EVENTS) as sub, harness.running(service):
        await publish_paced(bus, 1, 200)
        await sub.wait_for(lambda: len(numbers(sub.messages)) >= 200)
        await asyncio.sleep(0.1)
    assert numbers(sub.messages) == list(range(1, 201))
    body = sub.messages[0].json()
    assert body["schema"] == 1 and body["machine_id"] == "m1"
    assert body["event_id"].startswith("m1-")
    assert body["ts"].endswith("Z")
    assert sub.messages[0].topic == "gateway/m1/event/job_paused"
    assert not sub.messages[0].retain
    assert len(service_outbox_rows(harness)) == 0  # every PUBACKed row is deleted


def service_outbox_rows(harness: Any) -> list[Any]:
    import sqlite3

    db = sqlite3.connect(harness.tmp_path / "state" / "gateway.db")
    return db.execute("SELECT id FROM telemetry_outbox").fetchall()


async def test_retained_state_and_status_and_clean_shutdown(harness: Any) -> None:
    bus = EventBus()
    service = harness.service(bus=bus)
    async with harness.running(service):
        bus.publish(
            MachineStatus(
                machine_id="m1",
                state="printing",
                firmware="marlin",
                temperatures={"T0": (210.0, 210.0), "B": (60.0, 60.0)},
                job={"id": 4, "file": "benchy.gcode", "fraction": 0.5, "eta_seconds": 60.0},
            )
        )
        bus.publish(
            AccessState(
                state="in_use",
                relay_on=True,
                member_id="42",
                member_name="Ada",
                job_running=True,
                lockout_reason=None,
                interlocks_tripped=(),
                last_denial=None,
            )
        )
        await asyncio.sleep(0.7)  # the state publisher waits up to 0.5 s between updates
        async with harness.collecting(
            "gateway/m1/status", "gateway/m1/state", client_id="late"
        ) as sub:
            await sub.wait_for(lambda: bool(sub.on("/state")) and bool(sub.on("/status")))
            state = sub.on("/state")[-1]
            assert state.retain
            doc = state.json()
            assert doc["state"] == "printing"
            assert doc["job"]["progress"] == 50.0 and doc["job"]["file"] == "benchy.gcode"
            assert doc["nozzle_temperature"] == 210.0
            assert doc["session"] == {"active": True, "member": "Ada"}
            assert doc["lockout"]["active"] is False
            assert sub.on("/status")[-1].payload == b"online"
    async with harness.collecting("gateway/m1/status", client_id="after") as sub:
        await sub.wait_for(lambda: bool(sub.on("/status")))
        assert sub.on("/status")[-1].payload == b"offline"  # published on clean shutdown


async def test_state_is_throttled_and_job_progress_events_limited(harness: Any) -> None:
    bus = EventBus()
    service = harness.service(bus=bus)
    async with harness.collecting("gateway/m1/state", EVENTS) as sub, harness.running(service):
        for i in range(40):
            fraction = i / 40
            bus.publish(
                JobProgress(
                    job_id=1,
                    lines_done=i,
                    lines_total=40,
                    bytes_done=i,
                    bytes_total=40,
                    fraction=fraction,
                    elapsed=float(i),
                    eta_seconds=40.0 - i,
                )
            )
            await asyncio.sleep(0.025)  # 40 updates in 1 s
        await asyncio.sleep(0.7)
        states = list(sub.on("/state"))
        bus.publish(
            JobFinished(
                job_id=1,
                file="a.gcode",
                outcome="completed",
                lines_done=40,
                seconds=1.0,
                resends=0,
                errors=0,
            )
        )
        bus.publish(MachineStatus(machine_id="m1", state="idle", firmware="marlin", job=None))
        await sub.wait_for(lambda: sub.on("/state")[-1].json()["state"] == "idle")
    assert 2 <= len(states) <= 4  # at most 2/s over ~1.7 s, and the latest always lands
    assert states[-1].json()["job"]["progress"] == 97.5
    assert sub.on("/state")[-1].json()["job"] is None  # a finished job leaves the state
    progress_events = sub.on("/event/job_progress")
    assert 1 <= len(progress_events) <= 2


async def test_outage_mid_run_loses_nothing_and_keeps_order(harness: Any) -> None:
    bus = EventBus()
    service = harness.service(bus=bus)
    broker = harness.broker
    async with harness.collecting(EVENTS) as sub, harness.running(service):
        await publish_paced(bus, 1, 100)
        broker.stop()
        outage = asyncio.create_task(publish_paced(bus, 101, 200, per_tick=1))
        await asyncio.sleep(3.0)  # several seconds without a broker
        await outage
        assert not service.connected.is_set()
        broker.start()
        await publish_paced(bus, 201, 300)
        await sub.wait_for(lambda: len(numbers(sub.messages)) >= 300, within=15)
    assert numbers(sub.messages) == list(range(1, 301))
    assert service.stats.connections >= 2


async def test_restarted_daemon_replays_its_outbox(harness: Any) -> None:
    broker = harness.broker
    first_bus = EventBus()
    first = harness.service(bus=first_bus)
    async with harness.running(first):
        broker.stop()
        await publish_paced(first_bus, 1, 50)
        await asyncio.sleep(0.2)
        assert first.stats.recorded == 50
    # The daemon has stopped with 50 events unsent; it starts again later.
    broker.start()
    second_bus = EventBus()
    second = harness.service(bus=second_bus)
    async with harness.collecting(EVENTS) as sub, harness.running(second):
        await publish_paced(second_bus, 51, 60)
        await sub.wait_for(lambda: len(numbers(sub.messages)) >= 60)
    assert numbers(sub.messages) == list(range(1, 61))
    ids = [m.json()["event_id"] for m in sub.messages]
    assert ids[0].split("-")[1] != ids[-1].split("-")[1]  # two runs, two boot ids


async def test_full_outbox_reports_the_drop_and_delivers_the_report(harness: Any) -> None:
    bus = EventBus()
    service = harness.service(harness.config(outbox_max_events=20), bus=bus)
    broker = harness.broker
    dropped = bus.subscribe(OutboxDropped)
    async with harness.collecting(EVENTS) as sub, harness.running(service):
        broker.stop()
        for n in range(1, 31):  # one burst: stored in one transaction
            bus.publish(JobPaused(job_id=n))
        await asyncio.sleep(0.2)
        broker.start()
        await sub.wait_for(lambda: bool(sub.on("/event/outbox_dropped")))
        await sub.wait_for(lambda: 30 in numbers(sub.messages))
    # 30 events in a 20-event outbox: trimmed to 90 % (18) to leave room for the report.
    report = sub.on("/event/outbox_dropped")[0].json()
    assert (report["reason"], report["count"]) == ("full", 12)
    assert numbers(sub.messages) == list(range(13, 31))  # the oldest went, the newest stayed
    assert dropped.get_nowait() is not None
    assert service.stats.dropped == 12


async def test_telemetry_and_home_assistant_discovery(harness: Any) -> None:
    config = harness.config(home_assistant=True, telemetry_interval=0.2)
    service = harness.service(config)
    async with (
        harness.collecting("homeassistant/#", "gateway/m1/telemetry") as sub,
        harness.running(service),
    ):
        await sub.wait_for(lambda: len(sub.on("/config")) >= 9 and bool(sub.on("/telemetry")))
    async with harness.collecting("homeassistant/#", client_id="home-assistant") as late:
        await late.wait_for(lambda: len(late.on("/config")) >= 9)
    assert all(m.retain for m in late.on("/config"))  # Home Assistant may start later
    configs = {m.topic: m.json() for m in sub.on("/config")}
    assert "homeassistant/binary_sensor/m1/session_active/config" in configs
    for payload in configs.values():
        assert payload["state_topic"] == "gateway/m1/state"
        assert payload["availability_topic"] == "gateway/m1/status"
        assert payload["device"]["identifiers"] == ["makerspace_gateway_m1"]
    sample = sub.on("/telemetry")[0].json()
    assert sample["machine_id"] == "m1"
    assert set(sample["system"]) >= {"cpu_temperature", "load_average", "disk", "memory"}
    assert sample["system"]["disk"]["free_bytes"] > 0


async def test_access_list_topic_is_forwarded_to_the_bus(harness: Any) -> None:
    async with harness.broker.client() as admin:
        await admin.publish("space/access-list", b'{"members": []}', qos=1, retain=True)
    bus = EventBus()
    received = bus.subscribe(AccessListReceived)
    service = harness.service(harness.config(access_list_topic="space/access-list"), bus=bus)
    async with harness.collecting(EVENTS) as sub, harness.running(service):
        async with asyncio.timeout(5):
            event = await received.get()
        await asyncio.sleep(0.2)
    assert event.payload == b'{"members": []}'
    assert event.mqtt_topic == "space/access-list"
    assert sub.messages == []  # the list (badge data) never goes back out as an event


async def command(client: Any, name: str, body: bytes) -> None:
    await client.publish(f"gateway/m1/cmd/{name}", body, qos=1)


async def test_commands_reach_the_router_and_bad_ones_get_errors(harness: Any) -> None:
    router = CommandRouter()
    seen: list[CommandRequest] = []

    async def pause(request: CommandRequest) -> dict[str, Any]:
        seen.append(request)
        return {"paused": True, "job_id": request.args.get("job_id")}

    router.register("pause", pause)
    service = harness.service(commands=router)
    async with (
        harness.collecting("gateway/m1/cmd/+/result") as sub,
        harness.running(service),
        harness.broker.client() as client,
    ):
        await command(client, "pause", b"this is not json")
        await command(client, "pause", b'{"args": {}}')
        await command(client, "pause", b'{"request_id": "r3", "args": ["not", "an", "object"]}')
        await command(client, "frobnicate", b'{"request_id": "r4", "args": {}}')
        await command(client, "relay_on", b'{"request_id": "r5", "args": {}}')
        await command(client, "pause", b'{"request_id": "r6", "args": {"job_id": 9}}')
        await sub.wait_for(lambda: len(sub.messages) >= 6)
    results = [(m.topic.split("/")[3], m.json()) for m in sub.messages]
    by_request = {body["request_id"]: (name, body) for name, body in results}
    errors = [body["error"]["code"] for _, body in results if not body["ok"]]
    assert sorted(errors) == sorted(
        ["invalid_json", "invalid_request", "invalid_request", "unknown_command", "unknown_command"]
    )
    assert by_request["r3"][1]["error"]["code"] == "invalid_request"
    assert by_request["r4"][1]["error"]["code"] == "unknown_command"
    assert by_request["r5"][1]["ok"] is False  # switching on is never a command
    assert by_request["r6"] == (
        "pause",
        {"schema": 1, "request_id": "r6", "ok": True, "result": {"paused": True, "job_id": 9}},
    )
    assert [(r.name, r.args, r.origin) for r in seen] == [("pause", {"job_id": 9}, "mqtt")]


async def test_retained_commands_are_ignored(harness: Any) -> None:
    router = CommandRouter()
    calls: list[str] = []

    async def pause(request: CommandRequest) -> dict[str, Any]:
        calls.append(request.name)
        return {}

    router.register("pause", pause)
    async with harness.broker.client() as client:
        await client.publish("gateway/m1/cmd/pause", b'{"request_id": "old"}', qos=1, retain=True)
    service = harness.service(commands=router)
    async with harness.running(service):
        await asyncio.sleep(0.3)
    assert calls == []


async def test_connection_killed_uncleanly_gives_offline_by_last_will(
    harness: Any, tmp_path: Path
) -> None:
    script = tmp_path / "gateway_child.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            from pathlib import Path
            from gateway.bus import EventBus
            from gateway.commands import CommandRouter
            from gateway.telemetry.config import TelemetryConfig
            from gateway.telemetry.service import TelemetryService

            async def main():
                config = TelemetryConfig(enabled=True, host="127.0.0.1",
                                         port={harness.broker.port}, keepalive=5,
                                         telemetry_interval=0, home_assistant=False)
                here = Path({str(tmp_path)!r})
                service = TelemetryService(config, "m1", "Child", here / "c.db", here,
                                           EventBus(), CommandRouter(), "t")
                task = asyncio.create_task(service.run())
                await service.connected.wait()
                print("connected", flush=True)
                await task

            asyncio.run(main())
            """
        )
    )
    async with harness.collecting("gateway/m1/status") as sub:
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(script), stdout=asyncio.subprocess.PIPE
        )
        assert child.stdout is not None
        try:
            line = await asyncio.wait_for(child.stdout.readline(), 15)
            assert line.strip() == b"connected"
            await sub.wait_for(lambda: [m.payload for m in sub.messages][-1:] == [b"online"])
            child.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker sends the will
            await sub.wait_for(lambda: [m.payload for m in sub.messages][-1:] == [b"offline"])
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()


async def test_broker_down_at_start_is_not_fatal(harness: Any) -> None:
    harness.broker.stop()
    bus = EventBus()
    connected = bus.subscribe(BrokerConnected)
    service = harness.service(bus=bus)
    async with harness.running(service, connected=False):
        bus.publish(JobPaused(job_id=1))
        await asyncio.sleep(0.3)
        assert service.ready.is_set() and not service.connected.is_set()
        harness.broker.start()
        async with asyncio.timeout(5):
            await service.connected.wait()
        assert connected.get_nowait() is not None


@pytest.mark.parametrize("enabled", [False])
async def test_disabled_service_is_ready_and_idle(harness: Any, enabled: bool) -> None:
    service = harness.service(harness.config(enabled=enabled))
    await asyncio.wait_for(service.run(), 1)
    assert service.ready.is_set()


async def test_expired_events_are_reported_not_sent(harness: Any) -> None:
    broker = harness.broker
    first_bus = EventBus()
    async with harness.running(harness.service(bus=first_bus)):
        broker.stop()
        await publish_paced(first_bus, 1, 5)
        await asyncio.sleep(0.2)
    await asyncio.sleep(0.6)
    broker.start()
    config = harness.config(outbox_max_age=timedelta(seconds=0.5))
    async with harness.collecting(EVENTS) as sub, harness.running(harness.service(config)):
        await sub.wait_for(lambda: bool(sub.on("/event/outbox_dropped")))
        await asyncio.sleep(0.2)
    report = sub.on("/event/outbox_dropped")[0].json()
    assert (report["reason"], report["count"]) == ("expired", 5)
    assert numbers(sub.messages) == []


async def test_runs_under_the_supervisor(harness: Any) -> None:
    bus = EventBus()
    started = bus.subscribe(ServiceStarted)
    supervisor = Supervisor(bus, shutdown_timeout=3.0)
    service = harness.service(bus=bus)
    supervisor.add(service)
    async with supervisor:
        async with asyncio.timeout(5):
            await service.connected.wait()
    event = started.get_nowait()
    assert event is not None and event.service == "telemetry"
    async with harness.collecting("gateway/m1/status") as sub:
        await sub.wait_for(lambda: bool(sub.messages))
    assert sub.messages[-1].payload == b"offline"
