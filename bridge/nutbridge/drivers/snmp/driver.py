"""``driver = snmp-ups``: SNMP UPSes and PDUs, configured like NUT's snmp-ups.

ups.conf options (NUT's names): ``port`` = host[:port] (161), ``community`` (public),
``snmp_version`` v1 (default) | v2c | v3 with ``secLevel``, ``secName``, ``authPassword``,
``privPassword``, ``authProtocol``, ``privProtocol``; ``mibs`` auto (default) or a MIB name;
``pollfreq`` (30 s between polls), ``semistaticfreq`` (semi-static rows every N polls, 10),
``snmp_timeout`` (1 s) and ``snmp_retries`` (5).

Life cycle: :meth:`connect` opens a session and picks the MIB once (sysObjectID, then probes:
:func:`.mibs.select_mib`); the first :meth:`update` of each connection is NUT's init walk
(every row is read once; rows that do not answer are dropped, outlet templates are expanded
from ``outlet.count``, commands whose OID answers are offered); later polls read the dynamic rows
in batched GETs and the outlet columns with GETBULK. An agent that stops answering raises
DeviceError: the base loop marks the data stale and reconnects with backoff.

This module does the I/O only (GETs, walks, SETs, publishing); which OIDs to read and what the
answers mean is :class:`~.mapper.Mapper`'s.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping

from ...compat import driver_core_2_8_5
from ...state import Device
from ..base import ConfigError, DeviceError, Driver, Status, option_number
from .mapper import Mapper, command_value, write_value
from .mibs import mib_by_name, registry, select_mib
from .session import Session, SnmpValue, V3Params, v3_from_options
from .table import Flag, Mib

log = logging.getLogger(__name__)

DEFAULT_POLLFREQ = 30.0
#: NUT 2.8.5's snmp-ups revision (driver.version.internal under that release profile)
VERSION_2_8_5 = "1.40"
DEFAULT_SEMISTATICFREQ = 10

_V3_OPTIONS = ("secLevel", "secName", "authPassword", "privPassword", "authProtocol", "privProtocol")


def parse_port(port: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6addr]:port`` or a bare IPv6 address -> (host, port)."""
    port = port.strip()
    if not port:
        raise ConfigError("port must name the SNMP agent (host[:port])")
    if port.startswith("["):
        host, _, rest = port[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else 161
    if port.count(":") == 1:
        host, _, num = port.partition(":")
        if not num.isdigit():
            raise ConfigError(f"port {port!r}: the part after ':' must be a UDP port number")
        return host, int(num)
    return port, 161


class SnmpUps(Driver):
    names = ("snmp-ups",)
    options = frozenset({
        "port", "community", "snmp_version", "mibs", "pollfreq", "semistaticfreq", "snmp_timeout",
        "snmp_retries", "notransferoids", "symmetrathreephase", "ondelay", "offdelay", "synchronous",
        *(o.lower() for o in _V3_OPTIONS), *_V3_OPTIONS,
    })
    version = "1.21"  # the NUT snmp-ups revision (2.8.0) whose behaviour this follows

    def __init__(self, device: Device, config: Mapping[str, str]) -> None:
        super().__init__(device, config)
        try:
            import pysnmp  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise ConfigError(f"snmp-ups needs pysnmp: pip install 'nutbridge-ups[snmp]' ({exc})") from None
        self.host, self.port = parse_port(self.config.get("port", ""))
        self.snmp_version = self.config.get("snmp_version", "v1") or "v1"
        if self.snmp_version not in ("v1", "v2c", "v3"):
            raise ConfigError(f"snmp_version must be v1, v2c or v3, not {self.snmp_version!r}")
        self.community = self.config.get("community", "public") or "public"
        self.v3: V3Params | None = v3_from_options(self.config) if self.snmp_version == "v3" else None
        self.mibs = self.config.get("mibs", "auto") or "auto"
        if self.mibs != "auto" and not mib_by_name(self.mibs):
            known = sorted({m.name for m in registry()})
            raise ConfigError(f"mibs '{self.mibs}' is unknown (known: auto, {', '.join(known)})")
        self.pollfreq = option_number(self.config, "pollfreq", DEFAULT_POLLFREQ, minimum=1)
        self.semistaticfreq = int(option_number(self.config, "semistaticfreq", DEFAULT_SEMISTATICFREQ,
                                                minimum=1))
        self.timeout = option_number(self.config, "snmp_timeout", 1.0, minimum=0.1)
        self.retries = int(option_number(self.config, "snmp_retries", 5))
        # NUT's snmp-ups just tries again at the next pollfreq; a longer backoff would keep the data
        # stale for up to base's 10 s after the agent is back (UDP: nothing tells us it is)
        self.retry_max = max(self.retry_min, self.pollfreq)
        self._last_poll = 0.0
        self._spread = True
        self.session: Session | None = None
        self.mib: Mib | None = None
        self.mapper: Mapper | None = None
        self._init_done = False
        self._polls = 0
        self._lock = asyncio.Lock()
        #: seconds the last poll took (benchmarks read it)
        self.last_poll_seconds = 0.0

    # ---- life cycle -------------------------------------------------------------------------
    async def connect(self) -> None:
        self._spread = True
        self.session = await Session.create(self.host, self.port, self.snmp_version, self.community, self.v3,
                                            self.timeout, self.retries)
        if self.mib is None:
            self.mib = await self._detect(self.session)
            log.info("UPS [%s]: detected %s on %s:%s (mib: %s %s)", self.device.name,
                     self.mib.device_type, self.host, self.port, self.mib.name, self.mib.version)
        self.mapper = Mapper(self.mib, self.config)
        self._init_done = False

    async def _detect(self, s: Session) -> Mib:
        async def probe(oid: str) -> bool:
            return (await s.get([oid])).get(oid) is not None

        sysoid = await s.sysobjectid()
        mib = await select_mib(sysoid, probe, self.mibs)
        if mib is None:
            # a named MIB is used even if its check OID is missing (NUT would exit; the table
            # still tells which rows answer)
            named = mib_by_name(self.mibs) if self.mibs != "auto" else []
            if named:
                return named[0]
            raise DeviceError(f"no supported SNMP device at {self.host}:{self.port} (sysObjectID {sysoid})")
        return mib

    async def close(self) -> None:
        if self.session is not None:
            self.session.close()
        self.session = None

    def _s(self) -> Session:
        if self.session is None:
            raise DeviceError("SNMP session closed")
        return self.session

    def _m(self) -> Mapper:
        if self.mapper is None:
            raise DeviceError("SNMP session closed")
        return self.mapper

    # ---- polling ----------------------------------------------------------------------------
    async def wait(self, period: float | None = None) -> None:
        """Sleep until the next poll, ``period`` (default ``pollfreq``) after the last one started;
        the base's wait says "still fresh" every ``pollinterval`` meanwhile and :meth:`poke` (after
        a command or SET) polls at once."""
        if period is None:
            period = self.pollfreq
            if self._spread:
                # drivers started (or reconnected) together would poll in one burst forever:
                # the first period after connecting is random, which spreads them over the cycle
                self._spread = False
                period = random.uniform(min(self.pollinterval, period), period)
        await super().wait(self._last_poll + period - time.monotonic())

    async def _templates(self, m: Mapper, *, init: bool = True,
                         semi: bool = True) -> dict[str, SnmpValue | None]:
        """Outlet/group template rows: GETBULK the table columns, GET what the walk missed."""
        wanted = m.template_oids(init=init, semi=semi)
        if not wanted:
            return {}
        s = self._s()
        got: dict[str, SnmpValue | None] = {}
        columns = m.template_columns(init=init, semi=semi)
        if columns:
            rows = max(n for _c, n in columns) + max(m.outlet_base, m.group_base)
            walked = await s.walk_columns([c for c, _n in columns], rows)
            for items in walked.values():
                got.update(items)
        missing = [o for o in wanted if o.lstrip(".") not in got]
        out: dict[str, SnmpValue | None] = {o: got.get(o.lstrip(".")) for o in wanted}
        if missing:
            out.update(await s.get(missing))
        return out

    async def update(self) -> None:
        start = self._last_poll = time.monotonic()
        async with self._lock:
            if not self._init_done:
                await self._init_walk()
            else:
                await self._poll()
        self.last_poll_seconds = time.monotonic() - start

    async def _init_walk(self) -> None:
        s, m, mib = self._s(), self._m(), self.mib
        assert mib is not None
        # the system group fills device.* that the MIB's own table does not define
        answers = await s.get(m.oids(init=True) + [oid for _var, oid in m.system_rows()])
        values = m.apply(answers, init=True)
        m.learn_counts(values)
        if m.template_oids():
            answers.update(await self._templates(m))
            values = m.apply(answers, init=True)
        values.update(m.system_values(answers))
        # commands whose OID answers a GET (NUT's su_addcmd)
        probe = m.command_probes(answers)
        if probe:
            answers.update(await s.get(probe))
        offered = m.offered_commands(answers)
        dev = self.device
        with dev.batch():
            self.publish_driver_info()
            dev.delete("driver.parameter.secname")  # sensitive in NUT too (VAR_SENSITIVE)
            if driver_core_2_8_5():
                dev.set("driver.version.internal", VERSION_2_8_5)
            dev.set("driver.version.data", mib.version_data)
            dev.set("driver.parameter.pollinterval", self.config.get("pollinterval", "2") or "2")
            dev.set("driver.parameter.synchronous", self.config.get("synchronous", "auto"))
            dev.set("device.type", mib.device_type)
            self._publish(values)
            for b in m.rw_rows():
                current = dev.get(b.var)
                if current is None:
                    continue
                string = bool(b.row.flags & Flag.STRING) and b.row.lookup is None
                dev.set(b.var, current.value, rw=True, string=string, aux=b.row.length if string else None)
                if b.row.lookup is not None:
                    dev.set_enums(b.var, [t for t in b.row.lookup.values() if t])
                elif b.row.rw_range is not None:
                    dev.add_range(b.var, *b.row.rw_range)
            for cmd in offered:
                dev.add_cmd(cmd)
            self.publish_core_extras()
        self._init_done = True
        self._polls = 0

    async def _poll(self) -> None:
        s, m = self._s(), self._m()
        self._polls += 1
        semi = self._polls % self.semistaticfreq == 0
        answers = await s.get(m.oids(semi=semi))
        answers.update(await self._templates(m, init=False, semi=semi))
        if answers and all(v is None for v in answers.values()):
            # an agent that answers nothing we know has lost its device (or was replaced)
            raise DeviceError(f"SNMP {self.host}:{self.port}: no MIB object answered")
        values = m.apply(answers)
        with self.device.batch():
            self._publish(values)

    def _publish(self, values: Mapping[str, str]) -> None:
        dev = self.device
        for var, value in [*values.items(), *self._m().mirrored(values).items()]:
            dev.set(var, value)

    # ---- commands and writes -----------------------------------------------------------------
    async def _write(self, oid: str, value: int | str, asn1: str, what: str, refused: str) -> Status:
        """SET one OID (under the poll lock); a lost agent or a refusal is logged and FAILED."""
        try:
            async with self._lock:
                err = await self._s().set(oid, value, asn1)
        except DeviceError as exc:
            log.warning("UPS [%s]: %s: %s", self.device.name, what, exc)
            return Status.FAILED
        if err is not None:
            log.warning("UPS [%s]: %s refused: %s", self.device.name, refused, err)
            return Status.FAILED
        return Status.HANDLED

    async def instcmd(self, cmd: str, param: str | None) -> Status:
        m = self.mapper
        if m is None or self.session is None:
            return Status.FAILED
        c = m.find_cmd(cmd)
        if c is None:
            return Status.UNKNOWN
        if c.spec.value_from and param in (None, ""):
            param = self.device.value(c.spec.value_from) or None
        value = command_value(c.spec, param)
        if value is None:
            return Status.INVALID
        status = await self._write(c.oid, value, c.spec.asn1, cmd, f"{cmd}: SET {c.oid}")
        if status == Status.HANDLED:
            self.poke()
        return status

    async def setvar(self, name: str, value: str) -> Status:
        m = self.mapper
        if m is None or self.session is None:
            return Status.FAILED
        b = m.find_rw(name)
        if b is None:
            return Status.UNKNOWN
        if b.oid is None or b.row.flags & Flag.ABSENT:
            # driver-side values (ups.delay.*): kept locally, used by commands
            self.device.set(name, value)
            return Status.HANDLED
        raw = write_value(b.row, value)
        if raw is None:
            return Status.INVALID
        status = await self._write(b.oid, raw, b.row.asn1, f"SET {name}", f"SET {name} ({b.oid})")
        if status == Status.HANDLED:
            self.device.set(name, value)
            self.poke()
        return status


__all__ = ["SnmpUps", "parse_port"]
