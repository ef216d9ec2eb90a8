"""The telemetry service: the machine's state and events over MQTT, store and forward.

Data flow::

    bus ──> recorder ──> outbox (SQLite) ──> forwarder ──> broker ──PUBACK──> deleter
        └─> snapshots (MachineStatus, AccessState, JobProgress) ──> state publisher

* The recorder takes events off the bus in batches, writes each batch to the
  outbox in one transaction (in a thread) and wakes the forwarder.
* The forwarder, while connected, reads the outbox oldest first and publishes
  at QoS 1 with up to :data:`WINDOW` PUBACKs outstanding; MQTT keeps QoS 1
  messages in order on one connection.  aiomqtt's ``publish(qos=1)`` returns
  once paho has seen the PUBACK (paho calls ``on_publish`` from
  ``_handle_pubackcomp``), so only then is the row marked for deletion.
* After a reconnect or a restart the forwarder starts again from the oldest
  row; subscribers may see an event twice and de-duplicate by ``event_id``.
* Remote commands arrive on ``<prefix>/cmd/<name>`` and go to the
  :class:`~gateway.commands.CommandRouter`; answers go to ``.../result``.

The broker being down is normal operation: events wait in the outbox and the
service reconnects with the shared :class:`~gateway.backoff.Backoff`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from gateway.access.events import AccessListReceived, AccessState
from gateway.backoff import Backoff
from gateway.bus import Event, EventBus, Subscription
from gateway.commands import CommandError, CommandRouter
from gateway.machine.events import JobFinished, JobProgress, MachineStatus
from gateway.mqtt import BrokerSettingsError, tls_context
from gateway.supervisor import Service
from gateway.telemetry import payloads, system
from gateway.telemetry.config import TelemetryConfig
from gateway.telemetry.discovery import discovery_messages
from gateway.telemetry.errors import TelemetryError
from gateway.telemetry.events import BrokerConnected, BrokerDisconnected, OutboxDropped
from gateway.telemetry.outbox import Outbox, OutboxRow

log = logging.getLogger(__name__)

QUEUE_LIMIT = 50_000  # bus events waiting to be stored; beyond it the oldest are dropped
BATCH_LIMIT = 1000  # events per outbox transaction
PAGE = 500  # outbox rows read per forwarder step
WINDOW = 64  # QoS 1 publishes awaiting their PUBACK
STATE_INTERVAL = 0.5  # the state topic at most twice a second
PROGRESS_INTERVAL = 1.0  # job_progress events at most once a second
DELETE_DELAY = 0.02  # gather PUBACKs this long before deleting their rows
EXPIRE_INTERVAL = 60.0
MAX_COMMANDS = 4  # remote commands running at once
RECENT_COMMANDS = 256  # answers kept to re-send when a command is redelivered
MQTT_TIMEOUT = 10.0


@dataclass
class TelemetryStats:
    """Counters for the web UI and tests."""

    recorded: int = 0
    delivered: int = 0
    dropped: int = 0
    connections: int = 0
    commands: int = 0


def access_view(event: AccessState) -> payloads.AccessView:
    """What the ``state`` topic shows of the access capability's snapshot."""
    return payloads.AccessView(
        state=event.state,
        session_active=event.member_id is not None,
        member=event.member_name,
        lockout=event.state == "lockout" or event.lockout_reason is not None,
        lockout_reason=event.lockout_reason,
    )


def _payload_bytes(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


def _tls_context(config: TelemetryConfig) -> ssl.SSLContext | None:
    try:
        return tls_context(config)
    except BrokerSettingsError as err:
        raise TelemetryError(str(err)) from err


#: CONNACK codes meaning "who are you?" (MQTT 3.1.1 codes 4, 5; MQTT 5 codes 134, 135).
_LOGIN_REFUSED = frozenset({4, 5, 134, 135})


def _describe(err: aiomqtt.MqttError) -> str:
    if isinstance(err, MqttConnectError):
        code = getattr(err.rc, "value", err.rc)
        if code in _LOGIN_REFUSED:
            return (
                f"{err}; check telemetry.username and password against the broker's "
                "password_file, and that its acl_file lets this user write <prefix>/status"
            )
        return f"the broker refused the connection: {err}"
    return str(err) or type(err).__name__


class TelemetryService(Service):
    """Publishes the machine's state, events and health to an MQTT broker.

    ``backoff`` sets the reconnect delays (tests use short ones).  ``connected``
    is set while the broker link is up; ``stats`` counts what happened.
    """

    name = "telemetry"
    optional = True

    def __init__(
        self,
        config: TelemetryConfig,
        machine_id: str,
        machine_name: str,
        db_path: Path,
        state_dir: Path,
        bus: EventBus,
        commands: CommandRouter,
        version: str,
        *,
        backoff: Backoff | None = None,
    ) -> None:
        super().__init__()
        try:
            self.topics = payloads.Topics(config.topic_prefix(machine_id))
        except ValueError as err:
            raise TelemetryError(f"telemetry.prefix: {err}") from err
        self._config = config
        self._machine_id = machine_id
        self._machine_name = machine_name
        self._db_path = db_path
        self._state_dir = state_dir
        self._bus = bus
        self._commands = commands
        self._version = version
        self._backoff = backoff or Backoff(initial=1.0, maximum=60.0)
        self._client_id = config.resolved_client_id(machine_id)
        self._ids = payloads.EventIds(machine_id)
        self.connected = asyncio.Event()
        self.stats = TelemetryStats()
        self._status: MachineStatus | None = None
        self._progress: JobProgress | None = None
        self._access: payloads.AccessView | None = None
        self._last_progress_event = -math.inf
        self._state_changed = asyncio.Event()
        self._appended = asyncio.Event()
        self._acked: set[int] = set()
        self._acked_added = asyncio.Event()
        self._recent: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._started = time.monotonic()

    # ------------------------------------------------------------------ lifetime

    async def run(self) -> None:
        if not self._config.enabled:
            log.info("telemetry is disabled ([telemetry] enabled = false)")
            self.ready.set()
            return
        tls = await asyncio.to_thread(_tls_context, self._config)
        outbox = await asyncio.to_thread(
            Outbox,
            self._db_path,
            max_events=self._config.outbox_max_events,
            max_age=self._config.outbox_max_age.total_seconds(),
        )
        sub = self._bus.subscribe(Event, maxsize=QUEUE_LIMIT)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._record(sub, outbox))
                tg.create_task(self._delete_acked(outbox))
                tg.create_task(self._expire(outbox))
                tg.create_task(self._stay_connected(outbox, tls))
                self.ready.set()
        finally:
            sub.close()
            # Whatever reached the bus before shutdown still goes to the outbox.
            rest: list[Event] = []
            while (event := sub.get_nowait()) is not None:
                rest.append(event)
            try:
                await self._store(outbox, self._route(rest))
                await self._flush_acked(outbox)
            finally:
                await asyncio.to_thread(outbox.close)

    # ------------------------------------------------------------------ recording

    async def _record(self, sub: Subscription[Event], outbox: Outbox) -> None:
        reported_overflow = 0
        while True:
            batch = [await sub.get()]
            while len(batch) < BATCH_LIMIT and (event := sub.get_nowait()) is not None:
                batch.append(event)
            if sub.dropped != reported_overflow:
                lost, reported_overflow = sub.dropped - reported_overflow, sub.dropped
                self._report_drop(lost, "queue_overflow")
            await self._store(outbox, self._route(batch))

    def _route(self, events: list[Event]) -> list[tuple[str, Event]]:
        """Update the snapshots; return the events to store, each with its id."""
        keep: list[tuple[str, Event]] = []
        for event in events:
            if isinstance(event, MachineStatus):
                self._status = event
                self._state_changed.set()
                continue
            if isinstance(event, AccessState):
                self._access = access_view(event)
                self._state_changed.set()
            if isinstance(event, JobFinished):
                self._progress = None  # the state topic must not show a finished job
                self._state_changed.set()
            if isinstance(event, JobProgress):
                self._progress = event
                self._state_changed.set()
                now = time.monotonic()
                if now - self._last_progress_event < PROGRESS_INTERVAL:
                    continue
                self._last_progress_event = now
            if event.topic is None or isinstance(event, AccessListReceived):
                continue  # internal, or inbound from the broker (the access list is private)
            keep.append((self._ids.next(), event))
        return keep

    async def _store(self, outbox: Outbox, pending: list[tuple[str, Event]]) -> None:
        if not pending:
            return
        dropped = await asyncio.to_thread(self._encode_and_append, outbox, pending)
        self.stats.recorded += len(pending)
        self._appended.set()
        if dropped:
            self._report_drop(dropped, "full")

    def _encode_and_append(self, outbox: Outbox, pending: list[tuple[str, Event]]) -> int:
        rows = [
            (
                self.topics.event(str(event.topic)),
                payloads.encode(
                    payloads.event_payload(event, event_id=event_id, machine_id=self._machine_id)
                ),
            )
            for event_id, event in pending
        ]
        return outbox.append(rows)

    def _report_drop(self, count: int, reason: str) -> None:
        self.stats.dropped += count
        log.warning("telemetry: %d events dropped from the outbox (%s)", count, reason)
        self._bus.publish(OutboxDropped(count=count, reason=reason))

    async def _expire(self, outbox: Outbox) -> None:
        while True:
            expired = await asyncio.to_thread(outbox.expire)
            if expired:
                self._report_drop(expired, "expired")
            await asyncio.sleep(EXPIRE_INTERVAL)

    async def _delete_acked(self, outbox: Outbox) -> None:
        while True:
            await self._acked_added.wait()
            await asyncio.sleep(DELETE_DELAY)
            self._acked_added.clear()
            await self._flush_acked(outbox)

    async def _flush_acked(self, outbox: Outbox) -> None:
        ids = list(self._acked)
        if ids:
            await asyncio.to_thread(outbox.delete, ids)
            self._acked.difference_update(ids)

    # ------------------------------------------------------------------ connection

    async def _stay_connected(self, outbox: Outbox, tls: ssl.SSLContext | None) -> None:
        where = f"{self._config.host}:{self._config.port}"
        warned_at = -1  # warn once per outage, then retry quietly
        while True:
            try:
                await self._connect_once(outbox, tls)
                error = "the connection ended"
            except aiomqtt.MqttError as err:
                error = _describe(err)
            self.connected.clear()
            delay = self._backoff.next_delay()
            level = logging.WARNING if warned_at != self.stats.connections else logging.DEBUG
            warned_at = self.stats.connections
            log.log(
                level,
                "telemetry: MQTT broker %s unavailable (%s); retrying in %.1f s, "
                "events wait in the outbox",
                where,
                error,
                delay,
            )
            self._bus.publish(BrokerDisconnected(error=error, retry_in=delay))
            await asyncio.sleep(delay)

    def _client(self, tls: ssl.SSLContext | None) -> aiomqtt.Client:
        config = self._config
        client = aiomqtt.Client(
            config.host,
            config.port,
            username=config.username,
            password=config.password.get_secret_value() if config.password else None,
            identifier=self._client_id,
            will=aiomqtt.Will(self.topics.status, b"offline", qos=1, retain=True),
            keepalive=config.keepalive,
            tls_context=tls,
            clean_session=True,
            max_inflight_messages=WINDOW,
            timeout=MQTT_TIMEOUT,
        )
        # aiomqtt warns above this many pending calls; a full window is normal here.
        client.pending_calls_threshold = WINDOW + MAX_COMMANDS + 16
        return client

    async def _connect_once(self, outbox: Outbox, tls: ssl.SSLContext | None) -> None:
        async with self._client(tls) as client:
            try:
                await client.publish(self.topics.status, b"online", qos=1, retain=True)
                await client.subscribe(self.topics.commands, qos=1)
                if self._config.access_list_topic:
                    await client.subscribe(self._config.access_list_topic, qos=1)
                if self._config.home_assistant:
                    await self._publish_discovery(client)
                self._backoff.reset()
                self.stats.connections += 1
                self.connected.set()
                log.info(
                    "telemetry: connected to %s:%d as %s under %s",
                    self._config.host,
                    self._config.port,
                    self._client_id,
                    self.topics.prefix,
                )
                self._bus.publish(BrokerConnected(host=self._config.host, port=self._config.port))
                self._state_changed.set()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._read_messages(client, tg))
                    tg.create_task(self._forward(client, outbox, tg))
                    tg.create_task(self._publish_state(client))
                    if self._config.telemetry_interval > 0:
                        tg.create_task(self._publish_telemetry(client))
            except* aiomqtt.MqttError as group:
                raise group.exceptions[0] from None
            finally:
                self.connected.clear()
                client.timeout = 2.0  # bounds the goodbye below and the DISCONNECT on exit
                with contextlib.suppress(aiomqtt.MqttError):
                    await client.publish(self.topics.status, b"offline", qos=1, retain=True)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        for topic, payload in discovery_messages(
            discovery_prefix=self._config.discovery_prefix,
            topics=self.topics,
            machine_id=self._machine_id,
            machine_name=self._machine_name,
            version=self._version,
        ):
            await client.publish(topic, payloads.encode(payload), qos=1, retain=True)

    # ------------------------------------------------------------------ outbound

    async def _forward(self, client: aiomqtt.Client, outbox: Outbox, tg: asyncio.TaskGroup) -> None:
        """Publish the outbox oldest first, then new rows as they are stored."""
        window = asyncio.Semaphore(WINDOW)
        cursor = 0
        while True:
            self._appended.clear()
            rows = await asyncio.to_thread(outbox.read_after, cursor, PAGE)
            if not rows:
                await self._appended.wait()
                continue
            for row in rows:
                cursor = row.id
                if row.id in self._acked:
                    continue
                await window.acquire()
                # Tasks start in creation order, so paho queues the rows in order.
                tg.create_task(self._publish_row(client, row, window))

    async def _publish_row(
        self, client: aiomqtt.Client, row: OutboxRow, window: asyncio.Semaphore
    ) -> None:
        try:
            await client.publish(row.topic, row.payload, qos=1, timeout=math.inf)
        finally:
            window.release()
        self._acked.add(row.id)
        self._acked_added.set()
        self.stats.delivered += 1

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        published: dict[str, Any] | None = None
        while True:
            await self._state_changed.wait()
            self._state_changed.clear()
            document = payloads.state_payload(
                machine_id=self._machine_id,
                machine_name=self._machine_name,
                status=self._status,
                progress=self._progress,
                access=self._access,
            )
            if document != published:
                stamped = {**document, "ts": payloads.iso_utc(time.time())}
                await client.publish(
                    self.topics.state, payloads.encode(stamped), qos=1, retain=True
                )
                published = document
            await asyncio.sleep(STATE_INTERVAL)

    async def _publish_telemetry(self, client: aiomqtt.Client) -> None:
        while True:
            sample = await asyncio.to_thread(
                system.read_system,
                self._state_dir,
                process_uptime=time.monotonic() - self._started,
            )
            document = payloads.telemetry_payload(
                machine_id=self._machine_id,
                ts=time.time(),
                status=self._status,
                feed=self._feed(),
                system=sample,
            )
            await client.publish(self.topics.telemetry, payloads.encode(document), qos=0)
            await asyncio.sleep(self._config.telemetry_interval)

    def _feed(self) -> float | None:
        """The feed rate, when the machine's snapshot carries one (GRBL ``FS:``)."""
        feed = getattr(self._status, "feed", None)
        return float(feed) if isinstance(feed, int | float) else None

    # ------------------------------------------------------------------ inbound

    async def _read_messages(self, client: aiomqtt.Client, tg: asyncio.TaskGroup) -> None:
        slots = asyncio.Semaphore(MAX_COMMANDS)
        access_topic = self._config.access_list_topic
        async for message in client.messages:
            body = _payload_bytes(message.payload)
            if access_topic is not None and message.topic.matches(access_topic):
                self._bus.publish(AccessListReceived(payload=body, mqtt_topic=message.topic.value))
                continue
            name = self.topics.command_name(message.topic.value)
            if name is None:
                continue
            if message.retain:
                log.warning(
                    "telemetry: ignoring a retained command on %s; commands must not be "
                    "retained (clear it with: mosquitto_pub -r -n -t '%s')",
                    message.topic.value,
                    message.topic.value,
                )
                continue
            await slots.acquire()
            tg.create_task(self._answer(client, name, body, slots))

    async def _answer(
        self, client: aiomqtt.Client, name: str, body: bytes, slots: asyncio.Semaphore
    ) -> None:
        try:
            reply = await self._reply_to(name, body)
            await client.publish(self.topics.command_result(name), payloads.encode(reply), qos=1)
        finally:
            slots.release()

    async def _reply_to(self, name: str, body: bytes) -> dict[str, Any]:
        parsed = payloads.parse_command(name, body)
        if isinstance(parsed, payloads.CommandRejected):
            log.info("telemetry: rejected command %r: %s", name, parsed.message)
            return payloads.command_result(parsed.request_id, error=(parsed.code, parsed.message))
        key = (name, parsed.request_id)
        if (cached := self._recent.get(key)) is not None:
            return cached  # a QoS 1 redelivery: answer again, do not run twice
        self.stats.commands += 1
        try:
            result = await self._commands.call(
                name, parsed.args, origin="mqtt", actor=parsed.actor or "mqtt"
            )
            reply = payloads.command_result(parsed.request_id, result=result)
        except CommandError as err:
            reply = payloads.command_result(parsed.request_id, error=(err.code, err.message))
        except Exception as err:
            log.exception("telemetry: command %r failed", name)
            reply = payloads.command_result(
                parsed.request_id, error=("failed", f"command {name!r} failed: {err}")
            )
        self._recent[key] = reply
        while len(self._recent) > RECENT_COMMANDS:
            self._recent.popitem(last=False)
        return reply
