"""TLS without setup (server/selfsigned.py, docs/tls.md), against real ``nutbridge serve`` processes.

A bridge listening beyond loopback with no CERTFILE makes a self-signed certificate in its
state directory, offers STARTTLS with it and publishes its fingerprint in the zeroconf TXT
record; a real python-zeroconf browser reads that record (tests/support/mdns.py), Python's
``ssl`` and our client library check the certificate the server presents, NUT's own ``upsc``
keeps working, and a restart keeps the certificate. Loopback-only bridges, ``AUTO_TLS false``
and a configured CERTFILE make none.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from nutbridge.client import NutClient
from nutbridge.client.errors import CertificateMismatch
from nutbridge.client.tls import TLSMode, TLSOptions
from nutbridge.server import selfsigned

from .support import realnut
from .support.mdns import NutBrowser, lan_ipv4
from .support.realnut import REPO, BridgeProcess, NutConfig, query

READY = "zeroconf: advertising"


def _cfg(tmp: Path, name: str, upsd_extra: str = "") -> NutConfig:
    cfg = NutConfig(tmp / name)
    cfg.add_ups("sim", driver="nutbridge-sim", port="auto")
    cfg.upsd_extra = upsd_extra
    return cfg


def _start(cfg: NutConfig, state: Path, *listen: str) -> BridgeProcess:
    args = ["--state-dir", str(state)]
    for where in listen:
        args += ["--listen", f"{where}:{cfg.port}"]
    return BridgeProcess.start(cfg, args)


def _file_fingerprint(pem: Path) -> str:
    text = pem.read_text()
    first = text[text.index("-----BEGIN CERTIFICATE-----"):text.index("-----END CERTIFICATE-----") + 25]
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(first)).hexdigest()


def _starttls(port: int, ctx: ssl.SSLContext, server_hostname: str | None = None,
              host: str = "127.0.0.1") -> tuple[str, bytes]:
    """STARTTLS by hand (NUT's is no openssl s_client preset): the peer's certificate (DER)
    and the answer to a GET VAR sent inside the TLS session."""
    with socket.create_connection((host, port), timeout=5) as raw:
        raw.sendall(b"STARTTLS\n")
        assert raw.recv(100) == b"OK STARTTLS\n"
        with ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            tls.sendall(b"GET VAR sim ups.status\n")
            return tls.recv(200).decode(), der


async def _txt(browser: NutBrowser, port: int) -> dict[str, str | None]:
    info = await browser.find(lambda i: i.port == port)
    return info.decoded_properties


async def test_generated_certificate_offered_published_and_kept(tmp_path: Path) -> None:
    lan = lan_ipv4()
    upsc = realnut.require_client("upsc")
    state = tmp_path / "state"
    pem = state / "tls" / "nutbridge.pem"
    cfg = _cfg(tmp_path, "wild")
    async with NutBrowser() as browser:
        with _start(cfg, state, "0.0.0.0") as bridge:
            # one PEM, certificate then key, private
            assert stat.S_IMODE(pem.stat().st_mode) == 0o600
            assert stat.S_IMODE(pem.parent.stat().st_mode) == 0o700
            text = pem.read_text()
            assert text.index("BEGIN CERTIFICATE") < text.index("BEGIN PRIVATE KEY")
            fp = _file_fingerprint(pem)
            assert f"TLS: made a self-signed certificate {pem}, SHA-256 {fp}" in bridge.log()
            cert = x509.load_pem_x509_certificate(pem.read_bytes())
            key = cert.public_key()
            assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
            assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert {socket.gethostname(), "localhost"} <= set(san.get_values_for_type(x509.DNSName))
            ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
            assert {lan, "127.0.0.1"} <= ips

            # the zeroconf TXT record carries the same fingerprint
            txt = await _txt(browser, cfg.port)
            assert txt["tls_sha256"] == fp and txt["vendor"] == "nut-bridge"

            # Python's ssl: what STARTTLS presents is that file's certificate, and it verifies
            # against itself as the trust anchor with a name in it (NUT's CERTVERIFY with the
            # PEM in CERTPATH works the same way)
            answer, der = _starttls(cfg.port, ssl.create_default_context(cafile=str(pem)), "localhost")
            assert hashlib.sha256(der).hexdigest() == fp
            assert answer.startswith('VAR sim ups.status "OL')
            answer, der = _starttls(cfg.port, ssl.create_default_context(cafile=str(pem)), lan, host=lan)
            assert hashlib.sha256(der).hexdigest() == fp

            # our client library pins it; another pin is refused
            async with NutClient(lan, cfg.port, tls=TLSOptions(TLSMode.REQUIRE, pin_sha256=fp)) as c:
                assert c.tls_active and c.peer_fingerprint == fp
                assert (await c.get_var("sim", "ups.status")).startswith("OL")
            with pytest.raises(CertificateMismatch):
                async with NutClient(lan, cfg.port,
                                     tls=TLSOptions(TLSMode.REQUIRE, pin_sha256="00" * 32)) as c:
                    await c.get_var("sim", "ups.status")

            # standard NUT clients keep working: upsc, and plain text on the same port
            for host in ("127.0.0.1", lan):
                p = realnut.run_tool([upsc, f"sim@{host}:{cfg.port}", "ups.status"])
                assert p.returncode == 0 and p.stdout.startswith(b"OL"), p.stderr
            assert query(cfg.port, "GET VAR sim ups.status").startswith(b'VAR sim ups.status "OL')
            assert "TLS handshake" not in bridge.log()
        first = pem.read_bytes()

        # a restart keeps the certificate: same file, same fingerprint everywhere
        with _start(cfg, state, "0.0.0.0") as bridge:
            assert pem.read_bytes() == first
            assert "made a self-signed certificate" not in bridge.log()
            assert f"TLS: STARTTLS with {pem}, SHA-256 {fp}" in bridge.log()
            _, der = _starttls(cfg.port, ssl.create_default_context(cafile=str(pem)), "localhost")
            assert hashlib.sha256(der).hexdigest() == fp
            assert (await _txt(browser, cfg.port))["tls_sha256"] == fp


async def test_no_certificate_without_reach_or_with_opt_out(tmp_path: Path) -> None:
    """Loopback only (127.0.0.2 too: all of 127/8 is loopback), AUTO_TLS false, and a configured
    CERTFILE (whose own fingerprint is published instead): no certificate is made."""
    lan = lan_ipv4()
    certfile = tmp_path / "own.pem"
    certfile.write_bytes(selfsigned.generate("own", ["own.example"], []))
    certfile.chmod(0o600)
    lo, off, own = _cfg(tmp_path, "lo"), _cfg(tmp_path, "off", "AUTO_TLS false\n"), \
        _cfg(tmp_path, "own", f"CERTFILE {certfile}\n")
    states = {name: tmp_path / f"{name}-state" for name in ("lo", "off", "own")}
    async with NutBrowser() as browser:
        with (
            _start(lo, states["lo"], "127.0.0.1", "127.0.0.2"),
            _start(off, states["off"], "0.0.0.0"),
            _start(own, states["own"], lan, "127.0.0.1") as own_bridge,
        ):
            for cfg in (lo, off):
                assert query(cfg.port, "STARTTLS") == b"ERR FEATURE-NOT-CONFIGURED\n"
            assert "tls_sha256" not in await _txt(browser, off.port)
            own_fp = _file_fingerprint(certfile)
            assert (await _txt(browser, own.port))["tls_sha256"] == own_fp
            ctx = ssl.create_default_context(cafile=str(certfile))
            ctx.check_hostname = False
            _, der = _starttls(own.port, ctx)
            assert hashlib.sha256(der).hexdigest() == own_fp
            assert "self-signed" not in own_bridge.log()
    for state in states.values():
        assert (state / "events.jsonl").exists()  # the state dir is in use ...
        assert not (state / "tls").exists()  # ... but holds no certificate


def test_broken_generated_certificate_is_replaced(tmp_path: Path) -> None:
    state = tmp_path / "state"
    pem = state / "tls" / "nutbridge.pem"
    pem.parent.mkdir(parents=True)
    broken = b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
    pem.write_bytes(broken)
    cfg = _cfg(tmp_path, "broken")
    with _start(cfg, state, "0.0.0.0") as bridge:
        aside = [p for p in pem.parent.iterdir() if p.name.startswith("nutbridge.pem.broken-")]
        assert len(aside) == 1 and aside[0].read_bytes() == broken
        assert f"TLS: {pem} cannot be used" in bridge.log() and aside[0].name in bridge.log()
        assert stat.S_IMODE(pem.stat().st_mode) == 0o600
        _, der = _starttls(cfg.port, ssl.create_default_context(cafile=str(pem)), "localhost")
        assert hashlib.sha256(der).hexdigest() == _file_fingerprint(pem)


def test_unreadable_certfile_still_refuses_to_start(tmp_path: Path) -> None:
    """A configured CERTFILE is the user's: no fallback to a generated one, exit 2."""
    cfg = _cfg(tmp_path, "bad", f"CERTFILE {tmp_path / 'missing.pem'}\n")
    cfg.write()
    env = cfg.env()
    env["PYTHONPATH"] = str(REPO / "bridge")
    state = tmp_path / "state"
    p = subprocess.run([sys.executable, "-m", "nutbridge", "serve", "--config-dir", str(cfg.etc),
                        "--listen", f"0.0.0.0:{cfg.port}", "--state-dir", str(state)],
                       capture_output=True, text=True, env=env, timeout=30)
    assert p.returncode == 2 and "CERTFILE" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (state / "tls").exists()


# ---- the certificate store on its own ---------------------------------------------------------

BOUND = [("0.0.0.0", 3493), ("::1", 3493)]


def test_expired_certificate_is_remade(tmp_path: Path) -> None:
    path = selfsigned.cert_path(tmp_path)
    path.parent.mkdir()
    old = selfsigned.generate("old", ["old"], [], now=datetime.now(UTC) - timedelta(days=3700))
    path.write_bytes(old)
    cert = selfsigned.ensure(tmp_path, BOUND)
    assert cert.created and cert.sha256 != selfsigned.pem_fingerprint(old.decode())
    [aside] = [p for p in path.parent.iterdir() if ".broken-" in p.name]
    assert aside.read_bytes() == old


def test_kept_certificate_made_private_and_reused(tmp_path: Path) -> None:
    first = selfsigned.ensure(tmp_path, BOUND)
    os.chmod(first.path, 0o644)
    again = selfsigned.ensure(tmp_path, BOUND)
    assert not again.created and again.sha256 == first.sha256
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    # another process got there first: its certificate is the one used, not overwritten
    assert not selfsigned._write_new(first.path, b"other")
    assert selfsigned.ensure(tmp_path, BOUND).sha256 == first.sha256
    assert sorted(p.name for p in first.path.parent.iterdir()) == ["nutbridge.pem"]


def test_subject_names() -> None:
    cn, dns, ips = selfsigned.subject_names([("192.0.2.7", 3493), ("fe80::1%eth0", 3493), ("::", 3493)])
    assert cn == socket.gethostname()[:64] and "localhost" in dns and dns[1].endswith(".local")
    assert str(ips[0]) == "192.0.2.7"
    assert "::1" in {str(ip) for ip in ips}
    assert "fe80::1" not in {str(ip) for ip in ips}  # meaningless without its interface



def test_drop_in_upsd_offers_starttls_only_as_the_c_upsd(tmp_path: Path) -> None:
    """``nutbridge upsd`` replaces the C upsd, which offers STARTTLS only with a CERTFILE: no
    certificate of its own unless upsd.conf asks for one with ``AUTO_TLS true``."""
    from nutbridge import upsd_main

    etc, run = tmp_path / "etc", tmp_path / "run"
    etc.mkdir()
    run.mkdir()
    (etc / "ups.conf").write_text("[u]\n driver = dummy-ups\n port = u.dev\n")
    (etc / "upsd.users").write_text("")
    for extra, want in (("", False), ("AUTO_TLS true\n", True), ("AUTO_TLS false\n", False)):
        (etc / "upsd.conf").write_text(f"LISTEN 0.0.0.0 3493\nSTATEPATH {run}\n{extra}")
        assert upsd_main.load(etc).upsd.auto_tls is want, extra
