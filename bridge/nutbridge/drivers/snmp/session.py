"""SNMP transport on pysnmp 7 (asyncio): GET in batches, bulk walks, SET.

One :class:`~pysnmp.entity.engine.SnmpEngine` serves every v1/v2c session of the process (per
event loop): an engine is a socket dispatcher plus caches, so 100 agents share one UDP socket
set. v3 sessions share an engine only with the same credentials. Replies skip pysnmp's MIB
lookup (``lookupMib=False``): we only need OIDs and typed values, and the lookup was half the
CPU with 100 agents.

Errors follow the driver API: an agent that does not answer (timeout after ``retries``) or a
v3 authentication failure raises :class:`~nutbridge.drivers.base.DeviceError` (the driver goes
stale and reconnects); per-OID problems never fail a request: ``noSuchObject`` /
``noSuchInstance`` / ``endOfMibView`` give ``None`` for that OID, and a v1 ``noSuchName`` (or
``genErr`` / ``badValue``) at an index drops that one OID and retries the rest.

Values keep their ASN.1 type (:class:`~.table.SnmpValue`, re-exported here): TimeTicks must be
divided by 100 by the mapping, and a SET must use the type the agent expects.

Passwords and keys are never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..base import ConfigError, DeviceError
from .table import SnmpValue  # the typed answer (table vocabulary: MIB converters take it)

log = logging.getLogger(__name__)

__all__ = ["MAX_OIDS", "Session", "SnmpValue", "V3Params", "v3_from_options"]

#: varbinds per GET PDU (NUT / net-snmp agents handle this comfortably within one UDP datagram)
MAX_OIDS = 20
#: GETBULK max-repetitions x columns stays below this many varbinds per request
MAX_BULK_VARBINDS = 120
#: rows per column a walk without a row count stops at: an agent whose table never ends
#: (every OID greater than the last) must not grow the result, or the walk, for ever
MAX_WALK_ROWS = 10_000

@dataclass(frozen=True)
class V3Params:
    """SNMPv3 USM parameters in NUT's option vocabulary (repr hides the secrets)."""

    sec_level: str = "noAuthNoPriv"      # noAuthNoPriv | authNoPriv | authPriv
    sec_name: str = ""
    auth_password: str = ""
    priv_password: str = ""
    auth_protocol: str = "MD5"           # MD5 | SHA | SHA256 | SHA384 | SHA512
    priv_protocol: str = "DES"           # DES | AES | AES192 | AES256

    def __repr__(self) -> str:
        return (f"V3Params(sec_level={self.sec_level!r}, sec_name={self.sec_name!r}, "
                f"auth_protocol={self.auth_protocol!r}, priv_protocol={self.priv_protocol!r})")


_SEC_LEVELS = {"noauthnopriv": "noAuthNoPriv", "authnopriv": "authNoPriv", "authpriv": "authPriv"}
_AUTH = {"MD5": "usmHMACMD5AuthProtocol", "SHA": "usmHMACSHAAuthProtocol",
         "SHA256": "usmHMAC192SHA256AuthProtocol", "SHA384": "usmHMAC256SHA384AuthProtocol",
         "SHA512": "usmHMAC384SHA512AuthProtocol"}
# net-snmp (and so NUT) extends AES-192/256 keys the Blumenthal way
_PRIV = {"DES": "usmDESPrivProtocol", "AES": "usmAesCfb128Protocol",
         "AES192": "usmAesBlumenthalCfb192Protocol", "AES256": "usmAesBlumenthalCfb256Protocol"}


def v3_from_options(options: Mapping[str, str]) -> V3Params:
    """NUT's ``secLevel``/``secName``/``authPassword``/``privPassword``/``authProtocol``/
    ``privProtocol`` (option names are matched case-insensitively) -> :class:`V3Params`.
    Raises ConfigError for unknown levels/protocols or missing names/passwords."""
    opts = {k.lower(): v for k, v in options.items()}
    level = _SEC_LEVELS.get(opts.get("seclevel", "noAuthNoPriv").lower())
    if level is None:
        raise ConfigError(f"secLevel '{opts.get('seclevel')}' is not one of "
                          "noAuthNoPriv, authNoPriv, authPriv")
    name = opts.get("secname", "")
    if not name:
        raise ConfigError("snmp_version v3 needs secName")
    auth = opts.get("authprotocol", "MD5").upper()
    priv = opts.get("privprotocol", "DES").upper()
    if auth not in _AUTH:
        raise ConfigError(f"authProtocol '{opts.get('authprotocol')}' is not one of {', '.join(_AUTH)}")
    if priv not in _PRIV:
        raise ConfigError(f"privProtocol '{opts.get('privprotocol')}' is not one of {', '.join(_PRIV)}")
    auth_pw = opts.get("authpassword", "")
    priv_pw = opts.get("privpassword", "")
    if level != "noAuthNoPriv" and len(auth_pw) < 8:
        raise ConfigError(f"secLevel {level} needs authPassword (at least 8 characters)")
    if level == "authPriv" and len(priv_pw) < 8:
        raise ConfigError("secLevel authPriv needs privPassword (at least 8 characters)")
    return V3Params(level, name, auth_pw, priv_pw, auth, priv)


def _hlapi() -> Any:
    """pysnmp's asyncio high-level API (imported lazily: pysnmp is the optional "snmp" extra)."""
    import pysnmp.hlapi.v3arch.asyncio as h  # type: ignore[import-untyped]

    return h


def _proto() -> tuple[Any, Any]:
    from pysnmp.proto import rfc1902, rfc1905  # type: ignore[import-untyped]

    return rfc1902, rfc1905


_engines: dict[tuple[asyncio.AbstractEventLoop, str], Any] = {}


def shared_engine(credentials: str = "") -> Any:
    """The SnmpEngine for the running loop and one set of v3 credentials ("" = v1/v2c),
    created on first use. An engine keeps one USM user per user name, so two agents with
    the same secName but different keys must not share one (the second would overwrite
    the first: "wrong digest" on and off)."""
    loop = asyncio.get_running_loop()
    for old in [k for k in _engines if k[0].is_closed()]:
        del _engines[old]
    eng = _engines.get((loop, credentials))
    if eng is None:
        eng = _engines[(loop, credentials)] = _hlapi().SnmpEngine()
        _drop_undecodable(eng)
    return eng


#: incoming datagrams dropped because pysnmp failed on them (see _drop_undecodable)
undecodable = 0
_UNDECODABLE_LOG_EVERY = 60.0  # seconds between two warnings about them


def _drop_undecodable(engine: Any) -> None:
    """Drop what pysnmp fails on, with a warning at most once a minute. Some garbage
    datagrams make pyasn1 raise (TypeError...) out of pysnmp's receive callback, and
    asyncio would log a traceback for each: anyone who can send UDP to our port could
    fill the log at a millisecond of CPU per datagram. Nothing else sees such an
    exception (the request it may have answered times out as usual), so only the
    logging changes."""
    dispatcher = engine.message_dispatcher
    receive = dispatcher.receive_message
    last_warning = -_UNDECODABLE_LOG_EVERY
    since = 0

    def receive_message(*args: Any, **kwargs: Any) -> Any:
        nonlocal last_warning, since
        try:
            return receive(*args, **kwargs)
        except Exception as exc:
            global undecodable
            undecodable += 1
            since += 1
            now = time.monotonic()
            if now - last_warning >= _UNDECODABLE_LOG_EVERY:
                log.warning("SNMP: dropped %d datagram(s) pysnmp failed on (last: %s: %s)",
                            since, type(exc).__name__, exc)
                last_warning, since = now, 0
            else:
                log.debug("SNMP: dropped a datagram pysnmp failed on (%s: %s)", type(exc).__name__, exc)
            return b""

    dispatcher.receive_message = receive_message


def _credentials_key(p: V3Params) -> str:
    # a digest, so the engine table never holds the passwords themselves
    text = "\0".join((p.sec_name, p.sec_level, p.auth_protocol, p.auth_password,
                      p.priv_protocol, p.priv_password))
    return hashlib.sha256(text.encode()).hexdigest()


def _convert(value: Any) -> SnmpValue | None:
    """pysnmp value -> SnmpValue (None for the exception values)."""
    rfc1902, rfc1905 = _proto()

    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)):
        return None
    if isinstance(value, rfc1902.TimeTicks):
        return SnmpValue("timeticks", int(value))
    if isinstance(value, rfc1902.Counter64):
        return SnmpValue("counter64", int(value))
    if isinstance(value, rfc1902.Counter32):
        return SnmpValue("counter", int(value))
    if isinstance(value, (rfc1902.Gauge32, rfc1902.Unsigned32)):
        return SnmpValue("uint", int(value))
    if isinstance(value, rfc1902.IpAddress):
        return SnmpValue("ip", ".".join(str(b) for b in value.asNumbers()))
    if isinstance(value, rfc1902.Opaque):
        return SnmpValue("opaque", bytes(value))
    if isinstance(value, rfc1902.OctetString):
        return SnmpValue("str", bytes(value))
    if isinstance(value, rfc1902.ObjectIdentifier):
        return SnmpValue("oid", str(value))
    if isinstance(value, (rfc1902.Integer32, rfc1902.Integer)):
        return SnmpValue("int", int(value))
    if isinstance(value, rfc1902.Null):
        return SnmpValue("null", "")
    try:
        return SnmpValue("int", int(value))
    except (TypeError, ValueError):
        return SnmpValue("str", str(value).encode())


def _norm(oid: str) -> str:
    return oid.strip().lstrip(".")


def _key(oid: str) -> tuple[int, ...]:
    return tuple(int(p) for p in oid.split(".") if p)


def _encode(value: int | str | bytes, asn1: str) -> Any:
    rfc1902, _ = _proto()

    if asn1 == "i":
        return rfc1902.Integer32(int(value))
    if asn1 in ("u", "g"):
        return rfc1902.Gauge32(int(value))
    if asn1 == "t":
        return rfc1902.TimeTicks(int(value))
    if asn1 == "s":
        return rfc1902.OctetString(value if isinstance(value, bytes) else str(value).encode())
    if asn1 == "o":
        return rfc1902.ObjectIdentifier(_norm(str(value)))
    if asn1 == "a":
        return rfc1902.IpAddress(str(value))
    raise ValueError(f"unknown ASN.1 type code {asn1!r}")


class Session:
    """One agent. Create with :meth:`create` (resolves the address); no socket of its own."""

    def __init__(self, engine: Any, auth: Any, target: Any, context: Any, version: str,
                 timeout: float, retries: int, host: str, port: int) -> None:
        self._engine = engine
        self._auth = auth
        self._target = target
        self._context = context
        self.version = version
        self.timeout = timeout
        self.retries = retries
        self.host = host
        self.port = port
        #: SNMP requests sent (GET / GETNEXT / GETBULK / SET PDUs; retries not counted)
        self.requests = 0
        #: varbinds per GET PDU (halved on tooBig)
        self.max_oids = MAX_OIDS

    @classmethod
    async def create(cls, host: str, port: int = 161, version: str = "v1", community: str = "public",
                     v3: V3Params | None = None, timeout: float = 1.0, retries: int = 5) -> Session:
        """``version`` "v1" | "v2c" | "v3" (v3 needs ``v3``); ``timeout`` seconds per try,
        ``retries`` extra tries (NUT's snmp_timeout / snmp_retries). Raises ConfigError for a bad
        version, DeviceError when the host name does not resolve."""
        h = _hlapi()

        if version not in ("v1", "v2c", "v3"):
            raise ConfigError(f"snmp_version '{version}' is not one of v1, v2c, v3")
        auth: Any
        engine_key = ""
        if version == "v3":
            p = v3 or V3Params()
            engine_key = _credentials_key(p)
            kwargs: dict[str, Any] = {}
            if p.sec_level != "noAuthNoPriv":
                kwargs["authKey"] = p.auth_password
                kwargs["authProtocol"] = getattr(h, _AUTH[p.auth_protocol])
            if p.sec_level == "authPriv":
                kwargs["privKey"] = p.priv_password
                kwargs["privProtocol"] = getattr(h, _PRIV[p.priv_protocol])
            auth = h.UsmUserData(p.sec_name, **kwargs)
        else:
            auth = h.CommunityData(community, mpModel=0 if version == "v1" else 1)
        try:
            target = await h.UdpTransportTarget.create((host, port), timeout=timeout, retries=retries)
        except Exception as exc:  # pysnmp wraps resolver errors in PySnmpError
            raise DeviceError(f"cannot resolve {host}: {exc}") from exc
        return cls(shared_engine(engine_key), auth, target, h.ContextData(), version, timeout,
                   retries, host, port)

    # ---- requests ---------------------------------------------------------------------------
    def _check(self, err_ind: Any) -> None:
        if err_ind:
            raise DeviceError(f"SNMP {self.host}:{self.port}: {err_ind}")

    async def get(self, oids: Iterable[str]) -> dict[str, SnmpValue | None]:
        """GET every OID (batches of :attr:`max_oids`). Returns {oid: value or None} keyed by the
        OIDs as given. Raises DeviceError when the agent does not answer."""
        given = list(dict.fromkeys(oids))
        out: dict[str, SnmpValue | None] = {}
        i = 0
        while i < len(given):
            chunk = given[i:i + self.max_oids]
            got = await self._get_chunk(chunk)
            if got is None:          # tooBig: smaller PDUs from now on
                if self.max_oids == 1:
                    out.update(dict.fromkeys(chunk))
                    i += len(chunk)
                else:
                    self.max_oids = max(1, self.max_oids // 2)
                continue
            out.update(got)
            i += len(chunk)
        return out

    async def _get_chunk(self, chunk: Sequence[str]) -> dict[str, SnmpValue | None] | None:
        h = _hlapi()

        out: dict[str, SnmpValue | None] = {}
        pending = list(chunk)
        while pending:
            self.requests += 1
            err_ind, err_stat, err_idx, vbs = await h.get_cmd(
                self._engine, self._auth, self._target, self._context,
                *(h.ObjectType(h.ObjectIdentity(_norm(o))) for o in pending), lookupMib=False)
            self._check(err_ind)
            status = str(err_stat.prettyPrint()) if err_stat else ""
            if status == "tooBig":
                return None
            if status:
                # v1: the whole PDU fails for one bad OID; drop it and ask again for the rest
                idx = int(err_idx) - 1 if err_idx else -1
                if 0 <= idx < len(pending):
                    out[pending.pop(idx)] = None
                    continue
                out.update(dict.fromkeys(pending))
                return out
            for oid, (_name, val) in zip(pending, vbs, strict=False):
                out[oid] = _convert(val)
            pending = []
        return out

    async def walk(self, base: str, max_rows: int = 0) -> list[tuple[str, SnmpValue]]:
        """Every (oid, value) below ``base`` (GETBULK for v2c/v3, GETNEXT for v1).
        ``max_rows`` > 0 stops after that many rows."""
        got = await self.walk_columns([base], max_rows)
        return got[_norm(base)]

    async def walk_columns(self, columns: Sequence[str],
                           rows: int = 0) -> dict[str, list[tuple[str, SnmpValue]]]:
        """Walk several table columns side by side: one GETBULK fetches ``rows`` instances of every
        column (a 48-outlet PDU's 5 columns come in a few requests). {column: [(oid, value)]}.
        ``rows`` 0: to the end of each column, but at most :data:`MAX_WALK_ROWS`."""
        h = _hlapi()

        cols = [_norm(c) for c in columns]
        out: dict[str, list[tuple[str, SnmpValue]]] = {c: [] for c in cols}
        cursor = dict.fromkeys(cols, "")
        for c in cols:
            cursor[c] = c
        active = list(cols)
        while active:
            if self.version == "v1":
                reps = 1
            else:
                want = rows - min(len(out[c]) for c in active) if rows else 25
                reps = max(1, min(want, MAX_BULK_VARBINDS // len(active)))
            self.requests += 1
            vb_in = [h.ObjectType(h.ObjectIdentity(cursor[c])) for c in active]
            if self.version == "v1":
                err_ind, err_stat, err_idx, vbs = await h.next_cmd(
                    self._engine, self._auth, self._target, self._context, *vb_in, lexicographicMode=True,
                    lookupMib=False)
            else:
                err_ind, err_stat, err_idx, vbs = await h.bulk_cmd(
                    self._engine, self._auth, self._target, self._context, 0, reps, *vb_in,
                    lookupMib=False)
            self._check(err_ind)
            if err_stat:
                # v1 noSuchName at the end of the MIB: that column is done
                idx = int(err_idx) - 1 if err_idx else 0
                active.pop(max(0, min(idx, len(active) - 1)))
                continue
            done: set[str] = set()
            flat = list(vbs)
            for n, (name, val) in enumerate(flat):
                col = active[n % len(active)]
                if col in done:
                    continue
                oid = str(name)
                value = _convert(val)
                if value is None or not oid.startswith(col + ".") or _key(oid) <= _key(cursor[col]):
                    done.add(col)  # past the column (or an agent looping back)
                    continue
                out[col].append((oid, value))
                cursor[col] = oid
                if len(out[col]) >= (rows or MAX_WALK_ROWS):
                    done.add(col)
            if not flat:
                break
            # a column that answered fewer rows than asked (agent truncation) simply continues
            active = [c for c in active if c not in done]
        return out

    async def set(self, oid: str, value: int | str | bytes, asn1: str = "i") -> str | None:
        """SET one OID. ``asn1``: "i" INTEGER, "u" Gauge32/Unsigned32, "t" TimeTicks, "s" OCTET
        STRING, "o" OID, "a" IpAddress. Returns None on success, else the agent's error
        ("notWritable", "noSuchInstance", ...). Raises DeviceError when the agent does not answer."""
        h = _hlapi()

        self.requests += 1
        err_ind, err_stat, _idx, vbs = await h.set_cmd(
            self._engine, self._auth, self._target, self._context,
            h.ObjectType(h.ObjectIdentity(_norm(oid)), _encode(value, asn1)), lookupMib=False)
        self._check(err_ind)
        if err_stat:
            return str(err_stat.prettyPrint())
        for _name, val in vbs:
            if _convert(val) is None:
                return type(val).__name__
        return None

    async def sysobjectid(self) -> str | None:
        """sysObjectID.0 as dotted text (no leading dot), None if the agent has none."""
        got = await self.get(["1.3.6.1.2.1.1.2.0"])
        v = got["1.3.6.1.2.1.1.2.0"]
        return None if v is None else v.text

    def close(self) -> None:
        """Nothing to release per session (the engine is shared)."""
