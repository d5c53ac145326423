"""The MQTT publisher: keeps a broker (and Home Assistant behind it) in step with every UPS.

Off unless upsd.conf has ``MQTT_URL`` (or ``nutbridge serve --mqtt``). One connection per
bridge, kept up with backoff; on each connect it says ``online`` on the bridge's status topic
(its last will says ``offline``), announces every UPS (retained device discovery, see
:mod:`.discovery`), then sends each UPS's availability and state. Afterwards it follows
:meth:`Device.subscribe <nutbridge.state.Device.subscribe>`:

* a change only marks the UPS dirty (the driver never waits for the broker); one writer task
  publishes the *current* state of every dirty UPS that is due, then pauses :data:`COALESCE`
  seconds, so a UPS gets at most one state message per 100 ms however fast it changes, and what
  waits for a slow broker is one flag per UPS, never a queue of messages;
* a change is due at once when it touches what people act on (``ups.status``, ``ups.alarm``,
  outlet states, writable settings, availability, the driver); a change of measured values
  only (voltages, load, charge...) waits until ``MQTT_INTERVAL`` (10 s) has passed since the
  UPS's last state message. A real UPS changes some reading at every poll: at 1,000 UPSes,
  a message per poll is what made Home Assistant's MQTT client fall behind and the broker
  drop messages (docs/benchmarks.md, "1,000 UPSes");
* the state message carries the UPS's availability, and is sent again, unchanged, every
  :data:`REFRESH` seconds, as is the bridge's ``online``: a message the broker dropped
  (Mosquitto drops QoS 1 messages past a client's queue limit) is mended by the next one;
* discovery is rebuilt only when the UPS's shape changes (variables or commands appear, go,
  change type), and re-sent when HA says ``online`` on ``<prefix>/status`` (HA restarted);
* availability per UPS is upsd's own rule (stale data, driver gone), checked on every change
  and once a second (data turn stale by age without any change).

Commands: only with ``MQTT_ACCOUNT`` naming an upsd.users account. Then (and only then) the
command topics are subscribed and announced, and each request runs through a
:class:`~nutbridge.server.core.Core` session logged in as that account, exactly as a network
client's: upsd.users rights, hosts.allow, TRACKING and the event history apply. The outcome is
published (not retained) on ``<base>/<id>/<ups>/result``. The broker's password and the
account's password are never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import ssl
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from ..config.upsd_conf import MqttSettings
from ..server.frontend import Frontend
from ..state import Device, DriverState
from . import discovery as d

log = logging.getLogger(__name__)

COALESCE = 0.1  # seconds between two state messages of one UPS (at most)
REFRESH = 120.0  # an unchanged state is sent again this often (mends a dropped message)
#: changes that are due at once, whatever MQTT_INTERVAL says
URGENT = frozenset({"ups.status", "ups.alarm", "ups.test.result", "ups.beeper.status"})
PUBLISH_TIMEOUT = 10.0  # a broker that does not acknowledge in this time is given up on
TICK = 1.0  # availability by age is checked this often
BACKOFF_MIN, BACKOFF_MAX = 1.0, 30.0
MAX_REQUESTS = 16  # command requests in flight; more are refused (a flood must not pile up)
MAX_INCOMING = 256  # messages the client buffers for us (commands, HA's birth)
MAX_OUTGOING = 10_000  # paho's own outgoing queue: a bound, never reached in normal work
TRACKING_WAIT = 5.0  # how long a command's result is waited for (TRACKING) before "PENDING"
KEEPALIVE = 30


@dataclass(eq=False)
class _Ups:
    """What was last sent for one UPS (so only differences go out) and what is due."""

    device: Device
    unsubscribe: Any = None
    dirty: bool = True
    due: float = 0.0  # monotonic time at which the pending change goes out
    sent: float = 0.0  # monotonic time of the last state message
    announce: bool = True  # (re)send discovery even if unchanged
    shape: tuple[object, ...] | None = None
    config: dict[str, Any] | None = None
    discovery: bytes | None = None
    components: list[tuple[str, str]] = field(default_factory=list)
    available: bool | None = None
    state: bytes | None = None
    priority: list[str] = field(default_factory=list)  # the variables the entities read


class MqttPublisher:
    """The MQTT front end (:class:`~nutbridge.server.frontend.FrontendService`)."""

    def __init__(self, frontend: Frontend, settings: MqttSettings) -> None:
        self.frontend = frontend
        self.settings = settings
        self._ups: dict[str, _Ups] = {}  # by lowercase UPS name
        self._removed: dict[str, str] = {}  # lowercase name -> name as announced
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._unwatch: Any = None
        self._requests: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._identity: d.BridgeIdentity | None = None
        self.connected = asyncio.Event()  # for tests and the log: set while connected

    # ---- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting in the background: a broker that is down delays nothing."""
        s = self.settings
        self._identity = d.BridgeIdentity(self.frontend.server_id(), self.frontend.version,
                                          _hostname(), s.discovery_prefix, s.base_topic)
        if s.account is not None and s.account not in self.frontend.core.users.users:
            log.warning("MQTT_ACCOUNT %s is not an upsd.users account: MQTT commands will be refused",
                        s.account)
        self._sync_devices()
        self._unwatch = self.frontend.watch_devices(self._devices_changed)
        self._task = asyncio.create_task(self._run(), name="mqtt publisher")

    async def stop(self) -> None:
        """Say ``offline`` (bridge and each UPS, retained), then disconnect cleanly."""
        self._stopping = True
        if self._unwatch is not None:
            self._unwatch()
        for u in self._ups.values():
            if u.unsubscribe is not None:
                u.unsubscribe()
        for t in list(self._requests):
            t.cancel()
        client, b = self._client, self._identity
        if client is not None and b is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(
                    *(client.publish(d.availability_topic(b, u.device.name), d.OFFLINE, qos=1, retain=True)
                      for u in self._ups.values() if u.available),
                    client.publish(d.bridge_status_topic(b), d.OFFLINE, qos=1, retain=True)), 3.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None

    # ---- devices --------------------------------------------------------------------------------
    @property
    def identity(self) -> d.BridgeIdentity:
        assert self._identity is not None, "start() first"
        return self._identity

    def _sync_devices(self) -> None:
        current = {dev.name.lower(): dev for dev in self.frontend.devices}
        for key, u in list(self._ups.items()):
            if current.get(key) is not u.device:
                if u.unsubscribe is not None:
                    u.unsubscribe()
                del self._ups[key]
                if key not in current:
                    self._removed[key] = u.device.name
        for key, dev in current.items():
            if key not in self._ups:
                self._removed.pop(key, None)  # changed, not gone: re-announced, not cleared
                u = _Ups(dev)
                u.unsubscribe = dev.subscribe(self._changed)
                self._ups[key] = u
        self._wake.set()

    def _devices_changed(self) -> None:
        if not self._stopping:
            self._sync_devices()

    def _changed(self, dev: Device, names: frozenset[str]) -> None:
        u = self._ups.get(dev.name.lower())
        if u is not None and u.device is dev:
            if _urgent(dev, names):
                self._due(u, 0.0)
            else:
                self._due(u, u.sent + self.settings.interval)

    def _due(self, u: _Ups, when: float) -> None:
        """Mark ``u`` to be sent at ``when`` (or earlier, if it already was)."""
        u.due = min(u.due, when) if u.dirty else when
        u.dirty = True
        self._wake.set()

    def _rights(self) -> d.Rights:
        account = self.settings.account
        user = self.frontend.core.users.users.get(account) if account else None
        if user is None:
            return d.READ_ONLY
        return d.Rights(frozenset(user.instcmds), "set" in user.actions)

    # ---- connection -----------------------------------------------------------------------------
    def _client_for(self) -> aiomqtt.Client:
        s, b = self.settings, self.identity
        tls = ssl.create_default_context(cafile=s.cafile) if s.tls else None
        client = aiomqtt.Client(
            s.host, s.port, username=s.username, password=s.password,
            identifier=f"nutbridge-{b.server_id[:12]}-{random.getrandbits(32):08x}",
            will=aiomqtt.Will(d.bridge_status_topic(b), d.OFFLINE, qos=1, retain=True),
            keepalive=KEEPALIVE, timeout=PUBLISH_TIMEOUT, tls_context=tls,
            max_queued_incoming_messages=MAX_INCOMING, max_queued_outgoing_messages=MAX_OUTGOING,
            logger=logging.getLogger(f"{__name__}.client"),
        )
        # aiomqtt warns past 10 publishes awaiting their PUBACK; a reload or a new connection
        # has three per UPS in flight, bounded by the UPS count (and MAX_OUTGOING): not news
        client.pending_calls_threshold = MAX_OUTGOING
        return client

    async def _run(self) -> None:
        s = self.settings
        where = f"{'mqtts' if s.tls else 'mqtt'}://{s.host}:{s.port}"
        backoff, failing = BACKOFF_MIN, False
        while not self._stopping:
            try:
                client = self._client_for()
                async with client:
                    self._client = client
                    log.info("MQTT: connected to %s as %s", where, s.username or "anonymous")
                    failing, backoff = False, BACKOFF_MIN
                    self.connected.set()
                    await self._session(client)
            except Exception as exc:  # the publisher must outlive any of it
                expected, reason = _reason(exc)
                if not expected:
                    log.error("MQTT: unexpected error; reconnecting", exc_info=exc)
                else:  # once per outage at WARNING, then quietly until it works again
                    log.log(logging.DEBUG if failing else logging.WARNING,
                            "MQTT: %s: %s; retrying with backoff", where, reason)
                failing = True
            finally:
                self.connected.clear()
                self._client = None
            if self._stopping:
                break
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _session(self, client: aiomqtt.Client) -> None:
        b = self.identity
        for u in self._ups.values():  # a new connection (maybe a new broker) gets everything
            u.announce = True
            u.available = None
            u.state = None
            self._due(u, 0.0)
        await client.publish(d.bridge_status_topic(b), d.ONLINE, qos=1, retain=True)
        await client.publish(d.bridge_discovery_topic(b), d.encode(d.bridge_config(b)), qos=1, retain=True)
        topics = [d.birth_topic(b), d.bridge_status_topic(b)]
        if self.settings.account:
            topics += d.request_subscriptions(b)
        for topic in topics:
            await client.subscribe(topic, qos=1)
        self._wake.set()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._writer(client))
            tg.create_task(self._ticker(client))
            tg.create_task(self._reader(client))

    async def _ticker(self, client: aiomqtt.Client) -> None:
        """Data turn stale by age without any change, and a reload of upsd.users changes what
        the account may do: look once a second. Every :data:`REFRESH` seconds the bridge's
        ``online`` is said again: HA reads every UPS's availability through it too, and one
        copy dropped by a busy broker would leave all of them unavailable."""
        rights = self._rights()
        said = time.monotonic()
        while True:
            await asyncio.sleep(TICK)
            maxage = self.frontend.core.conf.maxage
            now = time.monotonic()
            if now - said >= REFRESH:
                said = now
                await asyncio.wait_for(client.publish(d.bridge_status_topic(self.identity), d.ONLINE,
                                                      qos=1, retain=True), PUBLISH_TIMEOUT)
            new_rights = self._rights()
            for u in self._ups.values():
                if new_rights != rights or (
                        u.available is not None and d.is_available(u.device, maxage, now) != u.available):
                    self._due(u, 0.0)
                elif u.state is not None and now - u.sent >= REFRESH:
                    u.state = None  # sent again though unchanged
                    self._due(u, 0.0)
            rights = new_rights

    async def _reader(self, client: aiomqtt.Client) -> None:
        b = self.identity
        birth, status = d.birth_topic(b), d.bridge_status_topic(b)
        async for msg in client.messages:
            topic = msg.topic.value
            payload = msg.payload if isinstance(msg.payload, bytes) else str(msg.payload or "").encode()
            if topic == birth:
                if payload.strip() == b"online" and not msg.retain:
                    asyncio.get_running_loop().call_later(random.uniform(0.1, 1.0), self._announce_all)
            elif topic == status:
                if payload != d.ONLINE.encode() and not self._stopping:
                    # an old connection's last will, delivered after we came back: correct it
                    await client.publish(status, d.ONLINE, qos=1, retain=True)
            else:
                self._request(client, topic, payload)

    def _announce_all(self) -> None:
        log.info("MQTT: Home Assistant restarted; announcing %d UPS again", len(self._ups))
        for u in self._ups.values():
            u.announce = True
            u.state = None
            u.available = None
            self._due(u, 0.0)

    # ---- publishing -------------------------------------------------------------------------------
    async def _writer(self, client: aiomqtt.Client) -> None:
        b = self.identity
        while True:
            self._wake.clear()  # set again by any change from here on (one thread: no race)
            removed, self._removed = self._removed, {}
            jobs: list[Awaitable[None]] = [self._clear(client, name) for name in removed.values()]
            rights = self._rights()
            maxage = self.frontend.core.conf.maxage
            now, later = time.monotonic(), float("inf")
            for u in self._ups.values():
                if u.dirty and u.due <= now:
                    u.dirty = False
                    jobs.append(self._flush(client, b, u, rights, maxage))
                elif u.dirty:
                    later = min(later, u.due)
            if jobs:
                await asyncio.wait_for(asyncio.gather(*jobs), PUBLISH_TIMEOUT)
                await asyncio.sleep(COALESCE)
            elif later == float("inf"):
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(later - now):
                        await self._wake.wait()

    async def _flush(self, client: aiomqtt.Client, b: d.BridgeIdentity, u: _Ups, rights: d.Rights,
                     maxage: float) -> None:
        if self._stopping:  # stop() says offline now; an "online" racing it must not win
            return
        dev = u.device
        shape = d.shape(dev, rights)
        if u.announce or shape != u.shape or u.config is None:
            config = d.device_config(b, dev, rights)
            # entities go only when the data are good: a driver restarting (cleared, then
            # dumping again) must not make HA drop and re-create them
            keep = [] if dev.driver_state is DriverState.OK else [
                (cid, p) for cid, p in u.components if cid not in config["cmps"]]
            if keep:
                cmps = dict(config["cmps"])
                prev = {cid: c for cid, c in (u.config or {}).get("cmps", {}).items()}
                for cid, _ in keep:
                    if cid in prev:
                        cmps[cid] = prev[cid]
                config = {**config, "cmps": cmps}
            payload = d.encode(config)
            if u.announce or payload != u.discovery:
                topic = d.discovery_topic(b, dev.name)
                goodbye = d.encode(d.with_removals(config, u.components))
                if goodbye != payload:  # HA's way to drop entities: {"p": ...} once, then without
                    await client.publish(topic, goodbye, qos=1, retain=True)
                await client.publish(topic, payload, qos=1, retain=True)
            u.shape, u.config, u.discovery, u.announce = shape, config, payload, False
            u.components = d.components_of(config)
            u.priority = d.referenced(config)
            u.state = None  # new entities read the state: send it after them
        available = d.is_available(dev, maxage)
        if available != u.available:
            await client.publish(d.availability_topic(b, dev.name), d.ONLINE if available else d.OFFLINE,
                                 qos=1, retain=True)
            u.available = available
        state = d.encode(d.state_payload(dev, u.priority, available))
        if state != u.state:
            u.sent = time.monotonic()
            await client.publish(d.state_topic(b, dev.name), state, qos=1, retain=True)
            u.state = state

    async def _clear(self, client: aiomqtt.Client, name: str) -> None:
        """A UPS removed by a reload: its retained messages go, and HA removes the device."""
        b = self.identity
        log.info("MQTT: UPS [%s] removed; clearing its discovery", name)
        for topic in (d.discovery_topic(b, name), d.state_topic(b, name), d.availability_topic(b, name)):
            await client.publish(topic, b"", qos=1, retain=True)

    # ---- requests (command topics) ----------------------------------------------------------------
    def _request(self, client: aiomqtt.Client, topic: str, payload: bytes) -> None:
        if not self.settings.account:
            return  # not subscribed; a broker that delivers anyway is ignored
        req = d.parse_request(self.identity, topic, payload)
        if req is None:
            log.debug("MQTT: ignored message on %s", topic)
            return
        if len(self._requests) >= MAX_REQUESTS:
            log.warning("MQTT: too many requests in flight; dropped %s", req.describe())
            return
        task = asyncio.create_task(self._execute(client, req))
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def _execute(self, client: aiomqtt.Client, req: d.Request) -> None:
        """One request through a Core session logged in as MQTT_ACCOUNT: upsd's checks, upsd's
        records. The account's password comes from upsd.users as loaded now (SIGHUP included)."""
        core = self.frontend.core
        account = self.settings.account or ""
        user = core.users.users.get(account)
        s = core.connect("mqtt")
        try:
            core.handle(s, ("USERNAME", account))
            core.handle(s, ("PASSWORD", (user.password if user else None) or ""))
            core.handle(s, ("SET", "TRACKING", "ON"))
            answer = core.handle(s, req.words).strip()
            result: str | None = None
            if answer.startswith("OK TRACKING "):
                result = await self._tracking(s, answer.split()[-1])
            elif answer.startswith("ERR "):
                log.warning("MQTT: %s as %s refused: %s", req.describe(), account, answer)
            record = {"request": req.describe(), "answer": answer, "result": result, "user": account}
            dev = core.find(req.ups)
            name = dev.name if dev is not None else req.ups
            await client.publish(d.result_topic(self.identity, name), json.dumps(record), qos=1)
        except aiomqtt.MqttError:
            pass  # the connection went: the request was carried out (or refused) regardless
        except Exception:  # one bad request must not end the publisher
            log.exception("MQTT: request %s failed", req.describe())
        finally:
            core.disconnect(s)

    async def _tracking(self, s: Any, tid: str) -> str:
        core = self.frontend.core
        deadline = time.monotonic() + TRACKING_WAIT
        while True:
            answer = core.handle(s, ("GET", "TRACKING", tid)).strip()
            if answer != "PENDING" or time.monotonic() > deadline:
                return answer
            await asyncio.sleep(0.05)


def _urgent(dev: Device, names: frozenset[str]) -> bool:
    """Whether a change must go out at once: availability or driver (``names`` empty), status,
    alarms, outlet states, writable settings (someone just SET one and waits to see it)."""
    if not names or not names.isdisjoint(URGENT):
        return True
    for name in names:
        if name.startswith("outlet.") and name.endswith(".status"):
            return True
        var = dev.get(name)
        if var is not None and var.rw:
            return True
    return False


def _reason(exc: BaseException) -> tuple[bool, str]:
    """(is it the broker or the network?, why) for an error out of a session (task groups
    wrap them)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    expected = isinstance(exc, (aiomqtt.MqttError, OSError, TimeoutError))
    return expected, str(exc) or type(exc).__name__


def _hostname() -> str:
    try:
        return socket.gethostname().split(".")[0]
    except OSError:
        return ""
