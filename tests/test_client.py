"""nutbridge.client.NutClient against Debian's real C upsd + dummy-ups.

Debian builds upsd with NSS, whose STARTTLS needs an NSS certificate database
(certutil, not installed); STARTTLS verification and pinning are therefore
tested against a small Python TLS server that speaks just enough of the protocol,
while the C upsd covers the "TLS not configured" answers.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nutbridge.client import (
    PROTOCOL_ERROR,
    TLS_ERROR,
    CertificateMismatch,
    NutClient,
    NutError,
    ReconnectingClient,
    TLSMode,
    TLSNotOffered,
    TLSOptions,
    fingerprint,
)
from nutbridge.client.push import subscribe
from tests.support import realnut
from tests.support.proxy import LoggingProxy

DDL, DEVICES = realnut.DDL_DIR, realnut.DDL_SAMPLES

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def upsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[realnut.NutConfig]:
    realnut.require("NUT DDL dumps", DDL.is_dir())
    cfg = realnut.NutConfig(tmp_path_factory.mktemp("nut"))
    cfg.add_ups("apc", driver="dummy-ups", port=str(DDL / DEVICES["apc"]), desc='Smart "1"')
    cfg.add_ups("fsdunit", driver="dummy-ups", port=str(DDL / DEVICES["eaton"]))
    with realnut.c_upsd(cfg) as running:
        yield running


def client(cfg: realnut.NutConfig, **kw: object) -> NutClient:
    return NutClient("127.0.0.1", cfg.port, **kw)  # type: ignore[arg-type]


async def test_basic_queries(upsd: realnut.NutConfig) -> None:
    async with client(upsd, tls=TLSOptions(TLSMode.TRY)) as c:
        assert not c.tls_active  # Debian's upsd has no certificate: plaintext
        assert (await c.ver()).startswith("Network UPS Tools upsd")
        assert await c.netver() == "1.3"
        assert (await c.help()).startswith("Commands: HELP VER")
        assert await c.list_ups() == {"apc": 'Smart "1"', "fsdunit": "Description unavailable"}
        assert await c.get_upsdesc("apc") == 'Smart "1"'
        variables = await c.list_var("apc")
        assert variables["ups.status"] == await c.get_var("apc", "ups.status") == "OL"
        assert await c.get_type("apc", "ups.status") == ("RW", "STRING:32")
        assert await c.get_desc("apc", "ups.status") == "UPS status"
        assert "ups.status" in await c.list_rw("apc")
        assert "load.off" in await c.list_cmd("apc")
        assert await c.get_cmddesc("apc", "load.off") == "Turn off the load immediately"
        assert await c.list_enum("apc", "ups.status") == []
        assert await c.list_range("apc", "ups.status") == []
        assert (await c.get_var("whatever", "server.version")).count(".") == 2


async def test_errors(upsd: realnut.NutConfig) -> None:
    async with client(upsd) as c:
        with pytest.raises(NutError) as e:
            await c.get_var("nosuch", "ups.status")
        assert e.value.code == "UNKNOWN-UPS" and e.value.text == "Unknown UPS"
        with pytest.raises(NutError) as e:
            await c.get_var("apc", "ups.nosuch")
        assert e.value.text == "Variable not supported by UPS"
        with pytest.raises(NutError) as e:
            await c.list_var("nosuch")
        assert e.value.code == "UNKNOWN-UPS"
        with pytest.raises(NutError) as e:
            await c.instcmd("apc", "load.off")
        assert e.value.code == "USERNAME-REQUIRED"
        with pytest.raises(NutError) as e:
            await c.starttls()
        assert e.value.code == "FEATURE-NOT-CONFIGURED"
    with pytest.raises(NutError) as e:
        await NutClient("127.0.0.1", realnut.free_port()).connect()
    assert e.value.text == "Connection failure: Connection refused"


async def test_require_tls_refused_by_plain_server(upsd: realnut.NutConfig) -> None:
    with pytest.raises(TLSNotOffered) as e:
        await client(upsd, tls=TLSOptions(TLSMode.REQUIRE)).connect()
    assert e.value.code == "FEATURE-NOT-CONFIGURED"


async def test_trust_on_first_use_without_tls(upsd: realnut.NutConfig) -> None:
    """A server without TLS: TRY + tofu carries on in plaintext, no fingerprint."""
    async with client(upsd, tls=TLSOptions(TLSMode.TRY, tofu=True)) as c:
        assert not c.tls_active and c.peer_fingerprint is None
        assert await c.get_var("apc", "ups.status") == "OL"


async def test_auth_and_instcmd(upsd: realnut.NutConfig) -> None:
    async with client(upsd) as c:
        await c.authenticate("admin", "bad")
        with pytest.raises(NutError) as e:
            await c.set_var("apc", "ups.beeper.status", "enabled")
        assert e.value.code == "ACCESS-DENIED"
        with pytest.raises(NutError) as e:
            await c.username("again")
        assert e.value.code == "ALREADY-SET-USERNAME"
    async with client(upsd) as c:
        await c.authenticate("admin", "s3cr3t")
        assert await c.instcmd("apc", "load.off") is None
        assert await c.instcmd("apc", "load.off", "10") is None
        with pytest.raises(NutError) as e:
            await c.instcmd("apc", "no.such")
        assert e.value.code == "CMD-NOT-SUPPORTED"


async def test_tracking(upsd: realnut.NutConfig) -> None:
    async with client(upsd) as c:
        await c.authenticate("admin", "s3cr3t")
        assert await c.get_tracking() is False
        await c.set_tracking(True)
        assert await c.get_tracking() is True
        tid = await c.set_var("apc", "ups.beeper.status", "enabled")
        assert tid is not None and len(tid) == 36 and tid == tid.upper()
        assert await c.wait_tracking(tid, timeout=10, interval=0.2) == "SUCCESS"
        tid = await c.instcmd("apc", "load.off")
        assert tid is not None
        with pytest.raises(NutError) as e:  # dummy-ups answers STAT_INSTCMD_UNKNOWN
            await c.wait_tracking(tid, timeout=10, interval=0.2)
        assert e.value.code == "UNKNOWN"
        await c.set_tracking(False)
        with pytest.raises(NutError) as e:
            await c.tracking_status(tid)
        assert e.value.code == "FEATURE-NOT-CONFIGURED"


async def test_login_fsd_numlogins_primary(upsd: realnut.NutConfig) -> None:
    async with client(upsd) as c:
        await c.authenticate("monprimary", "mp")
        assert await c.primary("fsdunit") == "OK PRIMARY-GRANTED"
        await c.login("fsdunit")
        assert await c.get_numlogins("fsdunit") == 1
        assert await c.list_client("fsdunit") == ["127.0.0.1"]
        assert await c.fsd("fsdunit") == "OK FSD-SET"
        assert (await c.get_var("fsdunit", "ups.status")).startswith("FSD ")
        with pytest.raises(NutError) as e:
            await c.login("fsdunit")
        assert e.value.code == "ALREADY-LOGGED-IN"
    async with client(upsd) as c:
        await c.authenticate("monsecondary", "ms")
        with pytest.raises(NutError) as e:
            await c.primary("fsdunit")
        assert e.value.code == "ACCESS-DENIED"
        # The first connection's LOGIN is gone once it closed.
        for _ in range(50):
            if await c.get_numlogins("fsdunit") == 0:
                break
            await asyncio.sleep(0.1)
        assert await c.get_numlogins("fsdunit") == 0


async def test_shared_connection_is_serialised(upsd: realnut.NutConfig) -> None:
    async with client(upsd) as c:
        before = await c.list_var("apc")
        names = [n for n in before if not n.startswith("driver.")]  # 2.8.5 flips driver.state
        values = await asyncio.gather(*(c.get_var("apc", n) for n in names * 3))
        assert values == [before[n] for n in names * 3]


async def test_reconnect_after_drop_mid_list(upsd: realnut.NutConfig) -> None:
    # The proxy cuts the first connection 300 bytes into the answers: after the
    # two OKs of the login and in the middle of LIST VAR.
    with LoggingProxy(upsd.port, cut_after=300) as proxy:
        c = ReconnectingClient("127.0.0.1", proxy.port, backoff=0.05)
        await c.connect()
        await c.authenticate("admin", "s3cr3t")
        variables = await c.list_var("apc")
        assert variables["ups.status"] == "OL"
        assert c.reconnects == 1
        await c.close()
    assert len(proxy.conns) == 2
    assert proxy.conns[1].requests()[:3] == ["USERNAME admin", "PASSWORD s3cr3t", "LIST VAR apc"]


async def test_plain_client_reports_drop(upsd: realnut.NutConfig) -> None:
    with LoggingProxy(upsd.port, cut_after=100) as proxy:
        c = NutClient("127.0.0.1", proxy.port)
        await c.connect()
        with pytest.raises(NutError) as e:
            await c.list_var("apc")
        assert e.value.text == "Server disconnected"
        assert not c.connected


# -- verify_resp and TLS against small Python servers -------------------------------


class FakeServer:
    """Threaded line server: answers from a handler; optional STARTTLS support."""

    def __init__(self, answer: dict[str, str], tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        # Every request line it received (decrypted), all connections, in order.
        self.received: list[str] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        f = conn.makefile("rb")
        sock: socket.socket = conn
        try:
            while line := f.readline():
                text = line.decode().strip()
                self.received.append(text)
                if text == "STARTTLS" and self.tls is not None:
                    sock.sendall(b"OK STARTTLS\n")
                    sock = self.tls.wrap_socket(conn, server_side=True)
                    f = sock.makefile("rb")
                    continue
                if text == "LOGOUT":
                    sock.sendall(b"OK Goodbye\n")
                    break
                sock.sendall((self.answer.get(text, "ERR UNKNOWN-COMMAND") + "\n").encode())
        except (OSError, ssl.SSLError):
            pass
        finally:
            sock.close()

    def close(self) -> None:
        self.sock.close()


async def test_verify_resp() -> None:
    srv = FakeServer({
        "GET VAR ups ups.status": 'VAR other ups.status "OL"',
        "GET VAR ups ups.load": 'var UPS UPS.LOAD "12"',
        "LIST VAR ups": "BEGIN LIST VAR other",
        "LIST CMD ups": "BEGIN LIST CMD ups\nCMD other x\nEND LIST CMD ups",
    })
    try:
        async with NutClient("127.0.0.1", srv.port) as c:
            assert await c.get_var("ups", "ups.load") == "12"  # case-insensitive echo
            for call in (c.get_var("ups", "ups.status"), c.list_var("ups")):
                with pytest.raises(NutError) as e:
                    await call
                assert e.value.code == PROTOCOL_ERROR and e.value.text == "Protocol error"
        async with NutClient("127.0.0.1", srv.port) as c:
            with pytest.raises(NutError):
                await c.list_cmd("ups")
    finally:
        srv.close()


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    realnut.require("openssl command (apt-get install openssl)", openssl)
    assert openssl
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return crt, key


@pytest.fixture
def tls_server(cert: tuple[Path, Path]) -> Iterator[FakeServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    srv = FakeServer({"GET VAR ups ups.status": 'VAR ups ups.status "OL"'}, tls=ctx)
    yield srv
    srv.close()


def der_fingerprint(crt: Path) -> str:
    return fingerprint(ssl.PEM_cert_to_DER_cert(crt.read_text()))


async def test_tls_verified_by_ca(tls_server: FakeServer, cert: tuple[Path, Path]) -> None:
    opts = TLSOptions(TLSMode.REQUIRE, cafile=str(cert[0]))
    async with NutClient("127.0.0.1", tls_server.port, tls=opts) as c:
        assert c.tls_active
        assert await c.get_var("ups", "ups.status") == "OL"


async def test_tls_unknown_ca_rejected(tls_server: FakeServer) -> None:
    opts = TLSOptions(TLSMode.REQUIRE, cafile=ssl.get_default_verify_paths().cafile)
    with pytest.raises(NutError) as e:
        await NutClient("127.0.0.1", tls_server.port, tls=opts).connect()
    assert e.value.code == TLS_ERROR


async def test_tls_pinning(tls_server: FakeServer, cert: tuple[Path, Path]) -> None:
    pin = der_fingerprint(cert[0])
    colon = ":".join(pin[i:i + 2] for i in range(0, len(pin), 2)).upper()
    async with NutClient("127.0.0.1", tls_server.port,
                         tls=TLSOptions(TLSMode.REQUIRE, pin_sha256=colon)) as c:
        assert c.tls_active and await c.get_var("ups", "ups.status") == "OL"
    with pytest.raises(NutError) as e:
        await NutClient("127.0.0.1", tls_server.port,
                        tls=TLSOptions(TLSMode.TRY, pin_sha256="00" * 32)).connect()
    assert e.value.code == TLS_ERROR and "fingerprint" in e.value.text


async def test_try_tls_upgrades_when_offered(tls_server: FakeServer,
                                             cert: tuple[Path, Path]) -> None:
    opts = TLSOptions(TLSMode.TRY, cafile=str(cert[0]))
    async with NutClient("127.0.0.1", tls_server.port, tls=opts) as c:
        assert c.tls_active


async def test_pin_mismatch_sends_nothing_and_names_the_certificate(
    tls_server: FakeServer, cert: tuple[Path, Path]
) -> None:
    """Pinned to another certificate: after STARTTLS not one request (no USERNAME, no
    PASSWORD) goes out, even from a client with a session to replay; the error carries the
    certificate the server showed, so a user can be asked about it."""
    c = ReconnectingClient("127.0.0.1", tls_server.port,
                           tls=TLSOptions(TLSMode.REQUIRE, pin_sha256="00" * 32))
    c.session.username, c.session.password = "admin", "s3cr3t"
    with pytest.raises(CertificateMismatch) as e:
        await c.get_var("ups", "ups.status")
    assert e.value.code == TLS_ERROR
    assert e.value.fingerprint == der_fingerprint(cert[0])
    assert not c.connected
    assert tls_server.received and set(tls_server.received) == {"STARTTLS"}


async def test_trust_on_first_use_reports_the_fingerprint(
    tls_server: FakeServer, cert: tuple[Path, Path]
) -> None:
    """tofu: any certificate is accepted (no CA, no pin) and its fingerprint is readable."""
    async with NutClient("127.0.0.1", tls_server.port, tls=TLSOptions(TLSMode.TRY, tofu=True)) as c:
        assert c.tls_active
        assert c.peer_fingerprint == der_fingerprint(cert[0])
        assert await c.get_var("ups", "ups.status") == "OL"
    # Without tofu, no CA and no pin, the system store decides: a self-signed one fails.
    with pytest.raises(NutError) as e:
        await NutClient("127.0.0.1", tls_server.port, tls=TLSOptions(TLSMode.TRY)).connect()
    assert e.value.code == TLS_ERROR


@pytest.mark.parametrize(
    ("answer", "code"), [("ERR UNKNOWN-COMMAND", "UNKNOWN-COMMAND"), ("OK", PROTOCOL_ERROR)]
)
async def test_required_tls_declined(answer: str, code: str) -> None:
    """TLS required: a server that declines STARTTLS (ERR, or any other answer) gets nothing more."""
    srv = FakeServer({"STARTTLS": answer})
    try:
        c = NutClient("127.0.0.1", srv.port, tls=TLSOptions(TLSMode.REQUIRE, pin_sha256="00" * 32))
        with pytest.raises(TLSNotOffered) as e:
            await c.connect()
        assert e.value.code == code and e.value.answer == answer
        assert srv.received == ["STARTTLS"]
    finally:
        srv.close()


async def test_push_over_tls(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    """subscribe() with TLS options against a real bridge with CERTFILE: pinned, it gets
    the snapshot over TLS; another pin, or TLS required from a bridge without it, fail
    before SUBSCRIBE."""
    pem = tmp_path / "bridge.pem"
    pem.write_text(cert[0].read_text() + cert[1].read_text())
    pin = der_fingerprint(cert[0])
    cfg = realnut.NutConfig(tmp_path / "nut", upsd_extra=f"CERTFILE {pem}\n")
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    with realnut.BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, ["sim"])
        updates = subscribe("127.0.0.1", cfg.port, ["sim"], 10, TLSOptions(TLSMode.REQUIRE, pin_sha256=pin))
        first = await asyncio.wait_for(anext(updates), 10)
        assert first.ups == "sim" and "ups.status" in first.values
        await updates.aclose()
        with pytest.raises(CertificateMismatch) as e:
            await anext(subscribe("127.0.0.1", cfg.port, ["sim"], 10,
                                  TLSOptions(TLSMode.REQUIRE, pin_sha256="00" * 32)))
        assert e.value.fingerprint == pin
    cfg.upsd_extra = ""
    with realnut.BridgeProcess.start(cfg):
        realnut.wait_ready_ups(cfg.port, ["sim"])
        with pytest.raises(TLSNotOffered) as no_tls:
            await anext(subscribe("127.0.0.1", cfg.port, ["sim"], 10,
                                  TLSOptions(TLSMode.REQUIRE, pin_sha256=pin)))
        assert no_tls.value.code == "FEATURE-NOT-CONFIGURED"
        # TRY: plaintext push from a server without TLS, as before.
        updates = subscribe("127.0.0.1", cfg.port, ["sim"], 10, TLSOptions(TLSMode.TRY, tofu=True))
        assert (await asyncio.wait_for(anext(updates), 10)).ups == "sim"
        await updates.aclose()
